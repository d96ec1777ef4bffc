"""What the package's writers share: the file-naming rule, atomic DICOM writes, the SOP classes they write and the
array helpers that turn MONAI's channel-first images into DICOM frames.

Naming: ``{output_dir}/{subject}_{postfix}{ext}``, where ``subject`` is the input file's name without its
extension(s), taken from the metadata's ``filename_or_obj``, or ``{prefix}{index:06d}`` (``sample_000000``, ...) when
the data has no file name; ``index`` is the metadata's ``sample_index`` if present, else a running count per writer.
Files are written to a temporary file in the target folder first, then moved into place with ``os.replace``.

Used by :py:mod:`usgen_monai.data.synthetic_dicom`, :py:mod:`usgen_monai.data.dicom_seg` and
:py:mod:`usgen_monai.data.image_savers`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any

import numpy as np
import pydicom
import torch
from monai.data import FolderLayout, MetaTensor
from monai.utils import ImageMetaKey, MetaKeys
from pydicom.dataset import Dataset
from pydicom.uid import UID

from usgen_monai.data.dicom_files import PYDICOM_MAJOR
from usgen_monai.utils import atomic_write

__all__ = [
    "SECONDARY_CAPTURE_IMAGE_STORAGE",
    "SYNTHETIC_DATA_TAG",
    "US_IMAGE_STORAGE",
    "US_MULTIFRAME_IMAGE_STORAGE",
    "save_dataset_atomic",
    "ultrasound_name_formatter",
]

SYNTHETIC_DATA_TAG = 0x0008001C  # Synthetic Data, CS; pydicom 2.4's dictionary predates it
US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")
SECONDARY_CAPTURE_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")


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


def _dicom_path(writer: Any, meta: Mapping | None) -> Path:
    """``{writer.output_dir}/{subject}_{writer.output_postfix}.dcm`` by :py:func:`ultrasound_name_formatter`."""
    layout = FolderLayout(writer.output_dir, postfix=writer.output_postfix, extension=".dcm", makedirs=False)
    return Path(layout.filename(**ultrasound_name_formatter(meta, writer)))


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


# -------------------------------------------------------------------------------------------------------------- helpers


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
