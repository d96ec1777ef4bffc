"""MONAI Deploy operators for ultrasound DICOM: load a folder, turn ultrasound instances into images, segment them with
a bundle, write DICOM SEG. Imports the MONAI Deploy App SDK (run in the deploy virtualenv).

The SDK's ``DICOMSeriesToVolumeOperator`` builds a monochrome volume from slice positions and pixel spacing, which
ultrasound does not have (colour, YBR, palette colour, multi-frame cines, a Sequence of Ultrasound Regions instead of
Pixel Spacing). So between the SDK's loader and selector and the bundle there is
:py:class:`UltrasoundImageOperator`, which reads each selected instance with the bundle's own preprocessing
(:py:class:`usgen_monai.data.UltrasoundDicomReader` and the ultrasound transforms: colour to grey, crop to the
tissue region; a cine keeps its frames) and records the transforms, so that :py:class:`BundleSegmentationOperator`
(the bundle's inferer, frame by frame for cines, and its postprocessing, whose ``Invertd`` undoes the crop) returns
each mask on its file's own pixel grid. :py:class:`UltrasoundSegWriterOperator` writes it with
:py:class:`usgen_monai.data.SaveDicomSeg`: SNOMED CT coded segments, the source's patient and study, references to the
source instance and, for cines, to each source frame (the SDK's ``DICOMSegmentationWriterOperator`` needs plane
positions for multi-frame data, which ultrasound does not have).

Each operator records the files it has to skip in a shared :py:class:`usgen_monai.deploy.report.RunReport`, with the
reason, and goes on with the others; the writer, last in the graph, writes the run's summary.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monai.deploy.core import Fragment, Operator, OperatorSpec
from monai.deploy.operators import DICOMDataLoaderOperator
from pydicom import dcmread

from usgen_monai.engines.bundle_segmenter import BundleSegmenter
from usgen_monai.deploy.report import RunReport, _natural
from usgen_monai.engines.segmentation_inference import MaskWriter, SegmentationInference

__all__ = [
    "ULTRASOUND_SELECTION_RULES",
    "BundleSegmentationOperator",
    "UltrasoundDICOMDataLoaderOperator",
    "UltrasoundImage",
    "UltrasoundImageOperator",
    "UltrasoundSegWriterOperator",
]

logger = logging.getLogger(__name__)

#: DICOMSeriesSelectorOperator rules: every ultrasound series of every study
ULTRASOUND_SELECTION_RULES = '{"selections": [{"name": "Ultrasound", "conditions": {"Modality": "(?i)^US$"}}]}'
_REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")


@dataclass
class UltrasoundImage:
    """One ultrasound instance on its way through the app.

    Attributes:
        source: the instance's file.
        data: the bundle's preprocessed item (``{"image": MetaTensor (1, X, Y[, F])}`` with its transforms).
        sop_instance_uid: the source's SOP Instance UID.
        pred: the label map on the source's grid, once inferred.
    """

    source: str
    data: dict[str, Any]
    sop_instance_uid: str = ""
    pred: Any = None


class UltrasoundDICOMDataLoaderOperator(DICOMDataLoaderOperator):
    """The SDK's ``DICOMDataLoaderOperator`` that reports the files it cannot load instead of dropping them.

    The SDK loader logs and ignores files pydicom calls invalid, and a read error of another kind (a truncated or
    corrupt file) would end the whole app. This operator reads every file first; a file that fails is recorded in
    ``report`` (stage ``"load"``) with the reason, and the others go to the SDK's grouping into studies and series.
    Files the SDK then leaves out (no Study/Series Instance UID, a DICOMDIR) are recorded too. Hidden files (names
    starting with ``.``) are ignored.

    Args:
        fragment: the application.
        report: the run's report.
        kwargs: ``DICOMDataLoaderOperator`` arguments (``input_folder``, ``must_load``, ``name``, ...).

    Named output:
        dicom_study_list: a list of ``DICOMStudy``.
    """

    def __init__(self, fragment: Fragment, *args: Any, report: RunReport, **kwargs: Any) -> None:
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def _load_data(self, files: list[str]) -> list:
        readable, missing = [], {}
        for file in sorted((f for f in files if not Path(f).name.startswith(".")), key=_natural):
            try:
                ds = dcmread(file)
            except Exception as error:  # noqa: BLE001 - any failure to parse is a file to report and skip
                self.report.fail(file, f"not a readable DICOM file ({type(error).__name__}: {error})", "load")
                continue
            missing[file] = [k for k in _REQUIRED_UIDS if not str(ds.get(k, "") or "").strip()]
            readable.append(file)
        studies = super()._load_data(readable)
        loaded = {
            os.fspath(getattr(inst.get_native_sop_instance(), "filename", "") or "")
            for study in studies
            for series in study.get_all_series()
            for inst in series.get_sop_instances()
        }
        for file in readable:
            if os.fspath(file) not in loaded:
                why = (
                    f"an incomplete DICOM file (truncated?): no {', '.join(missing[file])}"
                    if missing[file]
                    else "left out by the SDK's DICOM loader (a DICOMDIR, or attributes it cannot parse)"
                )
                self.report.fail(file, why, "load")
        return studies


class UltrasoundImageOperator(Operator):
    """Ultrasound DICOM series -> images for the bundle: every instance of every selected series, one image each.

    Each instance is read from its file by ``preprocess`` (the bundle's preprocessing: ``LoadImaged`` with
    :py:class:`usgen_monai.data.UltrasoundDicomReader` for MONOCHROME1/2, RGB, YBR_FULL(_422), YBR_RCT/ICT and
    PALETTE COLOR, single- and multi-frame, compressed or not; colour to grey; crop to the tissue region of the
    Sequence of Ultrasound Regions, recorded so that ``Invertd`` undoes it). Instances of series the selector did not
    pick, or whose own Modality is not US, are recorded in ``report`` as not ultrasound (stage ``"select"``);
    instances that cannot be read as images (no pixel data, an undecodable transfer syntax, ...) with the reader's
    message (stage ``"preprocess"``).

    Args:
        fragment: the application.
        preprocess: ``path -> item dict`` (:py:meth:`usgen_monai.engines.bundle_segmenter.BundleSegmenter.preprocess`).
        report: the run's report.

    Named inputs:
        dicom_study_list: every loaded study (to report what the selection left out).
        study_selected_series_list: the selector's ``StudySelectedSeries`` list.

    Named output:
        images: a list of :py:class:`UltrasoundImage`, in file-name order.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        preprocess: Callable[[str], dict[str, Any]],
        report: RunReport,
        **kwargs: Any,
    ) -> None:
        self.preprocess = preprocess
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("dicom_study_list")
        spec.input("study_selected_series_list")
        spec.output("images")

    def images(self, studies: list, selected: list) -> list[UltrasoundImage]:
        """The images of the selected series' instances (the others are reported)."""
        chosen = {
            str(sel.series.SeriesInstanceUID) for study_sel in selected or [] for sel in study_sel.selected_series
        }
        instances = []
        for study in studies or []:
            for series in study.get_all_series():
                for inst in series.get_sop_instances():
                    ds = inst.get_native_sop_instance()
                    path = os.fspath(getattr(ds, "filename", "") or "")
                    instances.append((path, ds, str(series.SeriesInstanceUID)))
        out = []
        for path, ds, series_uid in sorted(instances, key=lambda t: _natural(t[0])):
            modality = str(ds.get("Modality", "") or "")
            if series_uid not in chosen or modality.upper() != "US":
                self.report.fail(
                    path or str(ds.get("SOPInstanceUID", "?")),
                    f"not an ultrasound image: Modality {modality or '(none)'!r}, SOP Class "
                    f"{getattr(ds.get('SOPClassUID', ''), 'name', '') or ds.get('SOPClassUID', '?')} "
                    "(the app segments Modality US series)",
                    "select",
                )
                continue
            if not path or not Path(path).is_file():
                self.report.fail(
                    str(ds.get("SOPInstanceUID", "?")), "an in-memory instance without a file; this app reads files",
                    "preprocess",
                )  # fmt: skip
                continue
            try:
                data = self.preprocess(path)
            except Exception as error:  # noqa: BLE001 - one unreadable image is reported and skipped
                self.report.fail(path, error, "preprocess")
                continue
            out.append(UltrasoundImage(source=path, data=data, sop_instance_uid=str(ds.get("SOPInstanceUID", ""))))
        logger.info(f"{len(out)} ultrasound image(s) to segment")
        return out

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        studies = op_input.receive("dicom_study_list")
        selected = op_input.receive("study_selected_series_list")
        op_output.emit(self.images(studies, selected), "images")


class BundleSegmentationOperator(Operator):
    """Segment :py:class:`UltrasoundImage` s with a bundle: its inferer and network, then its postprocessing, so each
    mask comes back on its source file's pixel grid (the region crop inverted; one mask frame per cine frame).

    Args:
        fragment: the application.
        segmenter: the bundle (:py:class:`usgen_monai.engines.bundle_segmenter.BundleSegmenter`).
        report: the run's report (inference failures, stage ``"inference"``).

    Named input:
        images: a list of :py:class:`UltrasoundImage`.

    Named output:
        masks: the same items with ``pred`` set (those that failed are left out).
    """

    def __init__(self, fragment: Fragment, *args: Any, segmenter: BundleSegmenter, report: RunReport, **kwargs: Any):
        self.segmenter = segmenter
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("images")
        spec.output("masks")

    def segment(self, images: list[UltrasoundImage]) -> list[UltrasoundImage]:
        out = []
        for item in images or []:
            try:
                item.pred = self.segmenter.predict(item.data)
            except Exception as error:  # noqa: BLE001
                self.report.fail(item.source, error, "inference")
                continue
            out.append(item)
        return out

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        op_output.emit(self.segment(op_input.receive("images")), "masks")


class UltrasoundSegWriterOperator(Operator):
    """Write each mask as a DICOM SEG next to the others and finish the run's report.

    ``{stem}_seg.dcm`` per source (the stem made unique when two sources share one), written atomically by
    :py:class:`usgen_monai.engines.segmentation_inference.MaskWriter` with ``output_format="dicom"``: one segment per
    label class with its SNOMED CT codes, the source's patient and study modules, a reference to the source instance
    and, for a cine, one segmentation frame per (segment, source frame) referencing that frame. Then
    ``inference_summary.json`` is written and the summary line logged.

    Args:
        fragment: the application.
        output_folder: where the SEG files go.
        label_classes: ``{label value: class name}`` (the bundle's).
        algorithm_name: the model's name in the SEG.
        algorithm_version: its version (the bundle's).
        report: the run's report.

    Named input:
        masks: a list of :py:class:`UltrasoundImage` with ``pred``.
    """

    def __init__(
        self,
        fragment: Fragment,
        *args: Any,
        output_folder: str | os.PathLike,
        label_classes: dict[int, str],
        algorithm_name: str,
        algorithm_version: str,
        report: RunReport,
        **kwargs: Any,
    ) -> None:
        self.writer = MaskWriter(
            output_folder,
            output_format="dicom",
            label_classes=label_classes,
            non_dicom_format="error",
            algorithm_name=algorithm_name,
            algorithm_version=algorithm_version,
        )
        self.report = report
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.input("masks")

    def write(self, masks: list[UltrasoundImage]) -> None:
        used: set[str] = set()
        for item in masks or []:
            try:
                spatial = list(item.pred.shape[1:])
                paths, fmt, _ = self.writer(
                    item.pred, source=item.source, stem=SegmentationInference.output_stem(item.source, used)
                )
            except Exception as error:  # noqa: BLE001
                self.report.fail(item.source, error, "write")
                continue
            self.report.succeed(
                {
                    "input": item.source,
                    "outputs": [str(p) for p in paths],
                    "format": fmt,
                    "shape": [int(spatial[1]), int(spatial[0])],  # rows, columns
                    "frames": int(spatial[2]) if len(spatial) > 2 else 1,
                    "sop_instance_uid": item.sop_instance_uid,
                }
            )

    def compute(self, op_input: Any, op_output: Any, context: Any) -> None:
        try:
            self.write(op_input.receive("masks"))
        finally:
            self.report.finish()
