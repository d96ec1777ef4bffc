"""Dictionary-based wrappers of the mask transforms in :py:mod:`usgen_monai.transforms.masks.array`.

Typical use with the readers of :py:mod:`usgen_monai.data.datasets`::

    from monai.transforms import Compose, LoadImaged

    busi = Compose([LoadImaged(["image", "label"], ensure_channel_first=True), MergeMasksd("label")])
    hc18 = Compose([LoadImaged(["image", "label"], ensure_channel_first=True), FillOutlined("label")])
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping

from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms.transform import MapTransform

from usgen_monai.transforms.masks.array import FillOutline, MergeMasks

__all__ = [
    "FillOutlined",
    "FillOutlineD",
    "FillOutlineDict",
    "MergeMasksd",
    "MergeMasksD",
    "MergeMasksDict",
]


class FillOutlined(MapTransform):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.masks.FillOutline`.

    Args:
        keys: keys of the outline annotations to fill. See also: :py:class:`monai.transforms.MapTransform`.
        threshold: values above it are outline pixels (default 0: any non-zero value).
        connectivity: background connectivity used to decide what an outline encloses (default 1).
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = FillOutline.backend

    def __init__(
        self, keys: KeysCollection, threshold: float = 0.0, connectivity: int = 1, allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.filler = FillOutline(threshold=threshold, connectivity=connectivity)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.filler(d[key])
        return d


class MergeMasksd(MapTransform):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.masks.MergeMasks`.

    Args:
        keys: keys of the stacked masks to merge. See also: :py:class:`monai.transforms.MapTransform`.
        threshold: values above it are foreground (default 0: any non-zero value).
        allow_missing_keys: don't raise an exception if a key is missing.
    """

    backend = MergeMasks.backend

    def __init__(self, keys: KeysCollection, threshold: float = 0.0, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.merger = MergeMasks(threshold=threshold)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, NdarrayOrTensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.merger(d[key])
        return d


FillOutlineD = FillOutlineDict = FillOutlined
MergeMasksD = MergeMasksDict = MergeMasksd
