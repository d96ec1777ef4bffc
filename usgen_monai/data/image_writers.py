"""Plain image files, written atomically: PNG (8-bit grey or colour, optionally with text chunks) and NIfTI (with a
description and a comment extension).

:py:func:`write_png` is the package's one PNG writer: the data-set layouts (:py:mod:`usgen_monai.data.layouts`), the
generated pairs (:py:class:`usgen_monai.data.pair_writer.PairWriter`) and the figures
(:py:func:`usgen_monai.visualize.save_png`) all write their PNGs with it. MONAI's ``SaveImage`` path
(:py:class:`usgen_monai.data.image_savers.SaveUltrasoundImage`) keeps MONAI's own writers, made atomic.

Both functions write through :py:func:`usgen_monai.utils.atomic_write`, so a reader never sees half a file. The
module imports only numpy and Pillow (nibabel when a NIfTI file is written), so writing a simulated data set does not
load MONAI or torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from usgen_monai.utils import atomic_write

__all__ = ["write_nifti", "write_png"]


def write_png(path: str | os.PathLike, array: np.ndarray, text: Mapping[str, str] | None = None) -> Path:
    """Write a uint8 array as a PNG, atomically.

    Args:
        path: the file; its folder is created if needed.
        array: ``(H, W)`` 8-bit grey, or ``(H, W, 3)`` / ``(H, W, 4)`` 8-bit RGB / RGBA (figures), in (row, column)
            order.
        text: PNG text chunks, written as international text (iTXt) in the order given, e.g.
            ``{"Synthetic": "YES"}``.

    Returns:
        ``path``, as a :py:class:`pathlib.Path`.

    Raises:
        ValueError: when ``array`` is not uint8 of one of those shapes (the message names the file).
    """
    from PIL import Image, PngImagePlugin

    array = np.asarray(array)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (3, 4))):
        raise ValueError(
            f"{path}: expected a 2D uint8 array (or H x W x 3|4 colour), got shape {array.shape} dtype {array.dtype}."
        )
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for key, value in text.items():
            info.add_itxt(key, value)
    image = Image.fromarray(np.ascontiguousarray(array))
    with atomic_write(path) as tmp:
        image.save(tmp, format="PNG", pnginfo=info)
    return Path(path)


def write_nifti(
    path: str | os.PathLike,
    array: np.ndarray,
    spacing_mm: Sequence[float] | None = None,
    description: str = "",
    comment: str | None = None,
) -> Path:
    """Write a 2D array as NIfTI (``.nii`` or ``.nii.gz``), atomically, in MONAI's axis order.

    The ``(H, W)`` array is stored transposed, first axis = image column, as MONAI's readers return images, so
    ``LoadImage`` followed by a swap of the two axes gives ``array`` back. The affine is the pixel spacing
    (``diag(column spacing, row spacing, 1, 1)``, nibabel's default sform/qform codes), the units are mm.

    Args:
        path: the file; its folder is created if needed.
        array: ``(H, W)`` array of any dtype nibabel stores (stored as is).
        spacing_mm: ``(row, column)`` pixel spacing in mm; ``None``: 1 mm.
        description: the header's ``descrip`` (cut to 79 characters).
        comment: text of a NIfTI comment extension (e.g. provenance as JSON); ``None``: no extension.

    Returns:
        ``path``, as a :py:class:`pathlib.Path`.

    Raises:
        ValueError: when ``array`` is not 2D (the message names the file).
    """
    import nibabel as nib

    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"{path}: expected a 2D (H, W) array, got shape {array.shape}.")
    row, col = spacing_mm if spacing_mm is not None else (1.0, 1.0)
    image = nib.Nifti1Image(np.ascontiguousarray(array.T), np.diag([col, row, 1.0, 1.0]))
    image.header.set_xyzt_units("mm")
    image.header["descrip"] = description[:79].encode()
    if comment is not None:
        image.header.extensions.append(nib.nifti1.Nifti1Extension("comment", comment.encode()))
    with atomic_write(path) as tmp:
        nib.save(image, str(tmp))
    return Path(path)
