"""Dictionary-based wrappers of the prompt transforms in :py:mod:`usgen_monai.transforms.prompts.array`.

The keys are MONAI Label's, the same at training and inference: ``roi`` ``[x0, y0, x1, y1]``, ``foreground`` and
``background`` ``[[x, y], ...]`` in original pixel coordinates (x = column, y = row). Training simulates them from
the mask; inference reads them from the datalist. :py:class:`ResizeLongestSidePadd` then checks them, brings image,
mask and prompts into the model's frame, and writes the model's inputs ``boxes`` ``(1, 4)``, ``points``
``(1, P, 2)`` and ``point_labels`` ``(1, P)`` (one prompt per item)::

    from monai.transforms import Compose, LoadImaged, ScaleIntensityd

    train = Compose([
        LoadImaged(["image", "label"], ensure_channel_first=True),        # a PNG arrives as (1, W, H)
        ScaleIntensityd("image"),
        RandBoxFromMaskd("label"),                                         # box widened by 0-20 px per side
        RandPointsFromMaskd("label", num_foreground=1, num_background=1),  # and points: both prompts
        ResizeLongestSidePadd(["image", "label"], image_size=256, mode=["bilinear", "nearest"]),
    ])
    infer = Compose([                                                      # items {"image": ..., "roi": [...]}
        LoadImaged("image", ensure_channel_first=True), ScaleIntensityd("image"),
        ResizeLongestSidePadd("image", image_size=256),
    ])

Random transforms record their draw under ``draw_key`` (default ``"prompt_draw"``), e.g.
``{"RandBoxFromMaskd": {"margins": [3, 17, 0, 9]}}``.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.config.type_definitions import NdarrayOrTensor
from monai.transforms import InvertibleTransform, MapTransform, RandomizableTransform
from monai.utils import ensure_tuple_rep

from usgen_monai.transforms.prompts.array import (
    BoxFromMask,
    PointFromMask,
    RandBoxFromMask,
    RandPointsFromMask,
    ResizeLongestSidePad,
    _item_name,
    parse_prompts,
)

__all__ = [
    "BoxFromMaskD",
    "BoxFromMaskDict",
    "BoxFromMaskd",
    "PointFromMaskD",
    "PointFromMaskDict",
    "PointFromMaskd",
    "RandBoxFromMaskD",
    "RandBoxFromMaskDict",
    "RandBoxFromMaskd",
    "RandPointsFromMaskD",
    "RandPointsFromMaskDict",
    "RandPointsFromMaskd",
    "ResizeLongestSidePadD",
    "ResizeLongestSidePadDict",
    "ResizeLongestSidePadd",
]


def _mask_key(transform: MapTransform) -> Hashable:
    if len(transform.keys) != 1:
        raise ValueError(f"{type(transform).__name__} takes one mask key, got keys={list(transform.keys)}.")
    return transform.keys[0]


class BoxFromMaskd(MapTransform):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.prompts.BoxFromMask`: writes the mask's box to
    ``roi_key``.

    Args:
        keys: the mask key (one). See also: :py:class:`monai.transforms.MapTransform`.
        roi_key: where the box ``[x0, y0, x1, y1]`` goes.
        margin: pixels added on each side, one int or ``(left, top, right, bottom)``.
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order).
        empty: ``"raise"`` or ``"image"`` for an empty mask.
        allow_missing_keys: don't raise an exception if the mask key is missing.
    """

    backend = BoxFromMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        roi_key: str = "roi",
        margin: int | Sequence[int] = 0,
        reverse_indexing: bool = True,
        empty: str = "raise",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        _mask_key(self)
        self.roi_key = roi_key
        self.box_from_mask = BoxFromMask(margin=margin, reverse_indexing=reverse_indexing, empty=empty)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[self.roi_key] = self.box_from_mask(d[key])
        return d


class PointFromMaskd(MapTransform):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.prompts.PointFromMask`: writes the click at the
    mask's most interior pixel to ``foreground_key`` (or, for an empty mask with ``empty="background"``, a click at
    the image centre to ``background_key``).

    Args:
        keys: the mask key (one). See also: :py:class:`monai.transforms.MapTransform`.
        foreground_key: where the foreground point ``[[x, y]]`` goes.
        background_key: where the background point of an empty mask goes.
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order).
        empty: ``"raise"`` or ``"background"`` for an empty mask.
        allow_missing_keys: don't raise an exception if the mask key is missing.
    """

    backend = PointFromMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        foreground_key: str = "foreground",
        background_key: str = "background",
        reverse_indexing: bool = True,
        empty: str = "raise",
        allow_missing_keys: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        _mask_key(self)
        self.foreground_key = foreground_key
        self.background_key = background_key
        self.point_from_mask = PointFromMask(reverse_indexing=reverse_indexing, empty=empty)

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            foreground, background = self.point_from_mask(d[key])
            if len(foreground):
                d[self.foreground_key] = foreground
            if len(background):
                d[self.background_key] = background
        return d


class _RandMaskPromptd(RandomizableTransform, MapTransform):
    """Base of the random prompt twins: one mask key, one inner random transform (``self.inner``) seeded with the
    twin, and a ``draw_key`` where each call's draw is recorded."""

    def __init__(
        self,
        keys: KeysCollection,
        inner: RandomizableTransform,
        draw_key: str | None,
        prob: float,
        allow_missing_keys: bool,
    ) -> None:
        MapTransform.__init__(self, keys, allow_missing_keys)
        RandomizableTransform.__init__(self, prob)
        _mask_key(self)
        self.inner = inner
        self.draw_key = draw_key

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None) -> _RandMaskPromptd:
        super().set_random_state(seed, state)
        self.inner.set_random_state(seed, state)
        return self

    def _record(self, d: dict, draw: Mapping[str, Any]) -> None:
        if self.draw_key is not None:
            d[self.draw_key] = {**d.get(self.draw_key, {}), type(self).__name__: dict(draw)}


class RandBoxFromMaskd(_RandMaskPromptd):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.prompts.RandBoxFromMask`: writes a box widened by
    random margins to ``roi_key`` and records the margins under ``draw_key``.

    Args:
        keys: the mask key (one). See also: :py:class:`monai.transforms.MapTransform`.
        roi_key: where the box ``[x0, y0, x1, y1]`` goes.
        margin_range: ``(low, high)`` pixels per side, inclusive (the paper: 0-20).
        prob: probability of widening; otherwise the box is tight.
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order).
        empty: ``"raise"`` or ``"image"`` for an empty mask.
        draw_key: where the draw ``{"RandBoxFromMaskd": {"margins": [left, top, right, bottom]}}`` is recorded
            (``None``: not recorded).
        allow_missing_keys: don't raise an exception if the mask key is missing.
    """

    backend = RandBoxFromMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        roi_key: str = "roi",
        margin_range: Sequence[int] = (0, 20),
        prob: float = 1.0,
        reverse_indexing: bool = True,
        empty: str = "raise",
        draw_key: str | None = "prompt_draw",
        allow_missing_keys: bool = False,
    ) -> None:
        self.rand_box = RandBoxFromMask(margin_range, prob=1.0, reverse_indexing=reverse_indexing, empty=empty)
        super().__init__(keys, self.rand_box, draw_key, prob, allow_missing_keys)
        self.roi_key = roi_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        self.randomize(None)
        self.rand_box.randomize()
        if not self._do_transform:
            self.rand_box.margins = np.zeros(4, dtype=np.int64)
        for key in self.key_iterator(d):
            d[self.roi_key] = self.rand_box(d[key], randomize=False)
            self._record(d, {"margins": self.rand_box.margins.tolist()})
        return d


class RandPointsFromMaskd(_RandMaskPromptd):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.prompts.RandPointsFromMask`: writes random
    foreground / background points to ``foreground_key`` / ``background_key`` and records them under ``draw_key``.

    Args:
        keys: the mask key (one). See also: :py:class:`monai.transforms.MapTransform`.
        foreground_key: where the foreground points ``[[x, y], ...]`` go (skipped when ``num_foreground`` is 0).
        background_key: where the background points go (skipped when ``num_background`` is 0).
        num_foreground: foreground points per item.
        num_background: background points per item.
        background_margin: pixels around the mask's box to draw background points from (``None``: whole image).
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order).
        draw_key: where the draw ``{"RandPointsFromMaskd": {"foreground": [...], "background": [...]}}`` is recorded
            (``None``: not recorded).
        allow_missing_keys: don't raise an exception if the mask key is missing.
        empty: ``"raise"`` or ``"background"`` for an empty mask (see the array transform).
    """

    backend = RandPointsFromMask.backend

    def __init__(
        self,
        keys: KeysCollection,
        foreground_key: str = "foreground",
        background_key: str = "background",
        num_foreground: int = 1,
        num_background: int = 0,
        background_margin: int | None = 20,
        reverse_indexing: bool = True,
        draw_key: str | None = "prompt_draw",
        allow_missing_keys: bool = False,
        empty: str = "raise",
    ) -> None:
        self.rand_points = RandPointsFromMask(
            num_foreground, num_background, background_margin, reverse_indexing, empty=empty
        )
        super().__init__(keys, self.rand_points, draw_key, 1.0, allow_missing_keys)
        self.foreground_key = foreground_key
        self.background_key = background_key

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            foreground, background = self.rand_points(d[key])
            if len(foreground):
                d[self.foreground_key] = foreground
            if len(background):
                d[self.background_key] = background
            draw = {"foreground": foreground.tolist(), "background": background.tolist()}
            self._record(d, draw)
        return d


class ResizeLongestSidePadd(MapTransform, InvertibleTransform):
    """Dictionary-based wrapper of :py:class:`usgen_monai.transforms.prompts.ResizeLongestSidePad` that brings the
    prompts along: image(s), mask(s) and prompts go into the model's frame together.

    The prompts (``roi``, ``foreground``, ``background`` in original pixel coordinates) are checked against the size of
    the first key's image with :py:func:`usgen_monai.transforms.prompts.parse_prompts` (a prompt outside the image,
    an empty box or a malformed value raises a ``ValueError`` naming the item's file), mapped to the model's frame, and
    written as the model's inputs for one prompt: ``boxes_key`` ``(1, 4)`` float32, ``points_key`` ``(1, P, 2)``
    float32 and ``point_labels_key`` ``(1, P)`` int64 (1 foreground, 0 background, -1 padding). The prompt keys
    themselves are kept as they were. ``inverse`` maps model-frame predictions of any of ``keys`` back (see the
    array transform), so ``Invertd(keys="pred", transform=<this pipeline>, orig_keys="image")`` returns masks in the
    original grid.

    Args:
        keys: images and masks of one item, all of the same spatial size; the first one's size is the reference.
        image_size: the model's square input side.
        mode: ``"bilinear"`` or ``"nearest"``, one for all keys or one per key.
        reverse_indexing: ``True`` if the first spatial axis is x (MONAI's order, as ``LoadImaged`` gives a PNG).
        roi_key: the box prompt ``[x0, y0, x1, y1]``.
        foreground_key: foreground points ``[[x, y], ...]``.
        background_key: background points.
        boxes_key: output, model-frame box.
        points_key: output, model-frame points.
        point_labels_key: output, their labels.
        pad_points: pad the points to this many with label -1 (so items with different counts batch together);
            more points raise a ``ValueError``. ``None``: no padding.
        pad_boxes: an item without a box gets an all-NaN ``boxes_key`` (no box for
            :py:class:`usgen_monai.networks.sam.PromptableSam`), so that items prompted by a box and items prompted by
            clicks batch together (with ``pad_points``).
        allow_missing_prompts: an item without any prompt passes (only images and masks are transformed) instead of
            raising a ``ValueError``.
        allow_missing_keys: don't raise an exception if an image or mask key is missing.
    """

    backend = ResizeLongestSidePad.backend

    def __init__(
        self,
        keys: KeysCollection,
        image_size: int = 256,
        mode: str | Sequence[str] = "bilinear",
        reverse_indexing: bool = True,
        roi_key: str = "roi",
        foreground_key: str = "foreground",
        background_key: str = "background",
        boxes_key: str = "boxes",
        points_key: str = "points",
        point_labels_key: str = "point_labels",
        pad_points: int | None = None,
        allow_missing_prompts: bool = False,
        allow_missing_keys: bool = False,
        pad_boxes: bool = False,
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        modes = ensure_tuple_rep(mode, len(self.keys))
        self.resizers = {
            key: ResizeLongestSidePad(image_size, mode=m, reverse_indexing=reverse_indexing)
            for key, m in zip(self.keys, modes)
        }
        self.image_size = int(image_size)
        self.reverse_indexing = reverse_indexing
        self.roi_key, self.foreground_key, self.background_key = roi_key, foreground_key, background_key
        self.boxes_key, self.points_key, self.point_labels_key = boxes_key, points_key, point_labels_key
        if pad_points is not None and pad_points < 1:
            raise ValueError(f"pad_points must be positive or None, got pad_points={pad_points}.")
        self.pad_points = pad_points
        self.pad_boxes = bool(pad_boxes)
        self.allow_missing_prompts = allow_missing_prompts

    def _item(self, d: Mapping[Hashable, Any]) -> str:
        """The item's name for error messages: its image file, else its prompt values."""
        for key in self.keys:
            if key in d and _item_name(d[key], "") != "":
                return _item_name(d[key])
        return f"item with keys {sorted(map(str, d))}"

    def _prompts(self, d: dict[Hashable, Any], reference: Hashable) -> None:
        """Check the prompts of ``d`` against ``d[reference]`` and write the model-frame prompt tensors."""
        given = [k for k in (self.roi_key, self.foreground_key, self.background_key) if d.get(k) is not None]
        item = self._item(d)
        if not given:
            if self.allow_missing_prompts:
                return
            raise ValueError(
                f"{item}: no prompt; give {self.roi_key!r} [x0, y0, x1, y1] and/or {self.foreground_key!r} / "
                f"{self.background_key!r} [[x, y], ...] in original pixel coordinates."
            )
        frame = self.resizers[reference].frame(d[reference])
        box, points, labels = parse_prompts(
            frame.original_size, d.get(self.roi_key), d.get(self.foreground_key), d.get(self.background_key), item
        )
        if box is not None:
            d[self.boxes_key] = torch.as_tensor(frame.boxes_to_model(box), dtype=torch.float32)[None]
        elif self.pad_boxes:
            d[self.boxes_key] = torch.full((1, 4), float("nan"), dtype=torch.float32)
        if points is not None or self.pad_points is not None:
            coords = frame.coords_to_model(points) if points is not None else np.zeros((0, 2))
            labels = labels if labels is not None else np.zeros(0, dtype=np.int64)
            if self.pad_points is not None:
                if len(coords) > self.pad_points:
                    raise ValueError(f"{item}: {len(coords)} points given, more than pad_points={self.pad_points}.")
                extra = self.pad_points - len(coords)
                coords = np.concatenate([coords, np.zeros((extra, 2))])
                labels = np.concatenate([labels, np.full(extra, -1, dtype=np.int64)])
            d[self.points_key] = torch.as_tensor(coords, dtype=torch.float32)[None]
            d[self.point_labels_key] = torch.as_tensor(labels, dtype=torch.int64)[None]

    def __call__(self, data: Mapping[Hashable, NdarrayOrTensor]) -> dict[Hashable, Any]:
        d = dict(data)
        present = list(self.key_iterator(d))
        if present:
            reference = present[0]
            shapes = {str(k): tuple(d[k].shape[1:]) for k in present}
            if len(set(shapes.values())) > 1:
                raise ValueError(f"{self._item(d)}: keys of different spatial sizes {shapes} cannot share one frame.")
            self._prompts(d, reference)
        for key in present:
            d[key] = self.resizers[key](d[key])
        return d

    def inverse(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self.resizers[key].inverse(d[key])
        return d


BoxFromMaskD = BoxFromMaskDict = BoxFromMaskd
PointFromMaskD = PointFromMaskDict = PointFromMaskd
RandBoxFromMaskD = RandBoxFromMaskDict = RandBoxFromMaskd
RandPointsFromMaskD = RandPointsFromMaskDict = RandPointsFromMaskd
ResizeLongestSidePadD = ResizeLongestSidePadDict = ResizeLongestSidePadd
