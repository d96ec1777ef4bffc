"""Writers for synthetic ultrasound: DICOM images flagged as synthetic, DICOM SEG masks, NIfTI and PNG.

All writers are MONAI-style transforms with explicit constructor arguments, so bundle configs can build them with
``_target_``; each has an array form (``SaveSyntheticDicom``, ``SaveDicomSeg``, ``SaveUltrasoundImage``) and a
dictionary form (``...d``). They take channel-first images in MONAI's axis order (``reverse_indexing=True``: the first
spatial axis is the column, as ``UltrasoundDicomReader`` and MONAI's ``PILReader`` return them), write atomically
(a temporary file in the target folder, then ``os.replace``) and name files predictably:

``{output_dir}/{subject}_{postfix}{ext}``, where ``subject`` is the input file's name without its extension(s), taken
from the metadata's ``filename_or_obj``, or ``{prefix}{index:06d}`` (``sample_000000``, ...) when the data has no
file name; ``index`` is the metadata's ``sample_index`` if present, else a running count per writer.

Synthetic images (:py:class:`SaveSyntheticDicom`) get new Study/Series/SOP Instance UIDs, Synthetic Data (0008,001C)
= YES, Image Type DERIVED\\SECONDARY, a series description that says SYNTHETIC, Burned In Annotation NO, Patient
Identity Removed YES with a De-identification Method (Code Sequence), and their provenance (model, version, seed,
conditioning) in the Contributing Equipment Sequence, Derivation Description and Image Comments. Nothing is copied
from a source image or from the input's metadata except the pixel spacing; patient attributes and dates are empty or
"SYNTHETIC" unless passed explicitly.

Masks (:py:class:`SaveDicomSeg`) become DICOM Segmentation objects written with highdicom that reference their
source image, with one segment per label class and SNOMED CT codes from :py:data:`ULTRASOUND_SEGMENT_CODES`.
Multi-frame ultrasound sources without a Frame of Reference (which highdicom does not segment directly) get one
segmentation frame per source frame and segment, each referencing its source frame, indexed by segment number and
Temporal Position Index (= source frame number).
"""

from __future__ import annotations

import copy
import datetime
import json
import os
import re
import warnings
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pydicom
import torch
from monai.config import DtypeLike, KeysCollection
from monai.data import FolderLayout, MetaTensor
from monai.data.image_writer import NibabelWriter, PILWriter
from monai.transforms import MapTransform, SaveImage, Transform
from monai.utils import ImageMetaKey, MetaKeys
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

import usgen_monai
from usgen_monai.data.dicom_reader import PYDICOM_MAJOR, UltrasoundDicomError, dcmread_file
from usgen_monai.utils import atomic_write, to_uint8

__all__ = [
    "GENERIC_SEGMENT_CODE",
    "SECONDARY_CAPTURE_IMAGE_STORAGE",
    "SYNTHETIC_DATA_TAG",
    "ULTRASOUND_SEGMENT_CODES",
    "US_IMAGE_STORAGE",
    "US_MULTIFRAME_IMAGE_STORAGE",
    "AtomicNibabelWriter",
    "AtomicPILWriter",
    "SaveDicomSeg",
    "SaveDicomSegD",
    "SaveDicomSegDict",
    "SaveDicomSegd",
    "SaveSyntheticDicom",
    "SaveSyntheticDicomD",
    "SaveSyntheticDicomDict",
    "SaveSyntheticDicomd",
    "SaveUltrasoundImage",
    "SaveUltrasoundImageD",
    "SaveUltrasoundImageDict",
    "SaveUltrasoundImaged",
    "SegmentCode",
    "save_dataset_atomic",
    "segment_code_for",
    "ultrasound_name_formatter",
]

SYNTHETIC_DATA_TAG = 0x0008001C  # Synthetic Data, CS; pydicom 2.4's dictionary predates it
US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")
SECONDARY_CAPTURE_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")
_SEG_STORAGE = UID("1.2.840.10008.5.1.4.1.1.66.4")
_IMPLEMENTATION_CLASS_UID = UID("1.2.826.0.1.3680043.8.498.10207283140551935491")  # generated once for usgen-monai
_IMPLEMENTATION_VERSION = f"USGEN_{usgen_monai.__version__}"[:16]


# ----------------------------------------------------------------------------------------------------------- codes


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


# ------------------------------------------------------------------------------------------------ naming + atomic I/O


def _stem(name: Any) -> str:
    base = PurePath(str(name)).name
    for _ in range(3):  # case.nii.gz -> case, img.dcm -> img
        stem, ext = os.path.splitext(base)
        if not ext or not re.fullmatch(r"\.[A-Za-z][A-Za-z0-9]{0,5}", ext):
            break
        base = stem
    return re.sub(r"[^\w.-]+", "_", base) or "image"


def ultrasound_name_formatter(metadict: Mapping | None, saver: Any) -> dict:
    """The naming rule shared by all writers here (a MONAI ``output_name_formatter``).

    Returns ``{"subject": ..., "idx": ...}`` for :py:meth:`monai.data.FolderLayout.filename`: the input's file name
    without extensions, or ``{prefix}{index:06d}`` without one (``prefix`` from ``saver.name_prefix``, default
    ``"sample_"``; ``index`` from the metadata's ``sample_index`` or the saver's running count); ``idx`` is the
    metadata's ``patch_index`` if any.
    """
    metadict = metadict or {}
    name = metadict.get(ImageMetaKey.FILENAME_OR_OBJ)
    if isinstance(name, (list, tuple)):
        name = name[0] if name else None
    if name:
        subject = _stem(name)
    else:
        index = metadict.get("sample_index", getattr(saver, "_data_index", 0))
        if isinstance(index, (torch.Tensor, np.ndarray)):
            index = int(np.asarray(index).ravel()[0])
        subject = f"{getattr(saver, 'name_prefix', 'sample_')}{int(index):06d}"
    idx = metadict.get(ImageMetaKey.PATCH_INDEX)
    return {"subject": subject, "idx": idx}


def save_dataset_atomic(ds: Dataset, path: str | os.PathLike) -> Path:
    """Write a data set as a DICOM Part 10 file (preamble, file meta) atomically, on pydicom 2.4 or 3.x."""
    path = Path(path)
    with atomic_write(path) as tmp:
        if PYDICOM_MAJOR >= 3:
            ds.save_as(tmp, enforce_file_format=True)
        else:
            ts = UID(ds.file_meta.TransferSyntaxUID)
            ds.is_little_endian = ts != pydicom.uid.ExplicitVRBigEndian
            ds.is_implicit_VR = ts == pydicom.uid.ImplicitVRLittleEndian
            ds.save_as(str(tmp), write_like_original=False)
    return path


class AtomicNibabelWriter(NibabelWriter):
    """MONAI's ``NibabelWriter`` writing to a temporary file first, then ``os.replace``.

    With ``resample=False`` the affine is taken as it is: MONAI 1.6.1's resampling step fails on 2D images even when
    there is nothing to resample.
    """

    def set_metadata(self, meta_dict: Mapping | None, resample: bool = True, **options):
        if resample:
            return super().set_metadata(meta_dict, resample=resample, **options)
        _, affine, _ = self.get_meta_info(meta_dict)
        if self.output_dtype is None and self.data_obj is not None and hasattr(self.data_obj, "dtype"):
            self.output_dtype = self.data_obj.dtype
        self.affine = np.eye(4) if affine is None else _to_numpy(affine).astype(np.float64)

    def write(self, filename, verbose: bool = False, **obj_kwargs):  # type: ignore[override]
        with atomic_write(filename) as tmp:
            super().write(f"{tmp}", verbose=verbose, **obj_kwargs)


class AtomicPILWriter(PILWriter):
    """MONAI's ``PILWriter`` writing to a temporary file first, then ``os.replace``."""

    def write(self, filename, verbose: bool = False, **kwargs):  # type: ignore[override]
        with atomic_write(filename) as tmp:
            super().write(f"{tmp}", verbose=verbose, **kwargs)


# ------------------------------------------------------------------------------------------------------ helpers


def _to_numpy(img: Any) -> np.ndarray:
    if isinstance(img, MetaTensor):
        img = img.as_tensor()
    if isinstance(img, torch.Tensor):
        return img.detach().cpu().numpy()
    return np.asarray(img)


def _frames_rows_cols(arr: np.ndarray, channel_dim: int | None, reverse_indexing: bool) -> np.ndarray:
    """Channel-first ``(C, X, Y[, F])`` -> ``(F, rows, cols, C)``."""
    if channel_dim is None:
        arr = arr[None]
        channel_dim = 0
    arr = np.moveaxis(arr, channel_dim, -1)  # (X, Y[, F], C)
    if arr.ndim == 3:
        arr = arr[:, :, None]
    elif arr.ndim != 4:
        raise ValueError(
            f"expected a channel-first image (C, X, Y) or (C, X, Y, F), got {arr.ndim - 1} dims after the channel."
        )
    arr = np.moveaxis(arr, 2, 0)  # (F, X, Y, C)
    if reverse_indexing:
        arr = np.swapaxes(arr, 1, 2)  # (F, rows, cols, C)
    return np.ascontiguousarray(arr)


def _meta(img: Any, meta_data: Mapping | None) -> dict:
    if isinstance(img, MetaTensor):
        return dict(img.meta)
    return dict(meta_data or {})


def _save(ds: Dataset, path: Path, print_log: bool) -> Path:
    """:py:func:`save_dataset_atomic`, then MONAI's ``print_log`` line."""
    save_dataset_atomic(ds, path)
    if print_log:
        print(f"file written: {path}.")
    return path


def _saved_to(img: Any, path: Path) -> Any:
    """``img``, with ``meta["saved_to"] = path`` when it is a MetaTensor (what MONAI's savers record)."""
    if isinstance(img, MetaTensor):
        img.meta[MetaKeys.SAVED_TO] = str(path)
    return img


def _now() -> tuple[str, str]:
    now = datetime.datetime.now()
    return now.strftime("%Y%m%d"), now.strftime("%H%M%S")


def _coded(code: Code) -> Dataset:
    item = Dataset()
    item.CodeValue = code.value
    item.CodingSchemeDesignator = code.scheme_designator
    item.CodeMeaning = code.meaning
    return item


def _describe(value: Any) -> Any:
    """Make a conditioning value JSON-friendly without dumping tensors."""
    if isinstance(value, MetaTensor):
        src = value.meta.get(ImageMetaKey.FILENAME_OR_OBJ)
        desc = f"tensor{tuple(value.shape)}"
        return f"{desc} from {PurePath(str(src)).name}" if src else desc
    if isinstance(value, torch.Tensor):
        return value.item() if value.numel() == 1 else f"tensor{tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return value.item() if value.size == 1 else f"array{value.shape}"
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Mapping):
        return {str(k): _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return repr(value)


# ---------------------------------------------------------------------------------------------- synthetic DICOM


class SaveSyntheticDicom(Transform):
    """Write a synthetic ultrasound image as a DICOM file that can never pass as scanner output.

    The image is channel-first: ``(1, X, Y)`` grey or ``(3, X, Y)`` RGB, optionally with a trailing frame axis
    ``(C, X, Y, F)`` (written as US Multi-frame). Values are mapped to 8 bits: ``intensity_range=(lo, hi)`` maps
    ``lo..hi`` to ``0..255`` (clipped); by default ``(0, 1)`` when the image's maximum is at most 1, else ``(0, 255)``.

    Pixel spacing comes from ``spacing_mm`` or else the metadata's ``spacing`` (mm, along the array's axes) and is
    stored, for the Ultrasound IOD, as one tissue region in the Sequence of Ultrasound Regions (so
    ``UltrasoundDicomReader`` reads it back), for Secondary Capture as Pixel Spacing. Nothing else is taken from the
    input's metadata.

    Args:
        output_dir: folder for the files.
        output_postfix: appended to the name (see the module docstring for the naming rule).
        model_name: the generator's name, stored as provenance.
        model_version: its version.
        seed: the sampling seed (can also be given per call).
        conditioning: what the image was conditioned on, e.g. ``{"mask": "case1_mask.png", "finding": "tear"}``
            (can also be given per call; merged with the constructor's).
        sop_class: ``"us"`` (Ultrasound Image / Multi-frame Image Storage) or ``"secondary_capture"`` (single frame
            only, Conversion Type SYN).
        series_description: must say it is synthetic; "SYNTHETIC" is prepended if missing.
        manufacturer: the General Equipment manufacturer (the software, not a scanner).
        one_series: all images from this writer share one new study and series (instance numbers count up);
            ``False``: a new series (and, unless ``study_instance_uid`` is given, a new study) per image.
        study_instance_uid: use this study (e.g. to group with other synthetic output) instead of a new one.
        patient_name: stored as given (default "SYNTHETIC^IMAGE"); never copied from a source.
        patient_id: stored as given (default "SYNTHETIC").
        patient_birth_date: empty unless given on purpose.
        patient_sex: empty unless given on purpose.
        study_date: empty unless given on purpose (Instance Creation Date/Time record when the file was written).
        intensity_range: see above.
        spacing_mm: ``(x, y)`` mm per pixel, overriding the metadata.
        frame_time_ms: Frame Time for multi-frame images.
        reverse_indexing: ``True`` if the first spatial axis is the column (MONAI's convention).
        channel_dim: the channel axis of the input, ``None`` if it has none.
        name_prefix: file-name prefix when the input has no file name.
        print_log: print the path of every file written.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        output_postfix: str = "synthetic",
        model_name: str = "usgen-monai",
        model_version: str = usgen_monai.__version__,
        seed: int | None = None,
        conditioning: Mapping | str | None = None,
        sop_class: str = "us",
        series_description: str = "SYNTHETIC ultrasound (usgen-monai)",
        manufacturer: str = "usgen-monai",
        one_series: bool = True,
        study_instance_uid: str | None = None,
        patient_name: str = "SYNTHETIC^IMAGE",
        patient_id: str = "SYNTHETIC",
        patient_birth_date: str = "",
        patient_sex: str = "",
        study_date: str = "",
        intensity_range: Sequence[float] | None = None,
        spacing_mm: Sequence[float] | None = None,
        frame_time_ms: float = 33.3,
        reverse_indexing: bool = True,
        channel_dim: int | None = 0,
        name_prefix: str = "sample_",
        print_log: bool = False,
    ) -> None:
        if sop_class not in ("us", "secondary_capture"):
            raise ValueError(f"sop_class must be 'us' or 'secondary_capture', got sop_class={sop_class!r}.")
        if intensity_range is not None and (len(intensity_range) != 2 or intensity_range[1] <= intensity_range[0]):
            raise ValueError(f"intensity_range must be (low, high) with high > low, got {intensity_range}.")
        if spacing_mm is not None and (len(spacing_mm) != 2 or min(spacing_mm) <= 0):
            raise ValueError(f"spacing_mm must be two positive numbers (x, y), got {spacing_mm}.")
        if frame_time_ms <= 0:
            raise ValueError(f"frame_time_ms must be positive, got {frame_time_ms}.")
        self.output_dir = Path(output_dir)
        self.output_postfix = output_postfix
        self.model_name = model_name
        self.model_version = str(model_version)
        self.seed = seed
        self.conditioning = conditioning
        self.sop_class = sop_class
        if "SYNTHETIC" not in series_description.upper():
            series_description = f"SYNTHETIC {series_description}"
        self.series_description = series_description[:64]
        self.manufacturer = manufacturer
        self.one_series = one_series
        self._fixed_study = study_instance_uid is not None
        self.study_instance_uid = study_instance_uid or generate_uid()
        self.series_instance_uid = generate_uid()
        self.patient_name = patient_name
        self.patient_id = patient_id
        self.patient_birth_date = patient_birth_date
        self.patient_sex = patient_sex
        self.study_date = study_date
        self.intensity_range = (
            None if intensity_range is None else (float(intensity_range[0]), float(intensity_range[1]))
        )
        self.spacing_mm = None if spacing_mm is None else (float(spacing_mm[0]), float(spacing_mm[1]))
        self.frame_time_ms = float(frame_time_ms)
        self.reverse_indexing = reverse_indexing
        self.channel_dim = channel_dim
        self.name_prefix = name_prefix
        self.print_log = print_log
        self._data_index = 0

    def output_path(self, meta: Mapping | None) -> Path:
        """Where an image with metadata ``meta`` will be written."""
        layout = FolderLayout(self.output_dir, postfix=self.output_postfix, extension=".dcm", makedirs=False)
        return Path(layout.filename(**ultrasound_name_formatter(meta, self)))

    def _pixels(self, img: Any) -> tuple[np.ndarray, str]:
        arr = _frames_rows_cols(_to_numpy(img).astype(np.float64, copy=False), self.channel_dim, self.reverse_indexing)
        channels = arr.shape[-1]
        if channels not in (1, 3):
            raise ValueError(
                f"SaveSyntheticDicom writes grey (1 channel) or RGB (3 channels), got {channels} channels."
            )
        if not np.isfinite(arr).all():
            raise ValueError("SaveSyntheticDicom: the image contains NaN or infinite values.")
        lo, hi = self.intensity_range or ((0.0, 1.0) if arr.size and arr.max() <= 1.0 else (0.0, 255.0))
        out = to_uint8((arr - lo) / (hi - lo))  # float64: round(255 x), clipped
        if channels == 1:
            return out[..., 0], "MONOCHROME2"
        return out, "RGB"

    def build_dataset(
        self, img: Any, meta_data: Mapping | None = None, seed: int | None = None, conditioning: Any = None
    ) -> Dataset:
        """The DICOM data set for ``img`` (not written)."""
        meta = _meta(img, meta_data)
        pixels, photometric = self._pixels(img)
        frames, rows, cols = pixels.shape[:3]
        if self.sop_class == "secondary_capture":
            if frames > 1:
                raise ValueError(
                    f"sop_class='secondary_capture' writes single frames, got {frames} frames; use sop_class='us'."
                )
            sop_class = SECONDARY_CAPTURE_IMAGE_STORAGE
        else:
            sop_class = US_MULTIFRAME_IMAGE_STORAGE if frames > 1 else US_IMAGE_STORAGE
        seed = self.seed if seed is None else seed
        cond: Any = _describe(self.conditioning) if self.conditioning is not None else None
        if conditioning is not None:
            extra = _describe(conditioning)
            if isinstance(cond, dict) and isinstance(extra, dict):
                cond = {**cond, **extra}
            else:
                cond = extra if cond is None else {"writer": cond, "call": extra}
        today, now = _now()
        if not self.one_series:
            self.series_instance_uid = generate_uid()
            if not self._fixed_study:
                self.study_instance_uid = generate_uid()
        sop_uid = generate_uid()

        ds = Dataset()
        fm = FileMetaDataset()
        fm.MediaStorageSOPClassUID = sop_class
        fm.MediaStorageSOPInstanceUID = sop_uid
        fm.TransferSyntaxUID = ExplicitVRLittleEndian
        fm.ImplementationClassUID = _IMPLEMENTATION_CLASS_UID
        fm.ImplementationVersionName = _IMPLEMENTATION_VERSION
        ds.file_meta = fm

        # SOP Common
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = sop_uid
        ds.InstanceCreationDate, ds.InstanceCreationTime = today, now
        ds.InstanceCreatorUID = _IMPLEMENTATION_CLASS_UID
        # Patient (type 2: present, empty unless given on purpose) + de-identification (PS3.15 E.1)
        ds.PatientName = self.patient_name
        ds.PatientID = self.patient_id
        ds.PatientBirthDate = self.patient_birth_date
        ds.PatientSex = self.patient_sex
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = f"Synthetic image, no patient data; by {self.model_name}"[:64]
        ds.DeidentificationMethodCodeSequence = DicomSequence(
            [_coded(Code("113100", "DCM", "Basic Application Confidentiality Profile"))]
        )
        # General Study
        ds.StudyInstanceUID = self.study_instance_uid
        ds.StudyDate = self.study_date
        ds.StudyTime = ""
        ds.ReferringPhysicianName = ""
        ds.StudyID = ""
        ds.AccessionNumber = ""
        ds.StudyDescription = "SYNTHETIC"
        # General Series
        ds.Modality = "US" if self.sop_class == "us" else "OT"
        ds.SeriesInstanceUID = self.series_instance_uid
        ds.SeriesNumber = 900
        ds.SeriesDescription = self.series_description
        ds.Laterality = ""  # type 2C: unknown for a synthetic image
        # General Equipment
        ds.Manufacturer = self.manufacturer
        ds.ManufacturerModelName = f"{self.model_name}"[:64]
        ds.SoftwareVersions = f"{self.model_version}"[:64]
        if self.sop_class == "secondary_capture":
            ds.ConversionType = "SYN"  # SC Equipment: synthetic image
        # General Image
        self._data_index += 1
        ds.InstanceNumber = self._data_index
        ds.PatientOrientation = ""
        ds.ContentDate, ds.ContentTime = today, now
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.BurnedInAnnotation = "NO"
        ds.RecognizableVisualFeatures = "NO"
        ds.LossyImageCompression = "00"
        ds.add_new(SYNTHETIC_DATA_TAG, "CS", "YES")
        provenance = {"model": self.model_name, "version": self.model_version, "seed": seed, "conditioning": cond}
        summary = (
            f"SYNTHETIC image generated by {self.model_name} {self.model_version}, seed {seed}; "
            f"conditioning: {json.dumps(cond, sort_keys=True)}; not acquired from a patient"
        )
        ds.DerivationDescription = summary if len(summary) <= 1024 else summary[:1021] + "..."
        # default=str, not usgen_monai.utils.json_default: a numpy-integer seed stays the string "5" it always was
        comments = "usgen-monai provenance: " + json.dumps(provenance, sort_keys=True, default=str)
        ds.ImageComments = comments if len(comments) <= 10240 else comments[:10237] + "..."
        equipment = Dataset()
        equipment.Manufacturer = self.manufacturer
        equipment.ManufacturerModelName = f"{self.model_name}"[:64]
        equipment.SoftwareVersions = f"{self.model_version}"[:64]
        equipment.ContributionDateTime = today + now
        equipment.ContributionDescription = (f"Synthetic image generation, seed {seed}")[:1024]
        equipment.PurposeOfReferenceCodeSequence = DicomSequence(
            [_coded(Code("109102", "DCM", "Processing Equipment"))]
        )
        ds.ContributingEquipmentSequence = DicomSequence([equipment])
        # Image Pixel
        ds.SamplesPerPixel = 1 if photometric == "MONOCHROME2" else 3
        ds.PhotometricInterpretation = photometric
        if ds.SamplesPerPixel == 3:
            ds.PlanarConfiguration = 0
        ds.Rows, ds.Columns = rows, cols
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
        if frames > 1:
            ds.NumberOfFrames = frames
            ds.FrameTime = self.frame_time_ms
            ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
            ds.CineRate = max(1, round(1000.0 / self.frame_time_ms))
        spacing = self._spacing(meta)
        if self.sop_class == "us":
            if spacing is not None:
                region = Dataset()
                region.RegionSpatialFormat = 1  # 2D
                region.RegionDataType = 1  # tissue
                region.RegionFlags = 0
                region.RegionLocationMinX0, region.RegionLocationMinY0 = 0, 0
                region.RegionLocationMaxX1, region.RegionLocationMaxY1 = cols - 1, rows - 1
                region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
                region.PhysicalDeltaX, region.PhysicalDeltaY = spacing[0] / 10.0, spacing[1] / 10.0
                ds.SequenceOfUltrasoundRegions = DicomSequence([region])
        elif spacing is not None:
            ds.PixelSpacing = [f"{spacing[1]:.6g}", f"{spacing[0]:.6g}"]  # row spacing, column spacing
        data = pixels.tobytes()
        ds.PixelData = data + (b"\x00" if len(data) % 2 else b"")
        ds["PixelData"].VR = "OB" if ds.BitsAllocated == 8 else "OW"
        return ds

    def _spacing(self, meta: Mapping) -> tuple[float, float] | None:
        if self.spacing_mm is not None:
            return self.spacing_mm
        value = meta.get("spacing")
        if value is None:
            return None
        sp = np.asarray(_to_numpy(value), dtype=np.float64).ravel()
        if sp.size < 2 or not np.isfinite(sp[:2]).all() or (sp[:2] <= 0).any():
            return None
        return (float(sp[0]), float(sp[1])) if self.reverse_indexing else (float(sp[1]), float(sp[0]))

    def write(
        self,
        img: Any,
        meta_data: Mapping | None = None,
        filename: str | os.PathLike | None = None,
        seed: int | None = None,
        conditioning: Any = None,
    ) -> Path:
        """Write ``img`` and return the file's path.

        Args:
            img: channel-first image (see the class docstring).
            meta_data: metadata for non-``MetaTensor`` inputs (file name for naming, ``spacing``).
            filename: write here instead of the naming rule.
            seed: per-image seed (overrides the constructor's).
            conditioning: per-image conditioning (merged with the constructor's).
        """
        meta = _meta(img, meta_data)
        path = Path(filename) if filename is not None else self.output_path(meta)
        return _save(self.build_dataset(img, meta, seed=seed, conditioning=conditioning), path, self.print_log)

    def __call__(
        self,
        img: Any,
        meta_data: Mapping | None = None,
        filename: str | os.PathLike | None = None,
        seed: int | None = None,
        conditioning: Any = None,
    ) -> Any:
        """Write ``img`` (see :py:meth:`write`); returns ``img``, with ``meta["saved_to"]`` set for a MetaTensor."""
        return _saved_to(img, self.write(img, meta_data, filename, seed, conditioning))


class SaveSyntheticDicomd(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`SaveSyntheticDicom`.

    Args:
        keys: the synthetic images to write.
        seed_key: item holding the per-sample seed (optional).
        conditioning_keys: items describing the conditioning (a mask, a context image, a class name); tensors are
            recorded by shape and source file name, not by value.
        allow_missing_keys: don't raise if a key is missing.
        kwargs: :py:class:`SaveSyntheticDicom` arguments (``output_dir``, ``model_name``, ...).
    """

    def __init__(
        self,
        keys: KeysCollection,
        seed_key: str | None = None,
        conditioning_keys: KeysCollection | None = None,
        allow_missing_keys: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.seed_key = seed_key
        self.conditioning_keys = [] if conditioning_keys is None else list(np.atleast_1d(conditioning_keys))
        self.saver = SaveSyntheticDicom(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        seed = d.get(self.seed_key) if self.seed_key is not None else None
        if isinstance(seed, (torch.Tensor, np.ndarray, np.generic)):
            seed = int(np.asarray(_to_numpy(seed)).ravel()[0])
        conditioning = {str(k): d[k] for k in self.conditioning_keys if k in d} or None
        for key in self.key_iterator(d):
            d[key] = self.saver(d[key], seed=seed, conditioning=conditioning)
        return d


# --------------------------------------------------------------------------------------------------------- SEG


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
            if value and os.path.isfile(str(value)) and (str(value).lower().endswith(".dcm") or _is_dicom(value)):
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
            if not found:
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
        layout = FolderLayout(self.output_dir, postfix=self.output_postfix, extension=".dcm", makedirs=False)
        return Path(layout.filename(**ultrasound_name_formatter(meta, self)))

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


def _is_dicom(path: Any) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return head[128:132] == b"DICM"


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


# ----------------------------------------------------------------------------------------------- NIfTI / PNG


_EXT_WRITERS = {".nii": AtomicNibabelWriter, ".nii.gz": AtomicNibabelWriter, ".png": AtomicPILWriter}


class SaveUltrasoundImage(SaveImage):
    """MONAI's ``SaveImage`` for NIfTI (``.nii``/``.nii.gz``) or PNG (``.png``) with this package's naming rule
    (``{output_dir}/{subject}_{postfix}{ext}``, no sub-folders) and atomic writes.

    Args:
        output_dir: folder for the files.
        output_postfix: appended to the name.
        output_ext: ``".nii.gz"``, ``".nii"`` or ``".png"``.
        output_dtype: data type to save (default float32 for NIfTI, uint8 for PNG).
        scale: PNG only: ``255`` maps ``[0, 1]`` to ``0..255`` (MONAI's rule), ``None`` saves values as they are.
        resample: resample to the original affine/shape from the metadata before saving (MONAI's behaviour).
        name_prefix: file-name prefix when the data has no file name (``{prefix}{index:06d}``).
        print_log: print the path of every file written.
        channel_dim: the channel axis of the input.
    """

    def __init__(
        self,
        output_dir: str | os.PathLike = "./",
        output_postfix: str = "trans",
        output_ext: str = ".nii.gz",
        output_dtype: DtypeLike | None = None,
        scale: int | None = None,
        resample: bool = False,
        name_prefix: str = "sample_",
        print_log: bool = False,
        channel_dim: int | None = 0,
    ) -> None:
        ext = output_ext if output_ext.startswith(".") else f".{output_ext}"
        ext = ext.lower()
        if ext not in _EXT_WRITERS:
            raise ValueError(f"output_ext must be one of {sorted(_EXT_WRITERS)}, got output_ext={output_ext!r}.")
        if output_dtype is None:
            output_dtype = np.uint8 if ext == ".png" else np.float32
        self.name_prefix = name_prefix
        super().__init__(
            output_dir=output_dir,
            output_postfix=output_postfix,
            output_ext=ext,
            output_dtype=output_dtype,
            resample=resample,
            scale=scale,
            separate_folder=False,
            print_log=print_log,
            output_name_formatter=ultrasound_name_formatter,
            channel_dim=channel_dim,
            writer=_EXT_WRITERS[ext],
        )


class SaveUltrasoundImaged(MapTransform):
    """
    Dictionary-based wrapper of :py:class:`SaveUltrasoundImage`.

    Args:
        keys: the items to save.
        allow_missing_keys: don't raise if a key is missing.
        kwargs: :py:class:`SaveUltrasoundImage` arguments.
    """

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False, **kwargs) -> None:
        super().__init__(keys, allow_missing_keys)
        self.saver = SaveUltrasoundImage(**kwargs)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.saver(d[key])
        return d


SaveSyntheticDicomD = SaveSyntheticDicomDict = SaveSyntheticDicomd
SaveDicomSegD = SaveDicomSegDict = SaveDicomSegd
SaveUltrasoundImageD = SaveUltrasoundImageDict = SaveUltrasoundImaged
