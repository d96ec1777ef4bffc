"""Dictionary-based wrappers of the ultrasound transforms in :py:mod:`usgen_monai.transforms.ultrasound.array`.

Each wrapper holds one array transform and applies it to every key, so image and label get the same crop / frame
selection, and :py:class:`monai.transforms.Invertd` can undo them on a prediction.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence

import torch
from monai.config import KeysCollection
from monai.transforms import InvertibleTransform, LazyTransform, MapTransform

from usgen_monai.transforms.ultrasound.array import CropToUltrasoundRegion, SelectFrames, UltrasoundToGrey

__all__ = [
    "CropToUltrasoundRegionD",
    "CropToUltrasoundRegionDict",
    "CropToUltrasoundRegiond",
    "SelectFramesD",
    "SelectFramesDict",
    "SelectFramesd",
    "UltrasoundToGreyD",
    "UltrasoundToGreyDict",
    "UltrasoundToGreyd",
]


class CropToUltrasoundRegiond(MapTransform, InvertibleTransform, LazyTransform):
    """
    Dictionary-based wrapper of :py:class:`usgen_monai.transforms.ultrasound.array.CropToUltrasoundRegion`.

    Args:
        keys: keys of the items to crop (image, label, ...).
        source_key: the item whose metadata holds the region (typically ``"image"``); every key is cropped with it.
            ``None`` uses each item's own metadata.
        roi_start: explicit region start instead of the metadata.
        roi_end: explicit region end (exclusive) instead of the metadata.
        margin: pixels added around the region.
        allow_missing_region: leave images without region metadata uncropped instead of raising.
        lazy: whether to defer the crop.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = CropToUltrasoundRegion.backend

    def __init__(
        self,
        keys: KeysCollection,
        source_key: str | None = None,
        roi_start: Sequence[int] | None = None,
        roi_end: Sequence[int] | None = None,
        margin: int | Sequence[int] = 0,
        allow_missing_region: bool = True,
        lazy: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        LazyTransform.__init__(self, lazy)
        self.source_key = source_key
        self.cropper = CropToUltrasoundRegion(
            roi_start=roi_start, roi_end=roi_end, margin=margin, allow_missing_region=allow_missing_region, lazy=lazy
        )

    @LazyTransform.lazy.setter  # type: ignore
    def lazy(self, value: bool) -> None:
        self._lazy = value
        self.cropper.lazy = value

    def __call__(self, data: Mapping[Hashable, torch.Tensor], lazy: bool | None = None) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        roi_start = roi_end = None
        if self.source_key is not None:
            if self.source_key not in d:
                raise KeyError(f"source_key {self.source_key!r} is not in the data (keys: {list(d)}).")
            roi_start, roi_end = self.cropper.compute_roi(d[self.source_key])
        lazy_ = self.lazy if lazy is None else lazy
        for key in self.key_iterator(d):
            d[key] = self.cropper(d[key], roi_start=roi_start, roi_end=roi_end, lazy=lazy_)
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.cropper.inverse(d[key])
        return d


class UltrasoundToGreyd(MapTransform, InvertibleTransform):
    """
    Dictionary-based wrapper of :py:class:`usgen_monai.transforms.ultrasound.array.UltrasoundToGrey`.

    Args:
        keys: keys of the images to convert (not labels).
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = UltrasoundToGrey.backend

    def __init__(self, keys: KeysCollection, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.converter = UltrasoundToGrey()

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.converter.inverse(d[key])
        return d


class SelectFramesd(MapTransform, InvertibleTransform):
    """
    Dictionary-based wrapper of :py:class:`usgen_monai.transforms.ultrasound.array.SelectFrames`.

    Args:
        keys: keys of the multi-frame items (image and per-frame label).
        frames: an index, a sequence of indices, a ``range`` or a ``slice``.
        frame_dim: axis of the frames in the channel-first input (default last).
        keep_dim: keep a size-1 frame axis when ``frames`` is an int.
        allow_missing_keys: don't raise if a key is missing.
    """

    backend = SelectFrames.backend

    def __init__(
        self,
        keys: KeysCollection,
        frames: int | Sequence[int] | slice | range,
        frame_dim: int = -1,
        keep_dim: bool = False,
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.selector = SelectFrames(frames=frames, frame_dim=frame_dim, keep_dim=keep_dim)

    def __call__(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.selector(d[key])
        return d

    def inverse(self, data: Mapping[Hashable, torch.Tensor]) -> dict[Hashable, torch.Tensor]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.selector.inverse(d[key])
        return d


CropToUltrasoundRegionD = CropToUltrasoundRegionDict = CropToUltrasoundRegiond
UltrasoundToGreyD = UltrasoundToGreyDict = UltrasoundToGreyd
SelectFramesD = SelectFramesDict = SelectFramesd
