"""Prompts for promptable segmentation (boxes and points), simulated from masks at training and given at inference,
and the geometry that brings images and prompts into the model's frame and masks back.

Prompts follow MONAI Label's layout, the same at training (simulated here) and inference (given in a datalist):
``roi`` is one box ``[x0, y0, x1, y1]`` and ``foreground`` / ``background`` are points ``[[x, y], ...]``, all in
original pixel coordinates where **x is the column and y the row** of the image as displayed. A box runs from its
first to its last pixel (``x1`` is the last column inside, as SAM's and the fine-tuning paper's masks-to-box do).

Axis order: MONAI readers return the first spatial axis as x (``reverse_indexing=True``: a PNG of ``H`` rows and
``W`` columns loads as ``(C, W, H)``), which is these transforms' default; arrays indexed ``[row, column]`` (numpy,
the simulator) use ``reverse_indexing=False``.

* :py:class:`BoxFromMask` / :py:class:`RandBoxFromMask`: the mask's bounding box, each side widened by a fixed or a
  random 0-20 px (arXiv 2506.23664 widens by ``randint(0, 20)`` per side).
* :py:class:`PointFromMask`: the click an annotator gives: the point deepest inside the mask (evaluation).
* :py:class:`RandPointsFromMask`: foreground points inside the mask, background points outside it.
* :py:func:`parse_prompts`: checks given prompts (a prompt outside the image, an empty box or a malformed value
  raises a ``ValueError`` naming the item).
* :py:class:`LongestSideFrame` / :py:class:`ResizeLongestSidePad`: resize the long side to the model's
  ``image_size`` keeping the aspect ratio, pad at the bottom/right (never stretch), map prompts the same way
  (``segment_anything``'s ``ResizeLongestSide``), and map masks back to the original grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from monai.config.type_definitions import NdarrayOrTensor
from monai.data import MetaTensor
from monai.data.meta_obj import get_track_meta
from monai.transforms import InvertibleTransform, RandomizableTransform, Transform
from monai.utils import TraceKeys, TransformBackends
from monai.utils.type_conversion import convert_to_numpy, convert_to_tensor
from scipy.ndimage import distance_transform_edt
from segment_anything.utils.transforms import ResizeLongestSide

__all__ = [
    "BoxFromMask",
    "LongestSideFrame",
    "PointFromMask",
    "RandBoxFromMask",
    "RandPointsFromMask",
    "ResizeLongestSidePad",
    "parse_prompts",
    "row_major_size",
]


def _item_name(img: Any, default: str = "mask") -> str:
    """The file an array came from (``MetaTensor`` metadata), else ``default``: what error messages name."""
    if isinstance(img, MetaTensor) and img.meta.get("filename_or_obj"):
        return str(img.meta["filename_or_obj"])
    return default


def row_major_size(spatial_shape: Sequence[int], reverse_indexing: bool = True) -> tuple[int, int]:
    """``(H, W)`` (rows, columns) of an image whose two spatial axes are ``spatial_shape``: ``(W, H)`` in MONAI's order
    (``reverse_indexing=True``) or ``(H, W)``."""
    if len(spatial_shape) != 2:
        raise ValueError(f"prompts need a 2D image, got spatial shape {tuple(spatial_shape)}.")
    first, second = (int(s) for s in spatial_shape)
    return (second, first) if reverse_indexing else (first, second)


def _row_major_mask(mask: NdarrayOrTensor, reverse_indexing: bool, name: str) -> np.ndarray:
    """A channel-first mask ``(C, spatial_0, spatial_1)`` as one boolean ``(H, W)`` array (channels merged by OR)."""
    if mask.ndim != 3:
        raise ValueError(
            f"{name}: expected a channel-first 2D mask (C, spatial_dim_0, spatial_dim_1), got shape {tuple(mask.shape)}."
        )
    merged = convert_to_numpy(mask).astype(bool).any(axis=0)
    return merged.T if reverse_indexing else merged


def _margins(margin: int | Sequence[int], name: str = "margin") -> np.ndarray:
    values = [margin] * 4 if isinstance(margin, (int, np.integer)) else list(margin)
    if len(values) != 4 or any(int(v) != v or v < 0 for v in values):
        raise ValueError(
            f"{name} must be a non-negative int or four of them (left, top, right, bottom), got {name}={margin!r}."
        )
    return np.asarray(values, dtype=np.int64)


class BoxFromMask(Transform):
    """The bounding box ``[x0, y0, x1, y1]`` of a mask, each side widened by a margin and clipped to the image.

    Args:
        margin: pixels added on each side, one int or ``(left, top, right, bottom)``.
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order); ``False`` for ``(H, W)``.
        empty: what an empty mask gives: ``"raise"`` (a ``ValueError`` naming the mask) or ``"image"`` (the whole
            image, as the paper's ``nobox`` training does).

    Example::

        >>> mask = np.zeros((1, 8, 6), np.uint8)      # (C, H, W) with reverse_indexing=False
        >>> mask[0, 2:5, 1:3] = 1
        >>> BoxFromMask(margin=1, reverse_indexing=False)(mask)
        array([0, 1, 3, 5])
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, margin: int | Sequence[int] = 0, reverse_indexing: bool = True, empty: str = "raise") -> None:
        if empty not in ("raise", "image"):
            raise ValueError(f"empty must be 'raise' or 'image', got empty={empty!r}.")
        self.margin = _margins(margin)
        self.reverse_indexing = reverse_indexing
        self.empty = empty

    def __call__(self, mask: NdarrayOrTensor, margin: int | Sequence[int] | None = None) -> np.ndarray:
        """
        Args:
            mask: channel-first 2D mask; any non-zero value of any channel is foreground.
            margin: overrides the constructor's margin for this call.

        Returns:
            ``int64`` array ``[x0, y0, x1, y1]`` of pixel indices (``x1``, ``y1`` inclusive) in original coordinates.

        Raises:
            ValueError: the mask is not channel-first 2D, or empty (with ``empty="raise"``).
        """
        name = _item_name(mask)
        grid = _row_major_mask(mask, self.reverse_indexing, name)
        height, width = grid.shape
        rows, cols = np.nonzero(grid)
        if rows.size == 0:
            if self.empty == "raise":
                raise ValueError(f"{name}: the mask is empty, so there is no box to take from it.")
            return np.asarray([0, 0, width - 1, height - 1], dtype=np.int64)
        left, top, right, bottom = self.margin if margin is None else _margins(margin)
        return np.asarray(
            [
                max(int(cols.min()) - left, 0),
                max(int(rows.min()) - top, 0),
                min(int(cols.max()) + right, width - 1),
                min(int(rows.max()) + bottom, height - 1),
            ],
            dtype=np.int64,
        )


class RandBoxFromMask(RandomizableTransform):
    """The bounding box of a mask with each side widened by its own random margin, as a simulated box prompt.

    arXiv 2506.23664 fine-tunes SAM with boxes from the mask widened by a random 0-20 px per side. Each call draws
    four margins ``(left, top, right, bottom)`` uniformly from ``margin_range`` (inclusive) with :py:attr:`R`, keeps
    them in :py:attr:`margins` (the draw; the dictionary twin records it), and calls the deterministic
    :py:class:`BoxFromMask` with them.

    Args:
        margin_range: ``(low, high)`` pixels, both inclusive.
        prob: probability of widening; otherwise the box is tight (margins 0).
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order).
        empty: see :py:class:`BoxFromMask`.
    """

    backend = BoxFromMask.backend

    def __init__(
        self,
        margin_range: Sequence[int] = (0, 20),
        prob: float = 1.0,
        reverse_indexing: bool = True,
        empty: str = "raise",
    ) -> None:
        RandomizableTransform.__init__(self, prob)
        if len(margin_range) != 2 or not 0 <= int(margin_range[0]) <= int(margin_range[1]):
            raise ValueError(
                f"margin_range must be (low, high) with 0 <= low <= high, got margin_range={margin_range}."
            )
        self.margin_range = (int(margin_range[0]), int(margin_range[1]))
        self.box_from_mask = BoxFromMask(reverse_indexing=reverse_indexing, empty=empty)
        self.margins = np.zeros(4, dtype=np.int64)

    def randomize(self, data: Any = None) -> None:
        super().randomize(None)
        low, high = self.margin_range
        drawn = self.R.randint(low, high + 1, size=4)
        self.margins = drawn.astype(np.int64) if self._do_transform else np.zeros(4, dtype=np.int64)

    def __call__(self, mask: NdarrayOrTensor, randomize: bool = True) -> np.ndarray:
        """
        Args:
            mask: channel-first 2D mask.
            randomize: draw new margins (``False`` reuses the last draw).

        Returns:
            ``[x0, y0, x1, y1]`` as :py:class:`BoxFromMask` returns it.
        """
        if randomize:
            self.randomize()
        return self.box_from_mask(mask, margin=self.margins)


class PointFromMask(Transform):
    """One foreground click at the mask's most interior pixel: the one farthest from the mask's boundary (Euclidean
    distance transform; of equally deep pixels the one nearest their mean). It is the deterministic click an
    annotator gives in the middle of a structure, used to evaluate point prompts reproducibly (training draws random
    clicks with :py:class:`RandPointsFromMask`). When the mask has several components, the click lies in the
    thickest one.

    Args:
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order); ``False`` for ``(H, W)``.
        empty: what an empty mask gives: ``"raise"`` (a ``ValueError`` naming the mask) or ``"background"`` (no
            foreground click and one background click at the image centre, as clicks are trained on images without
            the finding).

    Example::

        >>> mask = np.zeros((1, 7, 9), np.uint8)      # (C, H, W) with reverse_indexing=False
        >>> mask[0, 1:6, 2:7] = 1
        >>> PointFromMask(reverse_indexing=False)(mask)
        (array([[4, 3]]), array([], shape=(0, 2), dtype=int64))
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(self, reverse_indexing: bool = True, empty: str = "raise") -> None:
        if empty not in ("raise", "background"):
            raise ValueError(f"empty must be 'raise' or 'background', got empty={empty!r}.")
        self.reverse_indexing = reverse_indexing
        self.empty = empty

    def __call__(self, mask: NdarrayOrTensor) -> tuple[np.ndarray, np.ndarray]:
        """
        Args:
            mask: channel-first 2D mask; any non-zero value of any channel is foreground.

        Returns:
            ``(foreground, background)``: ``int64`` arrays ``(1, 2)`` and ``(0, 2)`` of ``[x, y]`` in original pixel
            coordinates (``(0, 2)`` and ``(1, 2)`` for an empty mask with ``empty="background"``).

        Raises:
            ValueError: the mask is not channel-first 2D, or empty (with ``empty="raise"``).
        """
        name = _item_name(mask)
        grid = _row_major_mask(mask, self.reverse_indexing, name)
        none = np.zeros((0, 2), dtype=np.int64)
        if not grid.any():
            if self.empty == "raise":
                raise ValueError(f"{name}: the mask is empty, so there is no point inside it to click.")
            height, width = grid.shape
            return none, np.asarray([[width // 2, height // 2]], dtype=np.int64)
        # pad so that a mask touching the image border still has its border counted as boundary
        depth = distance_transform_edt(np.pad(grid, 1))[1:-1, 1:-1]
        deepest = np.argwhere(depth == depth.max())
        # ties (a band of equal depth): the tied pixel nearest their mean, the middle of the band
        row, col = deepest[int(np.argmin(((deepest - deepest.mean(0)) ** 2).sum(1)))]
        return np.asarray([[col, row]], dtype=np.int64), none


class RandPointsFromMask(RandomizableTransform):
    """Random point prompts from a mask: foreground points inside it, background points outside it.

    Foreground points are drawn uniformly from the mask's pixels. Background points are drawn from the pixels
    outside the mask within its bounding box widened by ``background_margin`` (where a background click helps most),
    or from anywhere outside the mask when that region has none or ``background_margin`` is ``None``. Points are drawn
    without replacement when there are enough pixels, else with. The draw is kept in :py:attr:`foreground` and
    :py:attr:`background`.

    Args:
        num_foreground: foreground points per call.
        num_background: background points per call.
        background_margin: pixels around the mask's bounding box to draw background points from; ``None`` for the
            whole image.
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order).
        empty: for an empty mask, ``"raise"`` (no foreground point can be drawn) or ``"background"``: draw
            ``num_foreground + num_background`` background points from the whole image and no foreground point
            (click training on images without the finding, whose target is the empty mask).
    """

    backend = [TransformBackends.TORCH, TransformBackends.NUMPY]

    def __init__(
        self,
        num_foreground: int = 1,
        num_background: int = 0,
        background_margin: int | None = 20,
        reverse_indexing: bool = True,
        empty: str = "raise",
    ) -> None:
        RandomizableTransform.__init__(self, 1.0)
        if empty not in ("raise", "background"):
            raise ValueError(f"empty must be 'raise' or 'background', got empty={empty!r}.")
        self.empty = empty
        if num_foreground < 0 or num_background < 0 or num_foreground + num_background == 0:
            raise ValueError(
                "num_foreground and num_background must be >= 0 and not both 0, got "
                f"num_foreground={num_foreground}, num_background={num_background}."
            )
        if background_margin is not None and background_margin < 0:
            raise ValueError(f"background_margin must be >= 0 or None, got background_margin={background_margin}.")
        self.num_foreground = int(num_foreground)
        self.num_background = int(num_background)
        self.background_margin = background_margin
        self.reverse_indexing = reverse_indexing
        self.foreground = np.zeros((0, 2), dtype=np.int64)
        self.background = np.zeros((0, 2), dtype=np.int64)

    def _pick(self, candidates: np.ndarray, count: int) -> np.ndarray:
        """``count`` rows of ``candidates`` ``(K, 2)`` as ``[x, y]``."""
        if count == 0:
            return np.zeros((0, 2), dtype=np.int64)
        index = self.R.choice(len(candidates), size=count, replace=len(candidates) < count)
        return candidates[index][:, ::-1].astype(np.int64)  # (row, col) -> (x, y)

    def randomize(self, data: np.ndarray) -> None:
        """Draw the points for ``data``, a boolean ``(H, W)`` mask."""
        super().randomize(None)
        inside = np.argwhere(data)
        outside_mask = ~data
        if self.background_margin is not None and inside.size:
            (top, left), (bottom, right) = inside.min(0), inside.max(0)
            m = self.background_margin
            near = np.zeros_like(data)
            near[max(top - m, 0) : bottom + m + 1, max(left - m, 0) : right + m + 1] = True
            if (outside_mask & near).any():
                outside_mask = outside_mask & near
        if not inside.size and self.empty == "background":
            self.foreground = np.zeros((0, 2), dtype=np.int64)
            self.background = self._pick(np.argwhere(outside_mask), self.num_foreground + self.num_background)
            return
        self.foreground = self._pick(inside, self.num_foreground)
        self.background = self._pick(np.argwhere(outside_mask), self.num_background)

    def __call__(self, mask: NdarrayOrTensor, randomize: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """
        Args:
            mask: channel-first 2D mask.
            randomize: draw new points (``False`` reuses the last draw).

        Returns:
            ``(foreground, background)``: ``int64`` arrays ``(num_foreground, 2)`` and ``(num_background, 2)`` of
            ``[x, y]`` in original pixel coordinates.

        Raises:
            ValueError: foreground points from an empty mask, or background points from a mask covering the image.
        """
        name = _item_name(mask)
        grid = _row_major_mask(mask, self.reverse_indexing, name)
        if self.num_foreground and not grid.any() and self.empty == "raise":
            raise ValueError(f"{name}: the mask is empty, so no foreground point can be drawn from it.")
        if self.num_background and grid.all():
            raise ValueError(f"{name}: the mask covers the whole image, so no background point can be drawn.")
        if randomize:
            self.randomize(grid)
        return self.foreground, self.background


def _as_float_array(value: Any, shape_text: str, what: str, item: str) -> np.ndarray:
    try:
        arr = np.asarray(convert_to_numpy(value) if isinstance(value, torch.Tensor) else value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{item}: {what} must be {shape_text} of numbers, got {value!r}.") from exc
    if not np.isfinite(arr).all():
        raise ValueError(f"{item}: {what} must be {shape_text} of finite numbers, got {value!r}.")
    return arr


def parse_prompts(
    size: Sequence[int],
    roi: Any = None,
    foreground: Any = None,
    background: Any = None,
    item: str = "item",
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Check prompts in MONAI Label's layout against an image and turn them into arrays.

    Args:
        size: the image's ``(H, W)`` (rows, columns; see :py:func:`row_major_size`).
        roi: ``[x0, y0, x1, y1]`` or ``None``; the box must have positive width and height and lie in
            ``[0, W] x [0, H]``.
        foreground: ``[[x, y], ...]`` or ``None``; each point must lie in ``[0, W) x [0, H)``.
        background: like ``foreground``.
        item: names the item in error messages (e.g. the image file).

    Returns:
        ``(box (4,), points (P, 2), labels (P,))`` as float / int arrays; the points are foreground then background,
        labelled 1 and 0; ``None`` for what was not given.

    Raises:
        ValueError: a malformed prompt, an empty or inverted box, or a prompt outside the image; the message names
            ``item`` and the prompt.
    """
    height, width = (int(s) for s in size)
    box = None
    if roi is not None:
        box = _as_float_array(roi, "[x0, y0, x1, y1]", "roi", item)
        if box.shape != (4,):
            raise ValueError(f"{item}: roi must be [x0, y0, x1, y1] (4 numbers), got {roi!r}.")
        x0, y0, x1, y1 = box
        if x1 <= x0 or y1 <= y0:
            raise ValueError(f"{item}: roi {box.tolist()} is an empty box (it needs x1 > x0 and y1 > y0).")
        if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
            raise ValueError(
                f"{item}: roi {box.tolist()} lies outside the image of width {width} and height {height} "
                f"(x in [0, {width}], y in [0, {height}])."
            )
    points, labels = [], []
    for key, value, label in (("foreground", foreground, 1), ("background", background, 0)):
        if value is None:
            continue
        arr = _as_float_array(value, "[[x, y], ...]", key, item)
        if arr.size == 0:
            continue
        if arr.ndim != 2 or arr.shape[1] != 2:
            raise ValueError(f"{item}: {key} must be a list of [x, y] points, got {value!r}.")
        outside = [p.tolist() for p in arr if not (0 <= p[0] < width and 0 <= p[1] < height)]
        if outside:
            raise ValueError(
                f"{item}: {key} point(s) {outside} lie outside the image of width {width} and height {height} "
                f"(x in [0, {width}), y in [0, {height}))."
            )
        points.append(arr)
        labels.append(np.full(len(arr), label, dtype=np.int64))
    if not points:
        return box, None, None
    return box, np.concatenate(points), np.concatenate(labels)


class LongestSideFrame:
    """The model's frame for one image size: resize the long side to ``image_size`` keeping the aspect ratio, pad the
    bottom and right to ``image_size x image_size``; prompts scale with the image, masks map back.

    Sizes and prompt scaling are ``segment_anything``'s ``ResizeLongestSide`` (``x * w'/W``, ``y * h'/H``), so
    published checkpoints see prompts as they were trained with. All arrays here are row-major (``[..., row, col]``).

    Args:
        original_size: ``(H, W)`` of the image.
        image_size: the model's square input side.
    """

    def __init__(self, original_size: Sequence[int], image_size: int) -> None:
        if len(original_size) != 2 or min(original_size) < 1:
            raise ValueError(f"original_size must be (H, W) of positive ints, got original_size={original_size}.")
        self.original_size = (int(original_size[0]), int(original_size[1]))
        self.image_size = int(image_size)
        self.resize = ResizeLongestSide(self.image_size)
        self.input_size = self.resize.get_preprocess_shape(*self.original_size, self.image_size)
        """``(h, w)``: the resized image inside the padded frame."""

    def coords_to_model(self, coords: np.ndarray) -> np.ndarray:
        """Points ``(..., 2)`` as ``[x, y]`` in original pixels -> model-frame pixels (float)."""
        return self.resize.apply_coords(np.asarray(coords, dtype=np.float64), self.original_size)

    def boxes_to_model(self, boxes: np.ndarray) -> np.ndarray:
        """Boxes ``(..., 4)`` as ``[x0, y0, x1, y1]`` in original pixels -> model-frame pixels (float)."""
        boxes = np.asarray(boxes, dtype=np.float64)
        return self.resize.apply_boxes(boxes.reshape(-1, 4), self.original_size).reshape(boxes.shape)

    def image_to_model(self, img: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
        """``(C, H, W)`` -> ``(C, image_size, image_size)``: resized (antialiased when shrinking with ``bilinear``;
        ``nearest`` for masks), then padded with zeros at the bottom/right."""
        if tuple(img.shape[-2:]) != self.original_size:
            raise ValueError(f"image of size {tuple(img.shape[-2:])} does not match this frame's {self.original_size}.")
        resized = _resize(img, self.input_size, mode)
        pad_h, pad_w = self.image_size - self.input_size[0], self.image_size - self.input_size[1]
        return F.pad(resized, (0, pad_w, 0, pad_h))

    def masks_to_original(self, masks: torch.Tensor, mode: str = "auto") -> torch.Tensor:
        """Model-frame masks or logits ``(..., image_size, image_size)`` (or ``(..., h, w)``, unpadded) -> the original
        ``(..., H, W)``: the padding is cropped, then the rest resized.

        ``mode="auto"`` (for logits and probabilities; threshold afterwards) resizes bilinearly when the original is
        larger than the model's frame (enlarging gives smooth boundaries, as ``segment_anything`` does), and by
        nearest pixel centre otherwise, so a mask drawn in an image no larger than the frame survives the round trip
        through :py:meth:`image_to_model` exactly. ``"nearest"`` (label maps) and ``"bilinear"`` force one way."""
        h, w = self.input_size
        if masks.shape[-2] < h or masks.shape[-1] < w:
            raise ValueError(f"masks of size {tuple(masks.shape[-2:])} are smaller than the frame's input {h, w}.")
        if mode == "auto":
            mode = "bilinear" if max(self.original_size) > self.image_size else "nearest"
        return _resize(masks[..., :h, :w], self.original_size, mode)


def _resize(img: torch.Tensor, size: Sequence[int], mode: str) -> torch.Tensor:
    """Resize the last two axes of ``img`` (any leading shape) to ``size``; ``mode`` is ``bilinear`` or ``nearest``
    (pixel-centre aligned, so upsampling and back returns a mask exactly)."""
    if mode not in ("bilinear", "nearest"):
        raise ValueError(f"mode must be 'bilinear' or 'nearest', got mode={mode!r}.")
    size = (int(size[0]), int(size[1]))
    if tuple(img.shape[-2:]) == size:
        return img
    lead = img.shape[:-2]
    flat = img.reshape(-1, 1, *img.shape[-2:])
    if mode == "nearest":
        out = F.interpolate(flat.float(), size=size, mode="nearest-exact").to(img.dtype)
    else:
        shrink = size[0] < img.shape[-2] or size[1] < img.shape[-1]
        out = F.interpolate(flat.float(), size=size, mode="bilinear", align_corners=False, antialias=shrink)
    return out.reshape(*lead, *size)


class ResizeLongestSidePad(InvertibleTransform):
    """Bring a channel-first 2D image into the model's frame (:py:class:`LongestSideFrame`): row-major, long side
    resized to ``image_size``, padded at the bottom/right with zeros to ``image_size x image_size``; never stretched.

    The original size is recorded, so ``inverse`` (and :py:class:`monai.transforms.Invertd` in a pipeline) maps a
    model-frame prediction back to the original grid and axis order: logits and probabilities as
    :py:meth:`LongestSideFrame.masks_to_original` does with ``mode="auto"`` (threshold afterwards), integer and
    boolean masks by nearest pixel centre; either way a mask drawn in an image no larger than the frame comes back
    exactly.

    Args:
        image_size: the model's square input side.
        mode: ``"bilinear"`` (images) or ``"nearest"`` (masks, label maps).
        reverse_indexing: ``True`` if the input's first spatial axis is x (MONAI's order; transposed here to
            row-major and back by ``inverse``); ``False`` for ``(C, H, W)`` input.

    Example::

        >>> out = ResizeLongestSidePad(256, reverse_indexing=False)(torch.rand(1, 97, 211))
        >>> out.shape
        torch.Size([1, 256, 256])
    """

    backend = [TransformBackends.TORCH]

    def __init__(self, image_size: int = 256, mode: str = "bilinear", reverse_indexing: bool = True) -> None:
        if mode not in ("bilinear", "nearest"):
            raise ValueError(f"mode must be 'bilinear' or 'nearest', got mode={mode!r}.")
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got image_size={image_size}.")
        self.image_size = int(image_size)
        self.mode = mode
        self.reverse_indexing = reverse_indexing

    def frame(self, img: NdarrayOrTensor) -> LongestSideFrame:
        """The frame of ``img`` (channel-first 2D, in this transform's axis order)."""
        if img.ndim != 3:
            raise ValueError(
                f"{_item_name(img, 'image')}: expected a channel-first 2D image (C, spatial_dim_0, spatial_dim_1), "
                f"got shape {tuple(img.shape)}."
            )
        return LongestSideFrame(row_major_size(img.shape[1:], self.reverse_indexing), self.image_size)

    def __call__(self, img: NdarrayOrTensor) -> torch.Tensor:
        """
        Args:
            img: ``(C, W, H)`` with ``reverse_indexing`` (MONAI's order), else ``(C, H, W)``.

        Returns:
            ``(C, image_size, image_size)``, row-major (x = last axis), the input's dtype for ``nearest`` and float
            for ``bilinear``.
        """
        frame = self.frame(img)
        img_t = convert_to_tensor(img, track_meta=get_track_meta())
        spatial = [int(s) for s in img_t.shape[1:]]
        row_major = img_t.transpose(-1, -2) if self.reverse_indexing else img_t
        out = frame.image_to_model(row_major.as_tensor() if isinstance(row_major, MetaTensor) else row_major, self.mode)
        if isinstance(img_t, MetaTensor) and get_track_meta():
            out = MetaTensor(out, meta=dict(img_t.meta), applied_operations=list(img_t.applied_operations))
            out = self.push_transform(
                out,
                orig_size=spatial,
                extra_info={"original_size": list(frame.original_size), "reverse_indexing": self.reverse_indexing},
            )
        return out

    def inverse(self, data: torch.Tensor) -> torch.Tensor:
        """Map a model-frame ``(C, image_size, image_size)`` prediction back to the original grid (and axis order) of
        the image this transform was applied to; ``data`` carries that record (``Invertd`` copies it)."""
        transform = self.pop_transform(data)
        info = transform[TraceKeys.EXTRA_INFO]
        frame = LongestSideFrame(info["original_size"], self.image_size)
        plain = data.as_tensor() if isinstance(data, MetaTensor) else data
        mode = "auto" if torch.is_floating_point(plain) else "nearest"
        out = frame.masks_to_original(plain, mode)
        if info["reverse_indexing"]:
            out = out.transpose(-1, -2)
        if isinstance(data, MetaTensor):
            out = MetaTensor(out, meta=dict(data.meta), applied_operations=list(data.applied_operations))
        return out
