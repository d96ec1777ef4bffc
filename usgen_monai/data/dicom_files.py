"""Opening and decoding DICOM files, with errors that name the file: :py:func:`dcmread_file` (parse a file, telling
a non-DICOM file from a truncated or corrupted one), the checks that a data set is an image this package can decode
(SOP class, Image Pixel attributes, photometric interpretation, transfer syntax and installed decoder) and the pixel
decoding (selected frames, YBR to RGB, Modality LUT, VOI LUT / windowing, MONOCHROME1 inversion).

:py:class:`usgen_monai.data.dicom_reader.UltrasoundDicomReader` turns what this module decodes into MONAI's
``(array, metadata)``; the DICOM writers read their sources with :py:func:`dcmread_file`. Works with pydicom 2.4 and
3.x.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from monai.utils import optional_import

pydicom, has_pydicom = optional_import("pydicom")

__all__ = [
    "DICOM_SUFFIXES",
    "PYDICOM_MAJOR",
    "UltrasoundDicomError",
    "dcmread_file",
    "has_dicm_marker",
]

PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0]) if has_pydicom else 0

DICOM_SUFFIXES = ("dcm", "dicom", "dic")

# SOP classes that are DICOM objects but not images (prefix match on the UID)
_NON_IMAGE_SOP_PREFIXES = {
    "1.2.840.10008.5.1.4.1.1.88.": "structured report",
    "1.2.840.10008.5.1.4.1.1.11.": "presentation state",
    "1.2.840.10008.5.1.4.1.1.104.": "encapsulated document",
    "1.2.840.10008.5.1.4.1.1.9.": "waveform",
    "1.2.840.10008.5.1.4.1.1.481.": "radiotherapy object",
    "1.2.840.10008.5.1.4.1.1.66": "raw data / registration / fiducials",
    "1.2.840.10008.5.1.4.1.1.67": "real world value mapping",
    "1.2.840.10008.5.1.4.1.1.68.": "surface segmentation",
    "1.2.840.10008.5.1.4.1.1.91.": "content assessment",
    "1.2.840.10008.5.1.4.1.1.200.": "CT protocol",
}

# transfer syntaxes no pydicom decoder can handle: video
_VIDEO_SYNTAXES = {
    "1.2.840.10008.1.2.4.100": "MPEG-2",
    "1.2.840.10008.1.2.4.101": "MPEG-2",
    "1.2.840.10008.1.2.4.102": "MPEG-4 AVC/H.264",
    "1.2.840.10008.1.2.4.103": "MPEG-4 AVC/H.264",
    "1.2.840.10008.1.2.4.104": "MPEG-4 AVC/H.264",
    "1.2.840.10008.1.2.4.105": "MPEG-4 AVC/H.264",
    "1.2.840.10008.1.2.4.106": "MPEG-4 AVC/H.264",
    "1.2.840.10008.1.2.4.107": "HEVC/H.265",
    "1.2.840.10008.1.2.4.108": "HEVC/H.265",
}

# which packages decode which compressed transfer syntaxes (for "missing decoder" messages)
_DECODER_PACKAGES = {
    "1.2.840.10008.1.2.4.50": "pylibjpeg + pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.51": "pylibjpeg + pylibjpeg-libjpeg (or pillow)",
    "1.2.840.10008.1.2.4.57": "pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.70": "pylibjpeg + pylibjpeg-libjpeg",
    "1.2.840.10008.1.2.4.80": "pyjpegls (or pylibjpeg + pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.81": "pyjpegls (or pylibjpeg + pylibjpeg-libjpeg)",
    "1.2.840.10008.1.2.4.90": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.91": "pylibjpeg + pylibjpeg-openjpeg",
    "1.2.840.10008.1.2.4.201": "pylibjpeg + pylibjpeg-openjpeg (pydicom >= 3)",
    "1.2.840.10008.1.2.4.202": "pylibjpeg + pylibjpeg-openjpeg (pydicom >= 3)",
    "1.2.840.10008.1.2.4.203": "pylibjpeg + pylibjpeg-openjpeg (pydicom >= 3)",
    "1.2.840.10008.1.2.5": "pylibjpeg + pylibjpeg-rle (or numpy for pydicom's own decoder)",
}

_COLOR_PHOTOMETRIC = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_RCT", "YBR_ICT", "PALETTE COLOR")
_GREY_PHOTOMETRIC = ("MONOCHROME1", "MONOCHROME2")

if has_pydicom and PYDICOM_MAJOR >= 3:  # pragma: no cover - exercised under the pydicom-2.4 CI job instead
    from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space
elif has_pydicom:  # pragma: no cover - exercised under pydicom 2.4
    from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, apply_voi_lut, convert_color_space


class UltrasoundDicomError(ValueError):
    """A file that cannot be read as an ultrasound image; ``filename`` and ``reason`` say which and why."""

    def __init__(self, filename: Any, reason: str) -> None:
        self.filename = str(filename)
        self.reason = reason
        super().__init__(f"{self.filename}: {reason}")

    def __reduce__(self):
        return (self.__class__, (self.filename, self.reason))


class _NotDicomError(UltrasoundDicomError):
    """The path is missing, a folder, or not DICOM at all: ``read`` raises it so LoadImage may try other readers."""


def _dataset_name(ds: Any) -> str:
    name = getattr(ds, "filename", None)
    if isinstance(name, (str, os.PathLike)) and f"{name}":
        return f"{name}"
    return "<in-memory dataset>"


def has_dicm_marker(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a readable file with the DICOM ``DICM`` marker after the 128-byte preamble."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:132] == b"DICM"


def _uid_name(uid: str) -> str:
    name = pydicom.uid.UID(str(uid)).name
    return name if name and name != uid else uid


def dcmread_file(path: str | os.PathLike, force: bool = False, **kwargs) -> Any:
    """``pydicom.dcmread`` with errors turned into :py:class:`UltrasoundDicomError` naming the file.

    Args:
        path: the file.
        force: read files without the 128-byte preamble and ``DICM`` marker (as ``pydicom.dcmread(force=True)``).
        kwargs: more ``dcmread`` arguments.
    """
    if not has_pydicom:  # pragma: no cover - pydicom is a hard dependency
        raise UltrasoundDicomError(path, "pydicom is not installed")
    p = Path(path)
    if not p.exists():
        raise _NotDicomError(path, "file not found")
    if p.is_dir():
        raise _NotDicomError(path, "is a folder; use load_dicom_folder() to read every DICOM file in a folder")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            ds = pydicom.dcmread(os.fspath(path), force=force, **kwargs)
        for w in caught:
            if "end of file" in str(w.message).lower():
                raise EOFError(str(w.message))
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    except pydicom.errors.InvalidDicomError as e:
        raise _NotDicomError(
            path, f"not a DICOM file (no 'DICM' marker after the 128-byte preamble; force=True reads such files): {e}"
        ) from None
    except (EOFError, OSError, ValueError, KeyError, TypeError, IndexError, OverflowError, MemoryError) as e:
        raise UltrasoundDicomError(
            path, f"cannot parse the DICOM data set, the file is truncated or corrupted ({type(e).__name__}: {e})"
        ) from None
    except Exception as e:  # noqa: BLE001 - pydicom raises a zoo of types on corrupt input
        raise UltrasoundDicomError(path, f"cannot parse the DICOM data set ({type(e).__name__}: {e})") from None
    if force and len(ds) == 0 and not getattr(ds, "file_meta", None):
        raise _NotDicomError(path, "not a DICOM file (no data elements could be parsed)")
    try:
        truncated = _truncation(ds, p)  # before conversion: it needs the raw elements
        if truncated:
            raise UltrasoundDicomError(path, f"truncated file: {truncated}")
        # pydicom converts values lazily; do it now so that malformed elements are reported here, by name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for _ in ds.iterall():
                pass
    except UltrasoundDicomError:
        raise
    except Exception as e:  # noqa: BLE001 - unknown VRs, bad lengths, undecodable values, ...
        raise UltrasoundDicomError(path, f"malformed data element ({type(e).__name__}: {e})") from None
    if not isinstance(getattr(ds, "filename", None), str):
        object.__setattr__(ds, "filename", os.fspath(path))  # pydicom 2.4 leaves a buffer here for deflated files
    return ds


def _truncation(ds: Any, path: Path) -> str | None:
    """Why the file looks cut short, or None. pydicom stops quietly at the end of a file, even inside an element."""
    tags = sorted(ds.keys())
    if not tags:
        return "no data elements after the file meta information"
    raw = ds.get_item(tags[-1])
    length, tell, value = getattr(raw, "length", None), getattr(raw, "value_tell", None), getattr(raw, "value", None)
    if length is None or tell is None or length == 0xFFFFFFFF:
        return None  # already converted, or undefined length (checked by pydicom, which warns on a missing end)
    keyword = pydicom.datadict.keyword_for_tag(tags[-1]) or f"{tags[-1]}"
    if isinstance(value, (bytes, bytearray)) and len(value) < length:
        return f"the file ends inside {keyword} ({len(value)} of {length} bytes)"
    if _transfer_syntax(ds) != "1.2.840.10008.1.2.1.99":  # deflated data sets are parsed from an inflated copy
        try:
            extra = path.stat().st_size - (tell + length)
        except OSError:
            return None
        if 0 < extra < 8:
            return f"the file ends inside a data element header, {extra} byte(s) after {keyword}"
    return None


def _check_image(ds: Any, name: str) -> None:
    sop = str(ds.get("SOPClassUID", "") or getattr(getattr(ds, "file_meta", None), "MediaStorageSOPClassUID", ""))
    for prefix, kind in _NON_IMAGE_SOP_PREFIXES.items():
        if sop.startswith(prefix):
            raise UltrasoundDicomError(
                name, f"is a {kind} ({_uid_name(sop)}, SOP Class {sop}), not an image: no pixel data to read"
            )
    if "PixelData" not in ds:
        other = [k for k in ("FloatPixelData", "DoubleFloatPixelData") if k in ds]
        if other:
            raise UltrasoundDicomError(name, f"has {other[0]} instead of Pixel Data (7FE0,0010); not supported")
        what = f" ({_uid_name(sop)})" if sop else ""
        raise UltrasoundDicomError(name, f"has no pixel data (7FE0,0010){what}; is it an image object?")
    missing = [k for k in ("Rows", "Columns", "BitsAllocated", "PhotometricInterpretation") if ds.get(k) in (None, "")]
    if missing:
        raise UltrasoundDicomError(name, f"has pixel data but lacks required Image Pixel attributes {missing}")
    pi = str(ds.PhotometricInterpretation).strip()
    if pi not in _COLOR_PHOTOMETRIC + _GREY_PHOTOMETRIC:
        raise UltrasoundDicomError(
            name,
            f"unsupported Photometric Interpretation {pi!r} (supported: {', '.join(_GREY_PHOTOMETRIC + _COLOR_PHOTOMETRIC)})",
        )


def _transfer_syntax(ds: Any) -> str:
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    return str(ts) if ts else "1.2.840.10008.1.2"  # implicit VR little endian is the DICOM default


def _check_decoder(ds: Any, name: str) -> None:
    """Raise a clear error when no decoder exists or none is installed for the file's transfer syntax."""
    ts = _transfer_syntax(ds)
    label = f"{_uid_name(ts)} ({ts})" if _uid_name(ts) != ts else ts
    if ts in _VIDEO_SYNTAXES:
        raise UltrasoundDicomError(
            name,
            f"unsupported transfer syntax {label}: {_VIDEO_SYNTAXES[ts]} video cannot be decoded to frames "
            "here; export the cine as images (e.g. JPEG baseline or uncompressed) first",
        )
    uid = pydicom.uid.UID(ts)
    if not uid.is_compressed:
        return
    hint = _DECODER_PACKAGES.get(ts)
    if PYDICOM_MAJOR >= 3:
        from pydicom.pixels import get_decoder

        try:
            decoder = get_decoder(uid)
        except NotImplementedError:
            raise UltrasoundDicomError(
                name, f"unsupported transfer syntax {label}: pydicom {pydicom.__version__} has no decoder for it"
            ) from None
        if not decoder.is_available:
            missing = "; ".join(decoder.missing_dependencies)
            raise UltrasoundDicomError(
                name,
                f"no decoder installed for transfer syntax {label}; install {hint or 'a pydicom decoding plugin'}"
                + (f" (missing: {missing})" if missing else ""),
            )
        return
    handlers = [h for h in pydicom.config.pixel_data_handlers if h.supports_transfer_syntax(uid)]
    if not handlers:
        raise UltrasoundDicomError(
            name, f"unsupported transfer syntax {label}: pydicom {pydicom.__version__} has no decoder for it"
        )
    if not any(h.is_available() for h in handlers):
        deps = sorted({dep for h in handlers for dep in getattr(h, "DEPENDENCIES", {})})
        raise UltrasoundDicomError(
            name,
            f"no decoder installed for transfer syntax {label}; install {hint or 'a pydicom pixel data handler'}"
            + (f" (missing: {', '.join(deps)})" if deps else ""),
        )


def _decode(ds: Any, indices: list[int], n_frames: int, name: str) -> np.ndarray:
    """Decoded frames ``(len(indices), rows, cols[, samples])``; YBR and palette colour data come back as RGB."""
    _check_decoder(ds, name)
    pi = str(ds.PhotometricInterpretation).strip()
    ts = _transfer_syntax(ds)
    try:
        if PYDICOM_MAJOR >= 3 and len(indices) < n_frames:
            from pydicom.pixels import pixel_array

            arr = np.stack([pixel_array(ds, index=i) for i in indices])
        else:
            with warnings.catch_warnings():
                # pydicom 2.4 warns that J2K YBR_RCT/ICT data is already RGB; handled below
                warnings.filterwarnings("ignore", message=".*Photometric Interpretation.*")
                arr = ds.pixel_array
            samples = int(ds.get("SamplesPerPixel", 1) or 1)
            if n_frames == 1 or arr.ndim == (2 if samples == 1 else 3):
                arr = arr[None]
            arr = arr[indices]
    except UltrasoundDicomError:
        raise
    except MemoryError:
        raise UltrasoundDicomError(name, "not enough memory to decode the pixel data") from None
    except Exception as e:  # noqa: BLE001 - decoders raise many types on corrupt data
        raise UltrasoundDicomError(
            name,
            f"cannot decode the pixel data ({_uid_name(ts)}): {type(e).__name__}: {e}; the file may be truncated "
            "or the compressed stream corrupted",
        ) from None
    if PYDICOM_MAJOR < 3 and pi in ("YBR_FULL", "YBR_FULL_422"):
        # pydicom 2.4 returns these as stored (YBR); pydicom 3 converts to RGB itself. J2K YBR_RCT/ICT come out RGB.
        arr = convert_color_space(arr, pi, "RGB")
    if pi == "PALETTE COLOR":
        try:
            arr = np.asarray(apply_color_lut(arr, ds))
        except Exception as e:  # noqa: BLE001
            raise UltrasoundDicomError(name, f"cannot apply the palette colour lookup table: {e}") from None
    return arr


def _value_range(ds: Any) -> tuple[float, float]:
    bits = int(ds.get("BitsStored", ds.BitsAllocated) or ds.BitsAllocated)
    if int(ds.get("PixelRepresentation", 0) or 0) == 1:
        return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return 0, 2**bits - 1


def _grey_pipeline(arr: np.ndarray, ds: Any, apply_voi: bool, invert_monochrome1: bool) -> np.ndarray:
    """Modality LUT, VOI LUT / windowing and MONOCHROME1 inversion for grey frames ``(F, R, C)``."""
    lo, hi = _value_range(ds)
    dtype = arr.dtype

    def luts(x: np.ndarray) -> np.ndarray:
        x = apply_modality_lut(x, ds)
        if apply_voi and ("WindowCenter" in ds or "VOILUTSequence" in ds):
            x = apply_voi_lut(x, ds, index=0)
        return x

    out = np.asarray(luts(arr), dtype=np.float32)
    if invert_monochrome1 and str(ds.PhotometricInterpretation).strip() == "MONOCHROME1":
        ext = np.asarray(luts(np.array([lo, hi], dtype=dtype)), dtype=np.float64)
        out = np.float32(ext.min() + ext.max()) - out
    return out
