"""Ultrasound-aware DICOM reading for MONAI: :py:class:`UltrasoundDicomReader` and :py:func:`load_dicom_folder`.

The reader is a :py:class:`monai.data.ImageReader`, so it plugs into ``LoadImage`` / ``LoadImaged``::

    from monai.transforms import LoadImage
    from usgen_monai.data import UltrasoundDicomReader

    img = LoadImage(reader=UltrasoundDicomReader(), image_only=True, ensure_channel_first=True)("cine.dcm")
    img.shape          # (1, columns, rows, frames) for a grey cine
    img.meta["spacing"]  # mm per pixel from the Sequence of Ultrasound Regions

What it handles:

- SOP classes: Ultrasound (Multi-frame) Image, Secondary Capture and any other single/multi-frame image with
  *Pixel Data*; objects without pixel data (structured reports, presentation states, ...) are rejected.
- Photometric interpretations: MONOCHROME1 (inverted so that bright means echogenic) and MONOCHROME2 with the
  Modality LUT and VOI LUT / windowing applied when present; RGB, YBR_FULL, YBR_FULL_422, YBR_RCT, YBR_ICT and
  PALETTE COLOR, all first converted to RGB.
- Colour to grey: unless ``keep_color=True``, colour images become one grey channel by ITU-R BT.601 luma,
  ``Y = 0.299 R + 0.587 G + 0.114 B`` (:py:func:`usgen_monai.transforms.ultrasound.rgb_to_grey`). It is exact for
  B-mode stored as colour (R = G = B) and gives the luminance of colour overlays. ``keep_color=True`` keeps RGB
  (channel last, as MONAI's ``PILReader`` does), e.g. for colour Doppler.
- Transfer syntaxes: whatever the installed pydicom decoders support; the package depends on the plugins for JPEG
  baseline/extended/lossless, JPEG-LS, JPEG 2000 and RLE (``pylibjpeg``, ``pylibjpeg-libjpeg``,
  ``pylibjpeg-openjpeg``, ``pylibjpeg-rle``, ``pyjpegls``); uncompressed and deflated data need none.
- Frames: all frames as a trailing frame axis, or one frame (no frame axis), or a list / range / slice of frames.
- Sequence of Ultrasound Regions: spacing in mm (PhysicalDeltaX/Y with units code 3 = cm) becomes the spacing and
  affine; the largest tissue (B-mode, RegionDataType 1) region becomes ``us_region_box`` and, with
  ``crop_to_region=True``, the crop. Regions that extend past the image (recorded for another resolution) are
  clipped, flagged in ``us_regions_clipped`` and reported with an :py:class:`UltrasoundRegionWarning`.

Axis order follows MONAI's other 2D readers: by default (``reverse_indexing=True``) the first spatial axis is the
column (x) and the second the row (y), so a DICOM image and a PNG of it load with the same shape. Frames come after
the spatial axes; colour channels last. No patient identifiers are copied into the metadata.

Parsing files and decoding their pixels (with the errors that name the file) live in
:py:mod:`usgen_monai.data.dicom_files`; this module turns the decoded frames into MONAI's ``(array, metadata)``: the
reader, the Sequence of Ultrasound Regions and the folder loader. Works with pydicom 2.4 and 3.x.
"""

from __future__ import annotations

import json
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any

import numpy as np
from monai.data import ImageReader
from monai.utils import MetaKeys, SpaceKeys, ensure_tuple

from usgen_monai.data.dicom_files import (
    _GREY_PHOTOMETRIC,
    DICOM_SUFFIXES,
    PYDICOM_MAJOR,
    UltrasoundDicomError,
    _check_image,
    _dataset_name,
    _decode,
    _grey_pipeline,
    _NotDicomError,
    _transfer_syntax,
    dcmread_file,
    has_dicm_marker,
    has_pydicom,
)
from usgen_monai.data.library_messages import install_library_message_filters
from usgen_monai.transforms.ultrasound.array import UltrasoundMetaKeys, normalize_frame_selection, rgb_to_grey

__all__ = [
    "DICOM_SUFFIXES",
    "PYDICOM_MAJOR",
    "DicomFolderResult",
    "UltrasoundDicomError",
    "UltrasoundDicomReader",
    "UltrasoundRegionWarning",
    "dcmread_file",
    "load_dicom_folder",
]

logger = logging.getLogger(__name__)

# RegionDataType (0018,6014) and physical units (0018,6024/6026) that the metadata names
_REGION_DATA_TYPES = {
    0: "none",
    1: "tissue",
    2: "color_flow",
    3: "pw_spectral_doppler",
    4: "cw_spectral_doppler",
    5: "doppler_mean_trace",
    6: "doppler_mode_trace",
    7: "doppler_max_trace",
    8: "volume_trace",
    10: "ecg_trace",
    11: "pulse_trace",
    12: "phonocardiogram",
    13: "gray_bar",
    14: "color_bar",
    15: "integrated_backscatter",
    16: "area_trace",
    17: "d_area_dt",
    18: "other_physiological",
}
_UNITS_CM = 3


@dataclass
class _UnreadableDicom:
    """What ``read`` returns for a DICOM file it could not parse: ``get_data`` raises the error, so that LoadImage
    reports it instead of falling back to another reader that fails later with a less helpful message."""

    error: UltrasoundDicomError


class UltrasoundRegionWarning(UserWarning):
    """A region of the Sequence of Ultrasound Regions had to be clipped or ignored."""


def _plain(value: Any) -> Any:
    """pydicom values -> plain python (str / float / int / list) so metadata collates and pickles cleanly."""
    if value is None:
        return ""
    if isinstance(value, (bytes, bytearray)):
        return value.decode("ascii", errors="replace")
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return [_plain(v) for v in value]
    if isinstance(value, (int, float, np.integer, np.floating)):
        return value.item() if isinstance(value, np.generic) else value
    return str(value)


@dataclass
class _Region:
    index: int
    data_type: int
    spatial_format: int
    box: tuple[int, int, int, int]  # x0, y0, x1, y1 exclusive, clipped to the image
    stored: tuple[int, int, int, int]  # as stored (inclusive maxima)
    clipped: bool
    units: tuple[int, int]
    delta: tuple[float, float]

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])

    def spacing_mm(self) -> tuple[float, float] | None:
        if self.units != (_UNITS_CM, _UNITS_CM):
            return None
        dx, dy = (abs(float(d)) * 10.0 for d in self.delta)
        if not (math.isfinite(dx) and math.isfinite(dy)) or dx <= 0 or dy <= 0:
            return None
        return dx, dy

    def to_json(self) -> dict:
        return {
            "index": self.index,
            "data_type": self.data_type,
            "data_type_name": _REGION_DATA_TYPES.get(self.data_type, "unknown"),
            "spatial_format": self.spatial_format,
            "box": list(self.box),
            "stored_box": list(self.stored),
            "clipped": self.clipped,
            "units": list(self.units),
            "physical_delta": [float(d) for d in self.delta],
        }


def _parse_regions(ds: Any, rows: int, cols: int, name: str, warn: bool) -> list[_Region]:
    regions: list[_Region] = []
    for i, item in enumerate(ds.get("SequenceOfUltrasoundRegions", None) or []):
        try:
            stored = tuple(
                int(item.get(k))
                for k in ("RegionLocationMinX0", "RegionLocationMinY0", "RegionLocationMaxX1", "RegionLocationMaxY1")
            )
        except (TypeError, ValueError):
            if warn:
                warnings.warn(
                    f"{name}: ultrasound region {i} lacks its RegionLocation corners; ignored.",
                    UltrasoundRegionWarning,
                    stacklevel=3,
                )
            continue
        x0, y0, x1, y1 = stored
        if x1 < x0 or y1 < y0:
            if warn:
                warnings.warn(
                    f"{name}: ultrasound region {i} has inverted corners {stored}; ignored.",
                    UltrasoundRegionWarning,
                    stacklevel=3,
                )
            continue
        box = (max(x0, 0), max(y0, 0), min(x1 + 1, cols), min(y1 + 1, rows))
        clipped = box != (x0, y0, x1 + 1, y1 + 1)
        if box[2] <= box[0] or box[3] <= box[1]:
            if warn:
                warnings.warn(
                    f"{name}: ultrasound region {i} (x {x0}..{x1}, y {y0}..{y1}) lies entirely outside the "
                    f"{cols} x {rows} image (recorded for another resolution?); ignored.",
                    UltrasoundRegionWarning,
                    stacklevel=3,
                )
            continue
        if clipped and warn:
            warnings.warn(
                f"{name}: ultrasound region {i} (x {x0}..{x1}, y {y0}..{y1}) extends past the {cols} x {rows} "
                f"image (recorded for another resolution?); clipped to x {box[0]}..{box[2] - 1}, "
                f"y {box[1]}..{box[3] - 1}.",
                UltrasoundRegionWarning,
                stacklevel=3,
            )

        regions.append(
            _Region(
                index=i,
                data_type=int(item.get("RegionDataType", 0) or 0),
                spatial_format=int(item.get("RegionSpatialFormat", 0) or 0),
                box=box,
                stored=stored,
                clipped=clipped,
                units=(
                    int(item.get("PhysicalUnitsXDirection", 0) or 0),
                    int(item.get("PhysicalUnitsYDirection", 0) or 0),
                ),
                delta=(_number(item, "PhysicalDeltaX"), _number(item, "PhysicalDeltaY")),
            )
        )
    return regions


def _number(item: Any, key: str, default: float = 0.0) -> float:
    try:
        return float(item.get(key, default))
    except (TypeError, ValueError):
        return default


def _choose_region(regions: list[_Region]) -> _Region | None:
    """Largest tissue (B-mode) region; failing that, the largest 2D region."""
    for candidates in ([r for r in regions if r.data_type == 1], [r for r in regions if r.spatial_format == 1]):
        if candidates:
            return max(candidates, key=lambda r: r.area)
    return None


def _spacing(ds: Any, chosen: _Region | None, regions: list[_Region]) -> tuple[tuple[float, float], str]:
    """(x spacing, y spacing) in mm and where it came from."""
    for region in ([chosen] if chosen is not None else []) + sorted(regions, key=lambda r: -r.area):
        if region.spatial_format in (0, 1) or region is chosen:
            sp = region.spacing_mm()
            if sp is not None:
                return sp, "ultrasound_region"
    for key, source in (("PixelSpacing", "pixel_spacing"), ("ImagerPixelSpacing", "imager_pixel_spacing")):
        value = ds.get(key)
        if value is not None:
            try:
                row_sp, col_sp = (float(v) for v in value)
            except (TypeError, ValueError):
                continue
            if row_sp > 0 and col_sp > 0 and math.isfinite(row_sp) and math.isfinite(col_sp):
                return (col_sp, row_sp), source
    return (1.0, 1.0), "none"


class UltrasoundDicomReader(ImageReader):
    """Read ultrasound DICOM (and other 2D DICOM images) for MONAI's ``LoadImage`` / ``LoadImaged``.

    See the module docstring for the supported SOP classes, photometric interpretations, transfer syntaxes and the
    colour-to-grey rule.

    Args:
        keep_color: keep colour images as RGB (channel last) instead of converting them to grey.
        frames: ``None`` for all frames (multi-frame files get a frame axis after the spatial axes), an int for one
            frame (no frame axis), or a sequence of indices / ``range`` / ``slice`` (frame axis kept).
        crop_to_region: crop to the largest tissue (B-mode) region of the Sequence of Ultrasound Regions. Files
            without one are returned whole. The crop is not recorded as a transform; to map predictions back, use
            :py:class:`usgen_monai.transforms.CropToUltrasoundRegiond` (invertible) instead.
        apply_voi_lut: apply a VOI LUT or window centre/width when the file has one (grey images).
        invert_monochrome1: invert MONOCHROME1 so that higher values are brighter.
        reverse_indexing: ``True`` (MONAI's convention): spatial axes are (column, row); ``False``: (row, column).
        force: read files that lack the DICOM preamble/marker (``pydicom.dcmread(force=True)``).
        warn_on_region_clip: warn when a region runs past the image (the metadata flag is set either way).
        kwargs: more ``pydicom.dcmread`` arguments.

    Errors: every problem with a file (not DICOM, truncated, no pixel data, a non-image object such as a structured
    report, unsupported transfer syntax or missing decoder, undecodable pixel data, bad frame selection) raises
    :py:class:`UltrasoundDicomError` (a ``ValueError``) whose message starts with the file name.
    """

    def __init__(
        self,
        keep_color: bool = False,
        frames: int | Sequence[int] | slice | range | None = None,
        crop_to_region: bool = False,
        apply_voi_lut: bool = True,
        invert_monochrome1: bool = True,
        reverse_indexing: bool = True,
        force: bool = False,
        warn_on_region_clip: bool = True,
        **kwargs,
    ) -> None:
        super().__init__()
        install_library_message_filters()  # MONAI's per-reader environment messages: once per process
        if frames is not None and (
            isinstance(frames, (bool, str)) or not isinstance(frames, (int, np.integer, Sequence, slice, range))
        ):
            raise ValueError(f"frames must be None, an int, a sequence of ints, a range or a slice, got {frames!r}.")
        self.keep_color = keep_color
        self.frames = frames
        self.crop_to_region = crop_to_region
        self.apply_voi_lut = apply_voi_lut
        self.invert_monochrome1 = invert_monochrome1
        self.reverse_indexing = reverse_indexing
        self.force = force
        self.warn_on_region_clip = warn_on_region_clip
        self.kwargs = kwargs

    def verify_suffix(self, filename: Sequence[str | os.PathLike] | str | os.PathLike) -> bool:
        """Whether this reader can read ``filename`` (all of them, for a sequence).

        True for ``.dcm`` / ``.dicom`` / ``.dic`` names, and for existing files under any other name that carry the
        DICOM ``DICM`` marker (DICOM files often have no suffix at all). False when pydicom is not installed.
        """
        if not has_pydicom:
            return False
        for name in ensure_tuple(filename):
            if not isinstance(name, (str, os.PathLike)):
                return False
            suffixes = "".join(s.lower() for s in PurePath(name).suffixes)
            if any(suffixes.endswith(f".{s}") for s in DICOM_SUFFIXES):
                continue
            if not (Path(name).is_file() and has_dicm_marker(name)):
                return False
        return True

    def read(self, data: Sequence[str | os.PathLike] | str | os.PathLike, **kwargs) -> Any:
        """Parse one file (returns a ``pydicom.Dataset``) or several (returns a list; ``get_data`` stacks them).

        Args:
            data: file name(s).
            kwargs: ``pydicom.dcmread`` arguments, overriding the constructor's.

        Raises:
            UltrasoundDicomError: the file is missing, a folder or not DICOM at all (so that ``LoadImage`` can try
                its other readers). A DICOM file that cannot be parsed (truncated, corrupted) is reported by
                :py:meth:`get_data` instead, so ``LoadImage`` shows this reader's diagnosis.
        """
        kwargs_ = {**self.kwargs, **kwargs}
        force = kwargs_.pop("force", self.force)
        names = ensure_tuple(data)
        datasets: list[Any] = []
        for name in names:
            try:
                datasets.append(dcmread_file(name, force=force, **kwargs_))
            except _NotDicomError:
                raise
            except UltrasoundDicomError as e:
                datasets.append(_UnreadableDicom(e))
        return datasets[0] if len(datasets) == 1 else datasets

    def get_data(self, img: Any) -> tuple[np.ndarray, dict]:
        """Decode the pixel data and build the metadata.

        Args:
            img: a ``pydicom.Dataset`` from :py:meth:`read`, or a list of them (stacked along a new first axis,
                which ``EnsureChannelFirst`` then treats as the channel axis; grey images only).

        Returns:
            ``(array, metadata)``: float32 array of shape ``(X, Y[, F][, 3])`` (``reverse_indexing=True``) and a
            metadata dict with MONAI's keys (affine, spatial shape, original channel dim, space), ``spacing`` in mm,
            the DICOM UIDs and image attributes, and the ``us_*`` keys of
            :py:class:`usgen_monai.transforms.ultrasound.UltrasoundMetaKeys`.
        """
        items = img if isinstance(img, (list, tuple)) else [img]
        arrays, metas = zip(*(self._get_one(ds) for ds in items))
        if len(arrays) == 1:
            return arrays[0], metas[0]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1:
            names = [m["filename_or_obj"] for m in metas]
            raise UltrasoundDicomError(names[0], f"cannot stack files of different shapes {sorted(shapes)}: {names}")
        meta = dict(metas[0])
        if np.isnan(meta[MetaKeys.ORIGINAL_CHANNEL_DIM]):
            data = np.stack(arrays, axis=0)
            meta[MetaKeys.ORIGINAL_CHANNEL_DIM] = 0
        else:
            data = np.concatenate(arrays, axis=-1)
        return data, meta

    def _frame_selection(self, n_frames: int, name: str) -> tuple[list[int], bool]:
        """Selected 0-based indices and whether the output keeps a frame axis."""
        if self.frames is None:
            return list(range(n_frames)), n_frames > 1
        try:
            indices = normalize_frame_selection(self.frames, n_frames)
        except ValueError as e:
            raise UltrasoundDicomError(name, str(e)) from None
        return indices, not isinstance(self.frames, (int, np.integer))

    def _get_one(self, ds: Any) -> tuple[np.ndarray, dict]:
        if isinstance(ds, _UnreadableDicom):
            raise ds.error
        name = _dataset_name(ds)
        try:
            return self._convert(ds, name)
        except UltrasoundDicomError:
            raise
        except MemoryError:
            raise UltrasoundDicomError(name, "not enough memory to read the image") from None
        except Exception as e:  # noqa: BLE001 - corrupt attribute values surface in many ways
            raise UltrasoundDicomError(
                name, f"invalid or corrupted attribute values ({type(e).__name__}: {e})"
            ) from None

    def _convert(self, ds: Any, name: str) -> tuple[np.ndarray, dict]:
        _check_image(ds, name)
        rows, cols = int(ds.Rows), int(ds.Columns)
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        try:
            n_frames = int(ds.get("NumberOfFrames", 1) or 1)
        except (TypeError, ValueError):
            raise UltrasoundDicomError(name, f"invalid NumberOfFrames {ds.get('NumberOfFrames')!r}") from None
        if rows <= 0 or cols <= 0 or n_frames <= 0:
            raise UltrasoundDicomError(name, f"invalid image size: {n_frames} frame(s) of {rows} x {cols}")
        indices, frame_axis = self._frame_selection(n_frames, name)
        pi = str(ds.PhotometricInterpretation).strip()

        arr = _decode(ds, indices, n_frames, name)
        if arr.shape[1:3] != (rows, cols):
            raise UltrasoundDicomError(name, f"decoded frames of shape {arr.shape[1:3]}, expected {(rows, cols)}")
        if pi in _GREY_PHOTOMETRIC:
            out = _grey_pipeline(arr, ds, self.apply_voi_lut, self.invert_monochrome1)
            color = "grey"
        elif self.keep_color:
            out = arr.astype(np.float32)
            color = "rgb"
        else:
            out = rgb_to_grey(arr, channel_dim=-1, keepdim=False).astype(np.float32, copy=False)
            color = "grey"

        regions = _parse_regions(ds, rows, cols, name, warn=self.warn_on_region_clip)
        chosen = _choose_region(regions)
        (sx, sy), spacing_source = _spacing(ds, chosen, regions)
        box = chosen.box if chosen is not None else (0, 0, cols, rows)

        x_off = y_off = 0
        if self.crop_to_region and chosen is not None:
            x0, y0, x1, y1 = box
            out = out[:, y0:y1, x0:x1]
            x_off, y_off = x0, y0

        # (F, R, C[, S]) -> spatial axes first, frames after them, channels last
        out = np.moveaxis(out, 0, 2)  # (R, C, F[, S])
        if self.reverse_indexing:
            out = np.swapaxes(out, 0, 1)  # (C, R, F[, S])
        if not frame_axis:
            out = out[:, :, 0]
        out = np.ascontiguousarray(out)

        spacing_axes = [sx, sy] if self.reverse_indexing else [sy, sx]
        offsets = [x_off, y_off] if self.reverse_indexing else [y_off, x_off]
        if frame_axis:
            spacing_axes.append(1.0)
            offsets.append(indices[0])
        affine = np.eye(4)
        for i, (s, o) in enumerate(zip(spacing_axes, offsets)):
            affine[i, i] = s
            affine[i, 3] = o * s
        spatial_shape = out.shape[: 3 if frame_axis else 2]
        region_start = (
            np.array([box[0] - x_off, box[1] - y_off])
            if self.reverse_indexing
            else np.array([box[1] - y_off, box[0] - x_off])
        )
        region_end = (
            np.array([box[2] - x_off, box[3] - y_off])
            if self.reverse_indexing
            else np.array([box[3] - y_off, box[2] - x_off])
        )
        try:
            frame_time = float(ds.get("FrameTime", float("nan")))
        except (TypeError, ValueError):
            frame_time = float("nan")

        meta: dict[str, Any] = {
            "filename_or_obj": name,
            MetaKeys.SPATIAL_SHAPE: np.asarray(spatial_shape),
            MetaKeys.ORIGINAL_CHANNEL_DIM: -1 if color == "rgb" else float("nan"),
            MetaKeys.AFFINE: affine,
            MetaKeys.ORIGINAL_AFFINE: affine.copy(),
            MetaKeys.SPACE: SpaceKeys.RAS,
            "spacing": np.asarray(spacing_axes, dtype=np.float64),
            "StudyInstanceUID": _plain(ds.get("StudyInstanceUID", "")),
            "SeriesInstanceUID": _plain(ds.get("SeriesInstanceUID", "")),
            "SOPInstanceUID": _plain(ds.get("SOPInstanceUID", "")),
            "SOPClassUID": _plain(ds.get("SOPClassUID", "")),
            "FrameOfReferenceUID": _plain(ds.get("FrameOfReferenceUID", "")),
            "TransferSyntaxUID": _transfer_syntax(ds),
            "Modality": _plain(ds.get("Modality", "")),
            "PhotometricInterpretation": pi,
            "Rows": rows,
            "Columns": cols,
            "NumberOfFrames": n_frames,
            "SamplesPerPixel": samples,
            "BitsStored": int(ds.get("BitsStored", ds.BitsAllocated) or ds.BitsAllocated),
            UltrasoundMetaKeys.ORIGINAL_SHAPE: np.array([n_frames, rows, cols, samples]),
            UltrasoundMetaKeys.FRAME_INDICES: np.asarray(indices),
            UltrasoundMetaKeys.FRAME_TIME: frame_time,
            UltrasoundMetaKeys.REGION_BOX: np.asarray(box),
            UltrasoundMetaKeys.REGION_FOUND: chosen is not None,
            UltrasoundMetaKeys.REGION_ROI_START: region_start,
            UltrasoundMetaKeys.REGION_ROI_END: region_end,
            UltrasoundMetaKeys.REGIONS: json.dumps([r.to_json() for r in regions]),
            UltrasoundMetaKeys.REGIONS_CLIPPED: any(r.clipped for r in regions),
            UltrasoundMetaKeys.SPACING_SOURCE: spacing_source,
            UltrasoundMetaKeys.CROPPED: bool(self.crop_to_region and chosen is not None),
            UltrasoundMetaKeys.COLOR: color,
        }
        return out, meta


@dataclass
class DicomFolderResult:
    """What :py:func:`load_dicom_folder` read and skipped.

    Attributes:
        images: the loaded images (``MetaTensor``), in file-name order.
        paths: the file each image came from.
        failures: ``(path, reason)`` for every skipped file.
    """

    images: list = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)
    failures: list[tuple[Path, str]] = field(default_factory=list)

    def summary(self) -> str:
        """One line: how many files loaded and why the others were skipped."""
        total = len(self.paths) + len(self.failures)
        text = f"loaded {len(self.paths)} of {total} file(s)"
        if self.failures:
            text += f", skipped {len(self.failures)}: " + "; ".join(f"{p.name} ({r})" for p, r in self.failures)
        return text


def load_dicom_folder(
    folder: str | os.PathLike,
    reader: UltrasoundDicomReader | None = None,
    recursive: bool = False,
    pattern: str = "*",
    ensure_channel_first: bool = True,
    dtype: Any = np.float32,
    on_error: Callable[[Path, str], None] | None = None,
) -> DicomFolderResult:
    """Load every DICOM file in a folder, reporting and skipping those that fail, and summarising at the end.

    Every regular, non-hidden file matching ``pattern`` is tried (DICOM files often have no suffix). A file that
    cannot be read (not DICOM, truncated, no pixel data, a structured report, a missing decoder, ...) is logged as a
    warning with the reason, passed to ``on_error`` and skipped; the rest are loaded. A summary is logged at the end.

    Args:
        folder: the folder to read.
        reader: the reader to use, default ``UltrasoundDicomReader()``.
        recursive: also read sub-folders.
        pattern: glob pattern for file names.
        ensure_channel_first: as ``LoadImage``'s.
        dtype: as ``LoadImage``'s.
        on_error: called with ``(path, reason)`` for each skipped file.

    Raises:
        ValueError: ``folder`` is not a folder.
    """
    from monai.transforms import LoadImage

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"load_dicom_folder: {root} is not a folder.")
    reader = reader or UltrasoundDicomReader()
    loader = LoadImage(image_only=True, ensure_channel_first=ensure_channel_first, dtype=dtype)
    files: Iterable[Path] = root.rglob(pattern) if recursive else root.glob(pattern)
    result = DicomFolderResult()
    for path in sorted(
        p for p in files if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    ):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UltrasoundRegionWarning)
                image = loader(path, reader=reader)
            for w in caught:
                logger.warning("%s", w.message)
        except UltrasoundDicomError as e:
            reason = e.reason
        except Exception as e:  # noqa: BLE001 - keep going whatever one file does
            reason = f"{type(e).__name__}: {e}"
        else:
            result.images.append(image)
            result.paths.append(path)
            continue
        logger.warning("skipped %s: %s", path, reason)
        result.failures.append((path, reason))
        if on_error is not None:
            on_error(path, reason)
    log = logger.warning if result.failures else logger.info
    log("load_dicom_folder(%s): %s", root, result.summary())
    return result
