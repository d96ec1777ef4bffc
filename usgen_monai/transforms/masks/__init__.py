"""Transforms that turn the mask files of public ultrasound data sets into binary segmentation targets."""

from __future__ import annotations

from usgen_monai.transforms.masks.array import FillOutline, MergeMasks
from usgen_monai.transforms.masks.dictionary import (
    FillOutlineD,
    FillOutlined,
    FillOutlineDict,
    MergeMasksD,
    MergeMasksd,
    MergeMasksDict,
)

__all__ = [
    "FillOutline",
    "FillOutlineD",
    "FillOutlineDict",
    "FillOutlined",
    "MergeMasks",
    "MergeMasksD",
    "MergeMasksDict",
    "MergeMasksd",
]
