"""Reading single 2D image and label-map files the way the CSG generator sees them.

Shared by training on a user's data set (:py:class:`usgen_monai.data.generator_data.UserGeneratorDataset`) and by
inference (the user's masks, context images and style references), so an image or mask means the same thing to
both. Files are read with MONAI's ``LoadImage`` (``.dcm`` with :py:class:`usgen_monai.data.UltrasoundDicomReader`);
arrays come back in (row, column) order.

Context images (:py:func:`read_context_image`) given as ultrasound DICOM go through the package's DICOM path instead:
one frame of a cine, cropped to the B-mode region of the Sequence of Ultrasound Regions, grey; the function returns
what it did, so the generator's provenance can record it and regeneration can read the same pixels again.
:py:func:`find_image_files` lists the images of any folder (a context bank).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "CONTEXT_IMAGE_SUFFIXES",
    "MASK_FILE_SUFFIXES",
    "find_image_files",
    "is_dicom_file",
    "load_2d",
    "read_context_image",
    "read_grey_image",
    "read_label_values",
    "resize_label_map",
]

MASK_FILE_SUFFIXES = (".png", ".nii", ".nii.gz")
#: files :py:func:`find_image_files` lists (besides suffix-less files with the DICOM marker)
CONTEXT_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz", ".dcm", ".dicom", ".dic")


@functools.lru_cache(maxsize=2)
def _loader(dicom: bool) -> Any:
    """One ``LoadImage`` per process (with :py:class:`usgen_monai.data.UltrasoundDicomReader` for DICOM): building it
    per file rebuilds MONAI's readers, and repeats their messages, every time."""
    from monai.transforms import LoadImage

    from usgen_monai.data.library_messages import install_library_message_filters

    install_library_message_filters()
    reader = None
    if dicom:
        from usgen_monai.data.dicom_reader import UltrasoundDicomReader

        reader = UltrasoundDicomReader()
    return LoadImage(image_only=True, dtype=None, reader=reader)


def load_2d(path: str | os.PathLike) -> np.ndarray:
    """An image or label file as an ``(H, W)`` or ``(H, W, C)`` array in its stored dtype.

    MONAI's readers return arrays in MONAI's axis order (first axis = image column, as ``PILReader`` returns PNGs);
    they are swapped to (row, column) here. The pair writers store arrays the same way, so a file they write reads
    back as the array that was written.

    Raises:
        ValueError: the file does not hold one 2D grey or colour image (the message names the file).
    """
    from monai.utils import convert_to_numpy

    path = Path(path)
    arr = convert_to_numpy(_loader(path.suffix.lower() == ".dcm")(str(path)))
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
    path = Path(path)
    arr = _read_array(path)
    if arr.dtype == np.uint8:
        img = _grey(arr).astype(np.float32) / 255.0
    else:
        img = _unit_range(_grey(arr).astype(np.float32), path, full_scale=1.0)
    return _resize_grey(img, size)


def _unit_range(img: np.ndarray, path: Path, full_scale: float) -> np.ndarray:
    """``img / full_scale`` when its values lie in ``[0, full_scale]``, else scaled from its minimum and maximum.

    Raises:
        ValueError: NaN or infinite values (naming the file).
    """
    if not np.isfinite(img).all():
        raise ValueError(f"{path}: the image holds NaN or infinite values.")
    lo, hi = float(img.min()), float(img.max())
    if lo < 0.0 or hi > full_scale:
        return (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
    return img / np.float32(full_scale) if full_scale != 1.0 else img


def _resize_grey(img: np.ndarray, size: Sequence[int]) -> torch.Tensor:
    """``(H, W)`` float32 in ``[0, 1]`` -> ``(1, *size)``: area averaging when shrinking, bilinear otherwise."""
    from monai.transforms import Resize
    from monai.utils import convert_to_tensor

    t = torch.as_tensor(img)[None]
    size = tuple(int(s) for s in size)
    if tuple(t.shape[1:]) != size:
        shrink = all(new <= old for new, old in zip(size, t.shape[1:]))
        t = convert_to_tensor(Resize(spatial_size=size, mode="area" if shrink else "bilinear")(t), track_meta=False)
        t = t.clamp(0.0, 1.0)
    return t.float().contiguous()


def is_dicom_file(path: str | os.PathLike) -> bool:
    """Whether ``path`` is read as DICOM: a ``.dcm`` / ``.dicom`` / ``.dic`` name, or a file with the DICOM
    ``DICM`` marker under any other name (as :py:meth:`usgen_monai.data.UltrasoundDicomReader.verify_suffix`)."""
    from usgen_monai.data.dicom_files import DICOM_SUFFIXES, has_dicm_marker

    return Path(path).suffix.lower().lstrip(".") in DICOM_SUFFIXES or has_dicm_marker(path)


def read_context_image(
    path: str | os.PathLike,
    size: Sequence[int],
    frame: int | None = None,
    crop_to_region: bool = True,
    crop: Sequence[int] | None = None,
) -> tuple[torch.Tensor, dict[str, Any]]:
    """A context image as the generator uses it, ``(1, H, W)`` float in ``[0, 1]`` of ``size``, and what was done to
    read it.

    Files that are not DICOM (:py:func:`is_dicom_file`) are read by :py:func:`read_grey_image`, and the record is
    empty. A DICOM file goes through the package's DICOM path (:py:class:`usgen_monai.data.UltrasoundDicomReader`):

    * one frame: ``frame`` (0-based, negative counts from the end), by default the middle one, ``n // 2`` of ``n``
      frames (frame 0 of a single-frame file);
    * cropped to the B-mode region, the largest tissue region of the Sequence of Ultrasound Regions, as
      :py:class:`usgen_monai.transforms.CropToUltrasoundRegiond` crops, which removes burned-in annotations; a file
      without a region (or ``crop_to_region=False``) is used whole; ``crop`` (a recorded box) is used as given;
    * grey: colour (RGB, YBR, palette colour) by ITU-R BT.601 luma, MONOCHROME1 inverted, Modality and VOI LUTs
      applied;
    * scaled to ``[0, 1]`` by the largest stored value, ``2 ** bits - 1`` (``BitsStored``, or the palette's lookup
      table bits), or from its minimum and maximum when the values lie outside that range; resized as
      :py:func:`read_grey_image` resizes.

    The record of a DICOM file is ``{"frame": k, "frame_count": n, "crop": [x_min, y_min, x_max, y_max],
    "crop_source": ...}``: the crop box in pixels of the file (x = column, maxima exclusive) and where it came from,
    ``"ultrasound_region"``, ``"no_region"`` (the whole image: the file has none), ``"not_cropped"`` (the whole
    image: ``crop_to_region=False``) or ``"recorded"`` (``crop`` was given). Reading again with the recorded
    ``frame`` and ``crop`` gives the same pixels.

    Raises:
        ValueError: unreadable, a frame the file does not have, a crop outside the image, or NaN/infinite values (the
            message names the file).
    """
    path = Path(path)
    if not is_dicom_file(path):
        return read_grey_image(path, size), {}
    from usgen_monai.data.dicom_files import dcmread_file
    from usgen_monai.data.dicom_reader import UltrasoundDicomReader
    from usgen_monai.transforms.ultrasound.array import UltrasoundMetaKeys, normalize_frame_selection

    ds = dcmread_file(path)
    try:
        count = max(int(ds.get("NumberOfFrames", 1) or 1), 1)
    except (TypeError, ValueError):
        count = 1  # the reader reports the bad value
    index = count // 2 if frame is None else normalize_frame_selection(int(frame), count, str(path))[0]
    arr, meta = UltrasoundDicomReader(frames=index, reverse_indexing=False).get_data(ds)  # (rows, columns), grey
    rows, cols = arr.shape[:2]
    if crop is not None:
        box, source = [int(v) for v in crop], "recorded"
        if len(box) != 4 or not (0 <= box[0] < box[2] <= cols and 0 <= box[1] < box[3] <= rows):
            raise ValueError(
                f"{path}: crop {list(crop)} is not a box [x_min, y_min, x_max, y_max] of its {cols} x {rows} image."
            )
    elif crop_to_region and bool(meta[UltrasoundMetaKeys.REGION_FOUND]):
        box, source = [int(v) for v in meta[UltrasoundMetaKeys.REGION_BOX]], "ultrasound_region"
    else:
        box, source = [0, 0, cols, rows], "no_region" if crop_to_region else "not_cropped"
    img = np.asarray(arr[box[1] : box[3], box[0] : box[2]], dtype=np.float32)
    if str(ds.PhotometricInterpretation).strip() == "PALETTE COLOR":
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
    else:
        bits = int(meta["BitsStored"])
    record = {"frame": int(index), "frame_count": int(count), "crop": box, "crop_source": source}
    return _resize_grey(_unit_range(img, path, full_scale=float(2**bits - 1)), size), record


def find_image_files(folder: str | os.PathLike) -> list[Path]:
    """The image files under ``folder`` and its sub-folders, in path order: names ending in
    :py:data:`CONTEXT_IMAGE_SUFFIXES` (PNG, JPEG, BMP, TIFF, NIfTI, DICOM) and suffix-less files with the DICOM marker.
    Hidden files and folders and other files (text, CSV, JSON, ...) are left out; whether a listed file can be read is
    up to the caller.

    Raises:
        ValueError: ``folder`` is not a folder.
    """
    from usgen_monai.data.dicom_files import has_dicm_marker

    root = Path(folder)
    if not root.is_dir():
        raise ValueError(f"{root} is not a folder.")
    found = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        if path.name.lower().endswith(CONTEXT_IMAGE_SUFFIXES) or (not path.suffix and has_dicm_marker(path)):
            found.append(path)
    return found


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
            f"{path}: values {found.tolist()} are neither binary (0/1 or 0/255) nor label classes 0..{num_classes - 1}."
        )
    return values.astype(np.int64), "labels"


def resize_label_map(label: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` integer label map -> ``size`` by nearest neighbour (long)."""
    size = tuple(int(s) for s in size)
    if tuple(label.shape) == size:
        return label.long()
    return torch.nn.functional.interpolate(label[None, None].float(), size=size, mode="nearest")[0, 0].long()
