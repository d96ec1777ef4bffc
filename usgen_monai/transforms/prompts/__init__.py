"""Box and point prompts for promptable segmentation (MONAI Label's ``roi`` / ``foreground`` / ``background``),
simulated from masks at training and given at inference, and the model frame that images, masks and prompts share."""

from __future__ import annotations

from usgen_monai.transforms.prompts.array import (
    BoxFromMask,
    LongestSideFrame,
    PointFromMask,
    RandBoxFromMask,
    RandPointsFromMask,
    ResizeLongestSidePad,
    parse_prompts,
    row_major_size,
)
from usgen_monai.transforms.prompts.dictionary import (
    BoxFromMaskD,
    BoxFromMaskd,
    BoxFromMaskDict,
    PointFromMaskD,
    PointFromMaskd,
    PointFromMaskDict,
    RandBoxFromMaskD,
    RandBoxFromMaskd,
    RandBoxFromMaskDict,
    RandPointsFromMaskD,
    RandPointsFromMaskd,
    RandPointsFromMaskDict,
    ResizeLongestSidePadD,
    ResizeLongestSidePadd,
    ResizeLongestSidePadDict,
)

__all__ = [
    "BoxFromMask",
    "BoxFromMaskD",
    "BoxFromMaskDict",
    "BoxFromMaskd",
    "LongestSideFrame",
    "PointFromMask",
    "PointFromMaskD",
    "PointFromMaskDict",
    "PointFromMaskd",
    "RandBoxFromMask",
    "RandBoxFromMaskD",
    "RandBoxFromMaskDict",
    "RandBoxFromMaskd",
    "RandPointsFromMask",
    "RandPointsFromMaskD",
    "RandPointsFromMaskDict",
    "RandPointsFromMaskd",
    "ResizeLongestSidePad",
    "ResizeLongestSidePadD",
    "ResizeLongestSidePadDict",
    "ResizeLongestSidePadd",
    "parse_prompts",
    "row_major_size",
]
