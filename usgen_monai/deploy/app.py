"""The MONAI Deploy application: a folder of ultrasound DICOM -> MGCC bundle segmentation -> DICOM SEG.

Graph (one run over the whole folder)::

    UltrasoundDICOMDataLoaderOperator --dicom_study_list--> DICOMSeriesSelectorOperator (Modality US, all series)
            |                                                        |
            +------------------dicom_study_list------------+   study_selected_series_list
                                                           v         v
                                                    UltrasoundImageOperator  (bundle preprocessing: reader, grey,
                                                           |                  region crop, recorded for Invertd)
                                                         images
                                                           v
                                                    BundleSegmentationOperator (bundle inferer, frame by frame;
                                                           |                    postprocessing with Invertd)
                                                         masks
                                                           v
                                                    UltrasoundSegWriterOperator (DICOM SEG + inference_summary.json)

Run it with ``python -m usgen_monai deploy --input DICOM_DIR --output OUT`` from the main virtualenv, which starts
``python -m usgen_monai.deploy`` (:py:mod:`usgen_monai.deploy.__main__`) in the deploy virtualenv.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from monai.deploy.conditions import CountCondition
from monai.deploy.core import Application
from monai.deploy.operators import DICOMSeriesSelectorOperator

from usgen_monai.engines.bundle_segmenter import BundleSegmenter
from usgen_monai.deploy.environment import default_bundle, find_bundle
from usgen_monai.deploy.operators import (
    ULTRASOUND_SELECTION_RULES,
    BundleSegmentationOperator,
    UltrasoundDICOMDataLoaderOperator,
    UltrasoundImageOperator,
    UltrasoundSegWriterOperator,
)
from usgen_monai.deploy.report import RunReport

__all__ = ["UltrasoundSegmentationApp"]

logger = logging.getLogger(__name__)


class UltrasoundSegmentationApp(Application):
    """Segment every ultrasound instance of a DICOM folder with a segmentation bundle and write DICOM SEG.

    Args:
        input_folder: the DICOM folder (searched recursively).
        output_folder: where the SEG files and ``inference_summary.json`` go.
        bundle: the bundle folder (default: the repository's ``bundles/mgcc``).
        device: overrides the bundle's device (``"cpu"``, ``"cuda:0"``).
        num_threads: torch CPU threads (the bundle's ``num_threads``).

    Without ``input_folder``/``output_folder``/``bundle`` (a MAP), they are read as the SDK's apps read them: ``-i``,
    ``-o``, ``-m`` arguments or the ``HOLOSCAN_*_PATH`` environment variables.

    After :py:meth:`run`, :py:attr:`report` holds what happened (:py:class:`usgen_monai.deploy.report.RunReport`).
    """

    def __init__(
        self,
        *args,
        input_folder: str | os.PathLike | None = None,
        output_folder: str | os.PathLike | None = None,
        bundle: str | os.PathLike | None = None,
        device: str | None = None,
        num_threads: int | None = None,
        **kwargs,
    ) -> None:
        self.input_folder = None if input_folder is None else Path(input_folder).resolve()
        self.output_folder = None if output_folder is None else Path(output_folder).resolve()
        self.bundle = None if bundle is None else Path(bundle).resolve()
        self.device = device
        self.num_threads = num_threads
        self.report: RunReport | None = None
        self.segmenter: BundleSegmenter | None = None
        super().__init__(*args, **kwargs)

    def _paths(self) -> tuple[Path, Path, Path]:
        if self.input_folder is not None and self.output_folder is not None and self.bundle is not None:
            return self.input_folder, self.output_folder, find_bundle(self.bundle)
        context = Application.init_app_context(self.argv)  # -i/-o/-m or HOLOSCAN_INPUT/OUTPUT/MODEL_PATH
        model = (
            Path(context.model_path) if context.model_path and Path(context.model_path).exists() else default_bundle()
        )
        return (
            self.input_folder or Path(context.input_path).resolve(),
            self.output_folder or Path(context.output_path).resolve(),
            find_bundle(self.bundle or model),
        )

    def compose(self) -> None:
        input_folder, output_folder, bundle = self._paths()
        output_folder.mkdir(parents=True, exist_ok=True)
        self.report = RunReport(output_folder, input_folder)
        if self.segmenter is None:
            self.segmenter = BundleSegmenter(bundle, device=self.device, num_threads=self.num_threads)
        segmenter = self.segmenter
        loader = UltrasoundDICOMDataLoaderOperator(
            self, CountCondition(self, 1), input_folder=input_folder, must_load=False, report=self.report,
            name="dicom_loader",
        )  # fmt: skip
        selector = DICOMSeriesSelectorOperator(
            self, rules=ULTRASOUND_SELECTION_RULES, all_matched=True, name="ultrasound_series_selector"
        )
        images = UltrasoundImageOperator(
            self, preprocess=segmenter.preprocess, report=self.report, name="ultrasound_images"
        )
        inference = BundleSegmentationOperator(
            self, segmenter=segmenter, report=self.report, name=f"{bundle.name}_bundle_inference"
        )
        writer = UltrasoundSegWriterOperator(
            self,
            output_folder=output_folder,
            label_classes=segmenter.label_classes,
            algorithm_name=f"usgen-monai {bundle.name.upper()}",
            algorithm_version=segmenter.version,
            report=self.report,
            name="dicom_seg_writer",
        )
        self.add_flow(loader, selector, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(loader, images, {("dicom_study_list", "dicom_study_list")})
        self.add_flow(selector, images, {("study_selected_series_list", "study_selected_series_list")})
        self.add_flow(images, inference, {("images", "images")})
        self.add_flow(inference, writer, {("masks", "masks")})
