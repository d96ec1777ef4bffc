"""Transforms: array and dictionary pairs (``Foo`` / ``Food``) in the MONAI style, one folder per topic."""

from __future__ import annotations

from usgen_monai.transforms.masks import (
    FillOutline,
    FillOutlineD,
    FillOutlined,
    FillOutlineDict,
    MergeMasks,
    MergeMasksD,
    MergeMasksd,
    MergeMasksDict,
)
from usgen_monai.transforms.ultrasound import (
    CropToUltrasoundRegion,
    CropToUltrasoundRegionD,
    CropToUltrasoundRegiond,
    CropToUltrasoundRegionDict,
    SelectFrames,
    SelectFramesD,
    SelectFramesd,
    SelectFramesDict,
    UltrasoundMetaKeys,
    UltrasoundToGrey,
    UltrasoundToGreyD,
    UltrasoundToGreyd,
    UltrasoundToGreyDict,
)

__all__ = [
    "CropToUltrasoundRegion",
    "CropToUltrasoundRegionD",
    "CropToUltrasoundRegionDict",
    "CropToUltrasoundRegiond",
    "FillOutline",
    "FillOutlineD",
    "FillOutlineDict",
    "FillOutlined",
    "MergeMasks",
    "MergeMasksD",
    "MergeMasksDict",
    "MergeMasksd",
    "SelectFrames",
    "SelectFramesD",
    "SelectFramesDict",
    "SelectFramesd",
    "UltrasoundMetaKeys",
    "UltrasoundToGrey",
    "UltrasoundToGreyD",
    "UltrasoundToGreyDict",
    "UltrasoundToGreyd",
]
