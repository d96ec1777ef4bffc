"""Ultrasound-specific transforms: crop to the imaging region, colour to grey, frame selection (all invertible)."""

from __future__ import annotations

from usgen_monai.transforms.ultrasound.array import (
    LUMA_WEIGHTS,
    CropToUltrasoundRegion,
    SelectFrames,
    UltrasoundMetaKeys,
    UltrasoundToGrey,
    normalize_frame_selection,
    rgb_to_grey,
)
from usgen_monai.transforms.ultrasound.dictionary import (
    CropToUltrasoundRegionD,
    CropToUltrasoundRegiond,
    CropToUltrasoundRegionDict,
    SelectFramesD,
    SelectFramesd,
    SelectFramesDict,
    UltrasoundToGreyD,
    UltrasoundToGreyd,
    UltrasoundToGreyDict,
)

__all__ = [
    "LUMA_WEIGHTS",
    "UltrasoundMetaKeys",
    "rgb_to_grey",
    "normalize_frame_selection",
    "CropToUltrasoundRegion",
    "CropToUltrasoundRegiond",
    "CropToUltrasoundRegionD",
    "CropToUltrasoundRegionDict",
    "UltrasoundToGrey",
    "UltrasoundToGreyd",
    "UltrasoundToGreyD",
    "UltrasoundToGreyDict",
    "SelectFrames",
    "SelectFramesd",
    "SelectFramesD",
    "SelectFramesDict",
]
