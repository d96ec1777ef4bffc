"""Figures people would rather see than read: grids of images with their masks outlined."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from usgen_monai.data.image_writers import write_png

__all__ = ["image_grid", "overlay_mask_outline", "save_png"]


def overlay_mask_outline(image: np.ndarray, mask: np.ndarray, color=(255, 64, 64)) -> np.ndarray:
    """(H, W) image in [0, 1] and binary mask -> (H, W, 3) uint8 RGB with the mask's outline drawn in ``color``.

    Grey levels are ``floor(255 x)``, not :py:func:`usgen_monai.utils.to_uint8`'s ``round(255 x)``, so the figures
    already made stay the same.
    """
    grey = (np.clip(image, 0, 1) * 255).astype(np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    mask = mask.astype(bool)
    outline = mask & ~ndimage.binary_erosion(mask)
    rgb[outline] = color
    return rgb


def image_grid(tiles: list[list[np.ndarray]], row_titles: list[str] | None = None, col_titles=None, pad: int = 4):
    """Arrange (H, W, 3) uint8 tiles (rows of equal-size tiles) into one RGB array with optional titles."""
    h, w = tiles[0][0].shape[:2]
    top = 14 if col_titles else 0
    left = 90 if row_titles else 0
    ncols = max(len(r) for r in tiles)
    canvas = Image.new("RGB", (left + ncols * (w + pad), top + len(tiles) * (h + pad)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for i, row in enumerate(tiles):
        for j, tile in enumerate(row):
            canvas.paste(Image.fromarray(tile), (left + j * (w + pad), top + i * (h + pad)))
        if row_titles:
            draw.text((2, top + i * (h + pad) + h // 2 - 6), row_titles[i], fill=(0, 0, 0))
    if col_titles:
        for j, title in enumerate(col_titles):
            draw.text((left + j * (w + pad) + 2, 1), title, fill=(0, 0, 0))
    return np.asarray(canvas)


def save_png(array: np.ndarray, path: str) -> str:
    """Write a figure, an ``(H, W, 3)`` RGB or ``(H, W)`` grey uint8 array, as a PNG atomically with
    :py:func:`usgen_monai.data.image_writers.write_png`; returns ``path``."""
    write_png(path, array)
    return path
