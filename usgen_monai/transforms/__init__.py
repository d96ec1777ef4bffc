"""transforms"""

# mask transforms for public data-set layouts (issue 2, item 5)
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

__all__ = [
    *globals().get("__all__", ()),
    "FillOutline",
    "FillOutlineD",
    "FillOutlineDict",
    "FillOutlined",
    "MergeMasks",
    "MergeMasksD",
    "MergeMasksDict",
    "MergeMasksd",
]

# ultrasound DICOM transforms: crop to region, to grey, frame selection (issue 3)
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
    *globals().get("__all__", ()),
    "CropToUltrasoundRegion",
    "CropToUltrasoundRegionD",
    "CropToUltrasoundRegiond",
    "CropToUltrasoundRegionDict",
    "SelectFrames",
    "SelectFramesD",
    "SelectFramesd",
    "SelectFramesDict",
    "UltrasoundMetaKeys",
    "UltrasoundToGrey",
    "UltrasoundToGreyD",
    "UltrasoundToGreyd",
    "UltrasoundToGreyDict",
]
