"""Synthetic ultrasound images as DICOM that can never pass as scanner output: :py:class:`SaveSyntheticDicom` and
its dictionary twin :py:class:`SaveSyntheticDicomd`.

Synthetic images get new Study/Series/SOP Instance UIDs, Synthetic Data (0008,001C) = YES, Image Type
DERIVED\\SECONDARY, a series description that says SYNTHETIC, Burned In Annotation NO, Patient Identity Removed YES with
a De-identification Method (Code Sequence), and their provenance (model, version, seed, conditioning) in the
Contributing Equipment Sequence, Derivation Description and Image Comments. Nothing is copied from a source image or
from the input's metadata except the pixel spacing; patient attributes and dates are empty or "SYNTHETIC" unless
passed explicitly. Files are named and written atomically as :py:mod:`usgen_monai.data.writer_common` describes.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pydicom
import torch
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform, Transform
from monai.utils import ImageMetaKey
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid

import usgen_monai
from usgen_monai.data.writer_common import (
    SECONDARY_CAPTURE_IMAGE_STORAGE,
    SYNTHETIC_DATA_TAG,
    US_IMAGE_STORAGE,
    US_MULTIFRAME_IMAGE_STORAGE,
    _dicom_path,
    _frames_rows_cols,
    _meta,
    _save,
    _saved_to,
    _to_numpy,
)
from usgen_monai.utils import to_uint8

__all__ = ["SaveSyntheticDicom", "SaveSyntheticDicomD", "SaveSyntheticDicomDict", "SaveSyntheticDicomd"]

_IMPLEMENTATION_CLASS_UID = UID("1.2.826.0.1.3680043.8.498.10207283140551935491")  # generated once for usgen-monai
_IMPLEMENTATION_VERSION = f"USGEN_{usgen_monai.__version__}"[:16]


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
        return _dicom_path(self, meta)

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


SaveSyntheticDicomD = SaveSyntheticDicomDict = SaveSyntheticDicomd
