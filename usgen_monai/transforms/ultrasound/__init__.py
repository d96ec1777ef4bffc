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
    "CropToUltrasoundRegion",
    "CropToUltrasoundRegionD",
    "CropToUltrasoundRegionDict",
    "CropToUltrasoundRegiond",
    "SelectFrames",
    "SelectFramesD",
    "SelectFramesDict",
    "SelectFramesd",
    "UltrasoundMetaKeys",
    "UltrasoundToGrey",
    "UltrasoundToGreyD",
    "UltrasoundToGreyDict",
    "UltrasoundToGreyd",
    "normalize_frame_selection",
    "rgb_to_grey",
]
