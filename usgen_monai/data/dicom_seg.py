"""Label masks as DICOM Segmentation objects: :py:class:`SaveDicomSeg` (and :py:class:`SaveDicomSegd`) with the
SNOMED CT codes of their segments (:py:class:`SegmentCode`, :py:data:`ULTRASOUND_SEGMENT_CODES`,
:py:func:`segment_code_for`, :py:data:`GENERIC_SEGMENT_CODE`).

A SEG is written with highdicom and references its source image, with one segment per label class. Multi-frame
ultrasound sources without a Frame of Reference (which highdicom does not segment directly) get one segmentation frame
per source frame and segment, each referencing its source frame, indexed by segment number and Temporal Position
Index (= source frame number). Files are named and written atomically as :py:mod:`usgen_monai.data.writer_common`
describes.
"""

from __future__ import annotations

import copy
import os
import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from monai.config import KeysCollection
from monai.transforms import MapTransform, Transform
from monai.utils import ImageMetaKey, MetaKeys
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import UID, generate_uid

import usgen_monai
from usgen_monai.data.dicom_files import PYDICOM_MAJOR, UltrasoundDicomError, dcmread_file, has_dicm_marker
from usgen_monai.data.library_messages import install_library_message_filters
from usgen_monai.data.writer_common import (
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    SYNTHETIC_DATA_TAG,
    _dicom_path,
    _frames_rows_cols,
    _meta,
    _save,
    _saved_to,
    _to_numpy,
)

__all__ = [
    "GENERIC_SEGMENT_CODE",
    "ULTRASOUND_SEGMENT_CODES",
    "SaveDicomSeg",
    "SaveDicomSegD",
    "SaveDicomSegDict",
    "SaveDicomSegd",
    "SegmentCode",
    "segment_code_for",
]


@dataclass(frozen=True)
class SegmentCode:
    """SNOMED CT coding of one segment: property category, property type and optional anatomic region.

    Every code below is taken from the DICOM content mapping resources (CID 7150 Segmentation Property Categories,
    CID 7151 Segmentation Property Types and its tissue / lesion subsets), as listed in ``pydicom.sr.codedict``.
    """

    category: tuple[str, str]  # (SCT code value, code meaning)
    type: tuple[str, str]
    region: tuple[str, str] | None = None

    def category_code(self) -> Code:
        return Code(self.category[0], "SCT", self.category[1])

    def type_code(self) -> Code:
        return Code(self.type[0], "SCT", self.type[1])

    def region_code(self) -> Code | None:
        return None if self.region is None else Code(self.region[0], "SCT", self.region[1])


_TISSUE = ("85756007", "Tissue")
_ANATOMY = ("91723000", "Anatomical Structure")
_ABNORMAL = ("49755003", "Morphologically Abnormal Structure")

#: label class name -> SNOMED CT coding; names are matched after lower-casing and turning non-alphanumerics into "_"
ULTRASOUND_SEGMENT_CODES: dict[str, SegmentCode] = {
    # breast (BUSI-like)
    "lesion": SegmentCode(_ABNORMAL, ("52988006", "Lesion")),
    "mass": SegmentCode(_ABNORMAL, ("4147007", "Mass")),
    "breast_mass": SegmentCode(_ABNORMAL, ("4147007", "Mass"), ("76752008", "Breast")),
    "breast_lesion": SegmentCode(_ABNORMAL, ("52988006", "Lesion"), ("76752008", "Breast")),
    "benign": SegmentCode(_ABNORMAL, ("4147007", "Mass")),
    "malignant": SegmentCode(_ABNORMAL, ("108369006", "Neoplasm")),
    "tumor": SegmentCode(_ABNORMAL, ("108369006", "Neoplasm")),
    "cyst": SegmentCode(_ABNORMAL, ("367643001", "Cyst")),
    "nodule": SegmentCode(_ABNORMAL, ("27925004", "Nodule")),
    "calcification": SegmentCode(_ABNORMAL, ("18115005", "pathologic calcification")),
    "breast": SegmentCode(_ANATOMY, ("76752008", "Breast")),
    # fetal head (HC18-like)
    "fetal_head": SegmentCode(_ANATOMY, ("69536005", "Head")),
    "head": SegmentCode(_ANATOMY, ("69536005", "Head")),
    "skull": SegmentCode(_ANATOMY, ("89546000", "Skull")),
    "brain": SegmentCode(_ANATOMY, ("12738006", "Brain")),
    # musculoskeletal
    "tendon": SegmentCode(_TISSUE, ("13024002", "Tendon")),
    "muscle": SegmentCode(_TISSUE, ("91727004", "Muscle")),
    "bone": SegmentCode(_TISSUE, ("3138006", "Bone")),
    "fat": SegmentCode(_TISSUE, ("55603005", "Fat")),
    "subcutaneous_tissue": SegmentCode(_TISSUE, ("71966008", "Subcutaneous tissue")),
    "cartilage": SegmentCode(_TISSUE, ("309312004", "Cartilage")),
    "ligament": SegmentCode(_ANATOMY, ("52082005", "Ligament")),
    "nerve": SegmentCode(_ANATOMY, ("91728009", "Nerve")),
    "vessel": SegmentCode(_ANATOMY, ("59820001", "Blood Vessel")),
    "effusion": SegmentCode(_ABNORMAL, ("41699000", "Effusion")),
    "edema": SegmentCode(_ABNORMAL, ("79654002", "Edema")),
    "abscess": SegmentCode(_ABNORMAL, ("44132006", "Abscess")),
    "tendon_tear": SegmentCode(_ABNORMAL, ("52988006", "Lesion"), ("13024002", "Tendon")),
}
_ALIASES = {
    "tumour": "tumor",
    "breast_tumor": "malignant",
    "fetal_skull": "skull",
    "tear": "tendon_tear",
    "tendon_rupture": "tendon_tear",
    "joint_effusion": "effusion",
    "fluid": "effusion",
    "blood_vessel": "vessel",
    "skeletal_muscle": "muscle",
    "adipose_tissue": "fat",
}
#: used for class names that have no entry: category Tissue, type Tissue
GENERIC_SEGMENT_CODE = SegmentCode(_TISSUE, _TISSUE)


def _normalise_class(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def segment_code_for(name: str, overrides: Mapping[str, SegmentCode] | None = None) -> tuple[SegmentCode, bool]:
    """The SNOMED CT coding for a label class name and whether it was found (``False``: the generic fallback)."""
    key = _normalise_class(name)
    for table in (overrides or {}, ULTRASOUND_SEGMENT_CODES):
        normalised = {_normalise_class(k): v for k, v in table.items()}
        if key in normalised:
            return normalised[key], True
        if _ALIASES.get(key) in normalised:
            return normalised[_ALIASES[key]], True
    return GENERIC_SEGMENT_CODE, False


# ----------------------------------------------------------------------------------------------------------------- SEG


def _label_classes(label_classes: Mapping | Sequence[str] | None, present: Sequence[int]) -> list[tuple[int, str]]:
    """[(label value, class name)] without background, sorted by value."""
    if label_classes is None:
        return [(int(v), f"label_{int(v)}") for v in present if int(v) != 0]
    if isinstance(label_classes, Mapping):
        items = []
        for k, v in label_classes.items():
            try:
                items.append((int(k), str(v)))
            except (TypeError, ValueError):
                raise ValueError(f"label_classes keys must be label values (ints), got {k!r}: {v!r}.") from None
    elif isinstance(label_classes, Sequence) and not isinstance(label_classes, str):
        items = [(i, str(v)) for i, v in enumerate(label_classes)]
    else:
        raise ValueError(f"label_classes must be a mapping {{value: name}} or a list of names, got {label_classes!r}.")
    out = sorted((v, n) for v, n in items if v != 0 and _normalise_class(n) != "background")
    values = [v for v, _ in out]
    if len(set(values)) != len(values):
        raise ValueError(f"label_classes has duplicate label values: {label_classes!r}.")
    return out


class SaveDicomSeg(Transform):
    """Write a label mask as a DICOM Segmentation (highdicom) that references its source image.

    The mask is channel-first in MONAI's axis order: a label map ``(1, X, Y[, F])`` with integer classes, or one-hot /
    probabilities ``(K, X, Y[, F])`` (arg-max over channels is taken). It must be on the source's pixel grid: map a
    prediction back first (``Invertd`` undoes ``CropToUltrasoundRegiond`` and ``SelectFramesd``).

    Segments: one per label class (background, value 0, excluded), in label order, labelled with the class name and
    coded with SNOMED CT from :py:data:`ULTRASOUND_SEGMENT_CODES` (``segment_codes`` adds or overrides entries; unknown
    names fall back to :py:data:`GENERIC_SEGMENT_CODE` with a warning).

    Multi-frame sources: one segmentation frame per (segment, source frame) with a reference to the source frame;
    frames where a segment is empty are left out unless ``keep_empty_frames=True`` (an all-empty mask keeps its empty
    frames, since a SEG needs at least one frame).

    Args:
        output_dir: folder for the files.
        output_postfix: appended to the source's name.
        label_classes: ``{label value: class name}`` (MONAI ``channel_def`` style, keys may be strings) or a list of
            names indexed by label value; ``None``: one segment per value present, named ``label_<value>``.
        segment_codes: ``{class name: SegmentCode}`` additions/overrides.
        algorithm_name: the model that produced the mask.
        algorithm_version: its version.
        algorithm_type: ``"AUTOMATIC"``, ``"SEMIAUTOMATIC"`` or ``"MANUAL"``.
        series_description: the SEG series description.
        manufacturer: the SEG's manufacturer (the software).
        keep_empty_frames: keep empty segmentation frames.
        reverse_indexing: ``True`` if the first spatial axis is the column (MONAI's convention).
        channel_dim: the channel axis of the mask, ``None`` if it has none.
        series_number: the SEG's series number.
        print_log: print the path of every file written.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        output_postfix: str = "seg",
        label_classes: Mapping | Sequence[str] | None = None,
        segment_codes: Mapping[str, SegmentCode] | None = None,
        algorithm_name: str = "usgen-monai",
        algorithm_version: str = usgen_monai.__version__,
        algorithm_type: str = "AUTOMATIC",
        series_description: str = "Segmentation (usgen-monai)",
        manufacturer: str = "usgen-monai",
        keep_empty_frames: bool = False,
        reverse_indexing: bool = True,
        channel_dim: int | None = 0,
        series_number: int = 901,
        print_log: bool = False,
    ) -> None:
        if algorithm_type.upper() not in ("AUTOMATIC", "SEMIAUTOMATIC", "MANUAL"):
            raise ValueError(f"algorithm_type must be AUTOMATIC, SEMIAUTOMATIC or MANUAL, got {algorithm_type!r}.")
        if label_classes is not None:
            _label_classes(label_classes, [])  # validate early
        self.output_dir = Path(output_dir)
        self.output_postfix = output_postfix
        self.label_classes = label_classes
        self.segment_codes = dict(segment_codes or {})
        self.algorithm_name = algorithm_name
        self.algorithm_version = str(algorithm_version)
        self.algorithm_type = algorithm_type.upper()
        self.series_description = series_description[:64]
        self.manufacturer = manufacturer
        self.keep_empty_frames = keep_empty_frames
        self.reverse_indexing = reverse_indexing
        self.channel_dim = channel_dim
        self.series_number = int(series_number)
        self.print_log = print_log
        self.series_instance_uid = generate_uid()
        self.name_prefix = "sample_"
        self._data_index = 0
        self._uncoded_warned: set[str] = set()  # class names already warned about: once per writer, not per file
        install_library_message_filters()  # highdicom's per-SEG INFO lines: once per process

    # -- inputs
    def _labels(self, mask: Any) -> np.ndarray:
        arr = _to_numpy(mask)
        if self.channel_dim is not None and arr.shape[self.channel_dim] > 1:
            arr = np.argmax(arr, axis=self.channel_dim)
            arr = np.expand_dims(arr, self.channel_dim)
        arr = _frames_rows_cols(arr, self.channel_dim, self.reverse_indexing)[..., 0]
        if not np.isfinite(arr).all():
            raise ValueError("SaveDicomSeg: the mask contains NaN or infinite values.")
        rounded = np.round(arr)
        if not np.array_equal(rounded, arr):
            raise ValueError("SaveDicomSeg: a single-channel mask must hold integer labels; threshold it first.")
        if rounded.min() < 0:
            raise ValueError(f"SaveDicomSeg: negative label {int(rounded.min())} in the mask.")
        return rounded.astype(np.int64)

    @staticmethod
    def _load_source(source: Any) -> Dataset:
        if isinstance(source, Dataset):
            return source
        if isinstance(source, (list, tuple)):
            if len(source) != 1:
                raise ValueError(
                    f"SaveDicomSeg references one source image (single- or multi-frame), got {len(source)}."
                )
            return SaveDicomSeg._load_source(source[0])
        if isinstance(source, (str, os.PathLike)):
            return dcmread_file(source, stop_before_pixels=True)  # the header is all a SEG needs
        raise ValueError(f"source must be a DICOM file path or a pydicom Dataset, got {type(source).__name__}.")

    def _source_from_meta(self, meta: Mapping) -> Any:
        for key in (MetaKeys.SAVED_TO, ImageMetaKey.FILENAME_OR_OBJ):
            value = meta.get(key)
            if isinstance(value, (list, tuple)):
                value = value[0] if value else None
            if value and os.path.isfile(str(value)) and (str(value).lower().endswith(".dcm") or has_dicm_marker(value)):
                return str(value)
        return None

    def _segments(self, labels: np.ndarray) -> list[tuple[int, str, SegmentCode]]:
        present = [int(v) for v in np.unique(labels) if v != 0]
        classes = _label_classes(self.label_classes, present)
        known = {v for v, _ in classes}
        unknown = sorted(set(present) - known)
        if unknown:
            raise ValueError(
                f"SaveDicomSeg: the mask has label value(s) {unknown} that label_classes does not name "
                f"(label_classes={self.label_classes!r})."
            )
        out = []
        for value, name in classes:
            code, found = segment_code_for(name, self.segment_codes)
            if not found and name not in self._uncoded_warned:
                self._uncoded_warned.add(name)
                warnings.warn(
                    f"SaveDicomSeg: no SNOMED CT code for label class {name!r}; using the generic "
                    f"{GENERIC_SEGMENT_CODE.type[1]!r} code (pass segment_codes to set one).",
                    stacklevel=3,
                )
            out.append((value, name, code))
        if not out:
            raise ValueError("SaveDicomSeg: no label classes to write (only background).")
        return out

    # -- building
    def build_dataset(self, mask: Any, source: Any = None, meta_data: Mapping | None = None) -> Dataset:
        """The SEG data set for ``mask`` referencing ``source`` (a path or a pydicom Dataset; by default the file in
        the mask's metadata ``saved_to`` / ``filename_or_obj``)."""
        import highdicom as hd

        meta = _meta(mask, meta_data)
        if source is None:
            source = self._source_from_meta(meta)
            if source is None:
                raise ValueError(
                    "SaveDicomSeg needs the source DICOM image: pass source=..., or keep the image's metadata "
                    "(filename_or_obj of a DICOM file) on the mask, e.g. with Invertd."
                )
        src = self._load_source(source)
        src_name = getattr(src, "filename", None) or "source image"
        if "PixelData" not in src and "Rows" not in src:
            raise UltrasoundDicomError(src_name, "is not an image: SEG needs an image source")
        labels = self._labels(mask)
        n_src_frames = int(src.get("NumberOfFrames", 1) or 1)
        rows, cols = int(src.Rows), int(src.Columns)
        if labels.shape[1:] != (rows, cols):
            raise ValueError(
                f"SaveDicomSeg: mask is {labels.shape[1]} rows x {labels.shape[2]} columns but the source {src_name} is "
                f"{rows} x {cols}; map the prediction back to the source grid first (Invertd)."
            )
        if labels.shape[0] not in (1, n_src_frames) or (labels.shape[0] == 1 and n_src_frames > 1):
            raise ValueError(
                f"SaveDicomSeg: mask has {labels.shape[0]} frame(s) but the source {src_name} has {n_src_frames}; "
                "give one label frame per source frame (SelectFramesd's inverse restores them)."
            )
        segments = self._segments(labels)
        descriptions = [
            hd.seg.SegmentDescription(
                segment_number=i + 1,
                segment_label=name[:64],
                segmented_property_category=code.category_code(),
                segmented_property_type=code.type_code(),
                algorithm_type=self.algorithm_type,
                algorithm_identification=(
                    None
                    if self.algorithm_type == "MANUAL"
                    else hd.AlgorithmIdentificationSequence(
                        name=self.algorithm_name[:64],
                        family=Code("123110", "DCM", "Artificial Intelligence"),
                        version=self.algorithm_version[:64],
                    )
                ),
                anatomic_regions=None if code.region_code() is None else [code.region_code()],
                tracking_uid=generate_uid(),
                tracking_id=f"{name}"[:64],
            )
            for i, (_, name, code) in enumerate(segments)
        ]
        binary = np.stack([labels == value for value, _, _ in segments], axis=-1)  # (F, R, C, K)
        self._data_index += 1
        common = dict(
            segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions,
            series_instance_uid=self.series_instance_uid,
            series_number=self.series_number,
            sop_instance_uid=generate_uid(),
            instance_number=self._data_index,
            manufacturer=self.manufacturer,
            manufacturer_model_name=self.algorithm_name[:64],
            software_versions=self.algorithm_version[:64],
            device_serial_number=self.algorithm_name[:64],
            series_description=self.series_description,
            content_label="SEGMENTATION",
            content_description=f"{self.algorithm_name} segmentation"[:64],
        )
        needs_merge = n_src_frames > 1 and not _has_geometry(src)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=UserWarning, module="highdicom")
            if needs_merge:
                seg, lossy = self._per_frame_seg(hd, src, binary, common)
            else:
                all_empty = not binary.any()
                header, lossy = _highdicom_source(src)
                seg = hd.seg.Segmentation(
                    source_images=[header],
                    pixel_array=binary.astype(np.uint8),
                    omit_empty_frames=not (self.keep_empty_frames or all_empty),
                    **common,
                )
        if lossy is not None:
            seg.LossyImageCompression = lossy
        if "PatientOrientation" not in seg and not _has_geometry(src):
            seg.PatientOrientation = ""  # General Image, type 2C when there is no patient coordinate system
        if str(_get(src, SYNTHETIC_DATA_TAG)).upper() == "YES":
            seg.add_new(SYNTHETIC_DATA_TAG, "CS", "YES")
        return seg

    def _per_frame_seg(self, hd: Any, src: Dataset, binary: np.ndarray, common: dict) -> tuple[Dataset, str | None]:
        """SEG for a multi-frame source without plane positions: highdicom builds the single-frame template (one
        frame per segment), which is then repeated for every source frame with per-frame references."""
        n_frames, rows, cols, n_seg = binary.shape
        # highdicom treats multi-frame SOP classes as enhanced images (functional groups, plane positions), so the
        # template is built from a single-frame stand-in whose SOP class is put back in the references afterwards
        proxy, lossy = _highdicom_source(src)
        for key in ("NumberOfFrames", "FrameIncrementPointer"):
            if key in proxy:
                del proxy[key]
        src_class = UID(src.SOPClassUID)
        proxy.SOPClassUID = SECONDARY_CAPTURE_IMAGE_STORAGE
        template = hd.seg.Segmentation(
            source_images=[proxy],
            pixel_array=np.ones((1, rows, cols, n_seg), dtype=np.uint8),
            omit_empty_frames=False,
            **common,
        )
        _replace_referenced_class(template, str(src.SOPInstanceUID), src_class)
        # frame-specific groups live per frame; highdicom shares those that happen to be equal (one segment, say)
        per_frame_keys = ("SegmentIdentificationSequence", "DerivationImageSequence", "FrameContentSequence")
        shared = template.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in template else None
        items = []
        for it in template.PerFrameFunctionalGroupsSequence:
            it = copy.deepcopy(it)
            for key in per_frame_keys:
                if key not in it and shared is not None and key in shared:
                    setattr(it, key, copy.deepcopy(shared[key].value))
            items.append(it)
        if shared is not None:
            for key in per_frame_keys:
                if key in shared:
                    del shared[key]
        by_segment = {int(it.SegmentIdentificationSequence[0].ReferencedSegmentNumber): it for it in items}
        keep_all = self.keep_empty_frames or not binary.any()
        frames, groups = [], []
        for s in range(1, n_seg + 1):
            for f in range(n_frames):
                bits = binary[f, :, :, s - 1]
                if not keep_all and not bits.any():
                    continue
                item = copy.deepcopy(by_segment[s])
                for derivation in item.get("DerivationImageSequence", []):
                    for ref in derivation.get("SourceImageSequence", []):
                        ref.ReferencedFrameNumber = f + 1
                content = item.FrameContentSequence[0]
                content.DimensionIndexValues = [s, f + 1]
                content.TemporalPositionIndex = f + 1
                groups.append(item)
                frames.append(bits)
        # dimensions: segment number, then the source frame as temporal position
        org_uid = template.DimensionIndexSequence[0].DimensionOrganizationUID
        frame_dim = Dataset()
        frame_dim.DimensionOrganizationUID = org_uid
        frame_dim.DimensionIndexPointer = pydicom.tag.Tag("TemporalPositionIndex")
        frame_dim.FunctionalGroupPointer = pydicom.tag.Tag("FrameContentSequence")
        frame_dim.DimensionDescriptionLabel = "Source Frame"
        template.DimensionIndexSequence = DicomSequence([template.DimensionIndexSequence[0], frame_dim])
        template.PerFrameFunctionalGroupsSequence = DicomSequence(groups)
        template.NumberOfFrames = len(frames)
        packed = _pack_bits(np.stack(frames).astype(np.uint8))
        template.PixelData = packed + (b"\x00" if len(packed) % 2 else b"")
        return template, lossy

    def output_path(self, meta: Mapping | None, source: Any = None) -> Path:
        """Where the SEG for a mask with metadata ``meta`` will be written (named after the mask's file name, or
        the source's when the mask has none)."""
        meta = dict(meta or {})
        if not meta.get(ImageMetaKey.FILENAME_OR_OBJ) and isinstance(source, (str, os.PathLike)):
            meta[ImageMetaKey.FILENAME_OR_OBJ] = str(source)
        return _dicom_path(self, meta)

    def write(
        self,
        mask: Any,
        source: Any = None,
        meta_data: Mapping | None = None,
        filename: str | os.PathLike | None = None,
    ) -> Path:
        """Write the SEG for ``mask`` and return its path (see :py:meth:`build_dataset` for ``source``)."""
        meta = _meta(mask, meta_data)
        seg = self.build_dataset(mask, source, meta)
        return _save(seg, Path(filename) if filename is not None else self.output_path(meta, source), self.print_log)

    def __call__(
        self,
        mask: Any,
        source: Any = None,
        meta_data: Mapping | None = None,
        filename: str | os.PathLike | None = None,
    ) -> Any:
        """Write the SEG (see :py:meth:`write`); returns ``mask`` with ``meta["saved_to"]`` set for a MetaTensor."""
        return _saved_to(mask, self.write(mask, source, meta_data, filename))


class SaveDicomSegd(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`SaveDicomSeg`.

    Args:
        keys: the masks / predictions to write.
        source_key: the item that identifies the source DICOM: a path, or an image whose metadata has ``saved_to``
            (written by :py:class:`SaveSyntheticDicomd`) or ``filename_or_obj``. ``None``: the mask's own metadata.
        allow_missing_keys: don't raise if a key is missing.
        kwargs: :py:class:`SaveDicomSeg` arguments.
    """

    def __init__(
        self, keys: KeysCollection, source_key: str | None = None, allow_missing_keys: bool = False, **kwargs
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.source_key = source_key
        self.saver = SaveDicomSeg(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        source = None
        if self.source_key is not None:
            if self.source_key not in d:
                raise KeyError(f"source_key {self.source_key!r} is not in the data (keys: {list(d)}).")
            item = d[self.source_key]
            if isinstance(item, (str, os.PathLike, Dataset)):
                source = item
            else:
                source = self.saver._source_from_meta(_meta(item, None))
                if source is None:
                    raise ValueError(f"SaveDicomSegd: {self.source_key!r} does not point at a DICOM file.")
        for key in self.key_iterator(d):
            d[key] = self.saver(d[key], source=source)
        return d


def _get(ds: Dataset, tag: int) -> Any:
    elem = ds.get(tag)
    return "" if elem is None else elem.value


def _replace_referenced_class(ds: Dataset, sop_instance_uid: str, sop_class: UID) -> None:
    """Set ReferencedSOPClassUID to ``sop_class`` in every (nested) reference to ``sop_instance_uid``."""
    for elem in ds:
        if elem.VR != "SQ":
            continue
        for item in elem.value:
            if str(item.get("ReferencedSOPInstanceUID", "")) == sop_instance_uid and "ReferencedSOPClassUID" in item:
                item.ReferencedSOPClassUID = sop_class
            _replace_referenced_class(item, sop_instance_uid, sop_class)


def _has_plane_positions(ds: Dataset) -> bool:
    for seq in ("SharedFunctionalGroupsSequence", "PerFrameFunctionalGroupsSequence"):
        for item in ds.get(seq, []) or []:
            if "PlanePositionSequence" in item or "PlanePositionSlideSequence" in item:
                return "FrameOfReferenceUID" in ds
    return False


def _has_geometry(ds: Dataset) -> bool:
    """Whether the image has patient-space geometry (positions and orientation) that a SEG could reference."""
    if "FrameOfReferenceUID" not in ds:
        return False
    if "ImagePositionPatient" in ds and "ImageOrientationPatient" in ds and "PixelSpacing" in ds:
        return True
    return _has_plane_positions(ds)


def _without_pixels(ds: Dataset) -> Dataset:
    """A copy of ``ds`` without bulk pixel data (highdicom only needs the header)."""
    out = Dataset()
    for elem in ds:
        if elem.tag in (0x7FE00010, 0x7FE00008, 0x7FE00009):
            continue
        out.add(copy.deepcopy(elem))
    fm = getattr(ds, "file_meta", None)
    if fm is not None:
        out.file_meta = copy.deepcopy(fm)
    if PYDICOM_MAJOR < 3:
        out.is_little_endian = getattr(ds, "is_little_endian", True)
        out.is_implicit_VR = getattr(ds, "is_implicit_VR", False)
    return out


def _highdicom_source(ds: Dataset) -> tuple[Dataset, str | None]:
    """Header-only copy for highdicom, and the Lossy Image Compression value to restore on the SEG.

    highdicom 0.22 (the pydicom-2.4 line) requires Lossy Image Compression Ratio and Method whenever the source says
    "01"; many ultrasound files omit them, so the flag is taken off the copy and put back on the result.
    """
    out = _without_pixels(ds)
    if not _has_geometry(ds):
        # a Frame of Reference without positions (common in ultrasound) gives a SEG nothing to align with, and
        # highdicom then asks for pixel spacing/positions the file does not have; segment on the pixel grid instead
        for key in ("FrameOfReferenceUID", "PositionReferenceIndicator"):
            if key in out:
                del out[key]
    lossy = str(ds.get("LossyImageCompression", "") or "") or None
    if lossy == "01" and not ("LossyImageCompressionRatio" in ds and "LossyImageCompressionMethod" in ds):
        del out["LossyImageCompression"]
        return out, lossy
    return out, None


def _pack_bits(arr: np.ndarray) -> bytes:
    """Pack 0/1 values little-endian bit order, as DICOM 1-bit pixel data (frames are not byte-aligned)."""
    flat = arr.astype(np.uint8).ravel()
    return np.packbits(flat, bitorder="little").tobytes()


SaveDicomSegD = SaveDicomSegDict = SaveDicomSegd
