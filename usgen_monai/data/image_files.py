"""Reading single 2D image and label-map files the way the CSG generator sees them.

Shared by training on a user's data set (:py:class:`usgen_monai.data.generator_data.UserGeneratorDataset`) and by
inference (the user's masks, context images and style references), so an image or mask means the same thing to
both. Files are read with MONAI's ``LoadImage`` (``.dcm`` with :py:class:`usgen_monai.data.UltrasoundDicomReader`);
arrays come back in (row, column) order.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

__all__ = ["MASK_FILE_SUFFIXES", "load_2d", "read_grey_image", "read_label_values", "resize_label_map"]

MASK_FILE_SUFFIXES = (".png", ".nii", ".nii.gz")


def load_2d(path: str | os.PathLike) -> np.ndarray:
    """An image or label file as an ``(H, W)`` or ``(H, W, C)`` array in its stored dtype.

    MONAI's readers return arrays in MONAI's axis order (first axis = image column, as ``PILReader`` returns PNGs);
    they are swapped to (row, column) here. The pair writers store arrays the same way, so a file they write reads
    back as the array that was written.

    Raises:
        ValueError: the file does not hold one 2D grey or colour image (the message names the file).
    """
    from monai.transforms import LoadImage
    from monai.utils import convert_to_numpy

    path = Path(path)
    reader = None
    if path.suffix.lower() == ".dcm":
        from usgen_monai.data.dicom_reader import UltrasoundDicomReader

        reader = UltrasoundDicomReader()
    arr = convert_to_numpy(LoadImage(image_only=True, dtype=None, reader=reader)(str(path)))
    while arr.ndim > 2 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        return np.swapaxes(arr, 0, 1)
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a 2D image (grey or RGB), got an array of shape {arr.shape}.")
    return np.swapaxes(arr, 0, 1)


def _read_array(path: Path) -> np.ndarray:
    """:py:func:`load_2d`, with any reader failure turned into a ValueError that names the file."""
    try:
        return load_2d(path)
    except ValueError:
        raise
    except Exception as e:  # noqa: BLE001 (readers raise many types for a broken file; it is reported)
        raise ValueError(f"{path}: cannot be read as an image ({type(e).__name__}: {e}).") from None


def _grey(arr: np.ndarray) -> np.ndarray:
    """Colour ``(H, W, 3|4)`` to grey by the package's one ITU-R BT.601 luma,
    :py:func:`usgen_monai.transforms.ultrasound.rgb_to_grey` (also the DICOM reader's); grey passes through."""
    if arr.ndim == 2:
        return arr
    from usgen_monai.transforms.ultrasound.array import rgb_to_grey

    return rgb_to_grey(arr, channel_dim=-1, keepdim=False)


def read_grey_image(path: str | os.PathLike, size: tuple[int, int]) -> torch.Tensor:
    """A grey ``(1, H, W)`` float image in ``[0, 1]`` of ``size``.

    8-bit values are divided by 255, floats already in ``[0, 1]`` are kept, anything else is scaled from its minimum
    and maximum; colour is converted by ITU-R BT.601 luma; the image is resized by area averaging when shrinking,
    bilinearly otherwise.

    Raises:
        ValueError: unreadable, not 2D, or NaN/infinite values (the message names the file).
    """
    from monai.transforms import Resize
    from monai.utils import convert_to_tensor

    path = Path(path)
    arr = _read_array(path)
    if arr.dtype == np.uint8:
        img = _grey(arr).astype(np.float32) / 255.0
    else:
        img = _grey(arr).astype(np.float32)
        if not np.isfinite(img).all():
            raise ValueError(f"{path}: the image holds NaN or infinite values.")
        lo, hi = float(img.min()), float(img.max())
        if lo < 0.0 or hi > 1.0:
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    t = torch.as_tensor(img)[None]
    size = tuple(int(s) for s in size)
    if tuple(t.shape[1:]) != size:
        shrink = all(new <= old for new, old in zip(size, t.shape[1:]))
        t = convert_to_tensor(Resize(spatial_size=size, mode="area" if shrink else "bilinear")(t), track_meta=False)
        t = t.clamp(0.0, 1.0)
    return t.float().contiguous()


def read_label_values(path: str | os.PathLike, num_classes: int) -> tuple[np.ndarray, str]:
    """A mask or label-map file as ``(H, W)`` int64 values and its rule.

    * ``"binary"``: all values in ``{0, 1}`` or all in ``{0, 255}``; returned as 0/1.
    * ``"labels"``: any other integer values, taken as class indices in ``[0, num_classes)``.

    Raises:
        ValueError: not a mask file suffix, unreadable, colour, non-integer, NaN, or out-of-range values (the message
            names the file and the problem).
    """
    path = Path(path)
    if not path.name.lower().endswith(MASK_FILE_SUFFIXES):
        raise ValueError(f"{path}: not a mask file (expected one of {list(MASK_FILE_SUFFIXES)}).")
    arr = _read_array(path)
    if arr.ndim == 3:
        colour = arr[..., :3]
        if not (np.array_equal(colour[..., 0], colour[..., 1]) and np.array_equal(colour[..., 0], colour[..., 2])):
            raise ValueError(f"{path}: a colour image, not a label map (its channels differ).")
        arr = colour[..., 0]
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{path}: values of type {arr.dtype} are not labels.")
    values = arr.astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError(f"{path}: holds NaN or infinite values.")
    if not np.array_equal(values, np.round(values)):
        raise ValueError(f"{path}: holds non-integer values (a probability map?); label maps hold class indices.")
    found = np.unique(values).astype(np.int64)
    if set(found.tolist()) <= {0, 1} or set(found.tolist()) <= {0, 255}:
        return (values > 0).astype(np.int64), "binary"
    if found.min() < 0 or found.max() >= num_classes:
        raise ValueError(
            f"{path}: values {found.tolist()} are neither binary (0/1 or 0/255) nor label classes "
            f"0..{num_classes - 1}."
        )
    return values.astype(np.int64), "labels"


def resize_label_map(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` integer label map -> ``size`` by nearest neighbour (long)."""
    size = tuple(int(s) for s in size)
    if tuple(label.shape) == size:
        return label.long()
    return torch.nn.functional.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
