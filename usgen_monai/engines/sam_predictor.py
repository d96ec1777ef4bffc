"""Interactive prediction with a promptable SAM: one image embedding, many prompts.

:py:class:`PromptPredictor` follows ``segment_anything``'s ``SamPredictor``: :py:meth:`~PromptPredictor.set_image`
runs the image encoder once and caches the embedding; :py:meth:`~PromptPredictor.predict` runs only the prompt
encoder and the mask decoder, so a further box or click costs a few milliseconds. The cache holds the embeddings of
several images (least recently used dropped first), keyed per image, so a MONAI Label server can keep the images
its users are annotating.

Images keep their aspect ratio: the long side is resized to the model's ``image_size`` and the rest padded
(:py:class:`usgen_monai.transforms.prompts.LongestSideFrame`); prompts are given and masks returned in the original
pixel grid, with x = column and y = row.

Example::

    predictor = PromptPredictor(build_sam("small", checkpoint="models/model.pt"))
    predictor.set_image(image, key="case_001.png")                   # (1, W, H) as MONAI loads it, in [0, 1]
    masks, iou = predictor.predict(boxes=[[40, 50, 200, 180], [10, 10, 90, 60]])   # (2, 1, W, H), (2, 1)
    masks, iou = predictor.predict_prompts(roi=[40, 50, 200, 180], foreground=[[120, 110]])  # MONAI Label's keys
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from monai.utils.type_conversion import convert_to_numpy

from usgen_monai.networks.sam import PromptableSam
from usgen_monai.transforms.prompts.array import LongestSideFrame, ResizeLongestSidePad, parse_prompts

__all__ = ["CachedEmbedding", "PromptPredictor"]


@dataclass
class CachedEmbedding:
    """One image's cache entry: its embedding, its frame, its axis order and the digest of its pixels."""

    embedding: torch.Tensor
    frame: LongestSideFrame
    reverse_indexing: bool
    digest: str


def _digest(image: np.ndarray) -> str:
    data = np.ascontiguousarray(image)
    head = f"{data.shape}{data.dtype}".encode()
    return hashlib.sha1(head + data.tobytes()).hexdigest()


class PromptPredictor:
    """Mask prediction from prompts against cached image embeddings.

    Args:
        model: a :py:class:`usgen_monai.networks.sam.PromptableSam` (its device is used; its mode is left alone).
        max_cached_images: embeddings kept; setting a further image drops the least recently used.
        reverse_indexing: ``True`` if images arrive in MONAI's axis order, the first spatial axis being x (a PNG of
            ``H`` rows and ``W`` columns as ``(C, W, H)``; masks are returned in that order too); ``False`` for
            row-major ``(C, H, W)`` / ``(H, W)`` arrays. Prompts are ``[x, y]`` either way.
    """

    def __init__(self, model: PromptableSam, max_cached_images: int = 8, reverse_indexing: bool = True) -> None:
        if max_cached_images < 1:
            raise ValueError(f"max_cached_images must be >= 1, got max_cached_images={max_cached_images}.")
        self.model = model
        self.max_cached_images = int(max_cached_images)
        self.reverse_indexing = reverse_indexing
        self.resizer = ResizeLongestSidePad(model.image_size, mode="bilinear", reverse_indexing=reverse_indexing)
        self._cache: OrderedDict[Hashable, CachedEmbedding] = OrderedDict()
        self.current_key: Hashable | None = None

    @property
    def cached_keys(self) -> list[Hashable]:
        """Keys of the cached embeddings, least recently used first."""
        return list(self._cache)

    def forget(self, key: Hashable | None = None) -> None:
        """Drop one image's embedding (``key``) or all of them (``None``)."""
        if key is None:
            self._cache.clear()
        else:
            self._cache.pop(key, None)
        if self.current_key not in self._cache:
            self.current_key = None

    @torch.no_grad()
    def set_image(self, image: Any, key: Hashable | None = None) -> Hashable:
        """Make ``image`` the current image, computing its embedding unless it is cached.

        Args:
            image: ``(C, spatial_0, spatial_1)`` or ``(spatial_0, spatial_1)`` with C = 1 (grey) or 3, in the
                predictor's axis order; floats in ``[0, 1]`` (``uint8`` is divided by 255).
            key: names the image in the cache (e.g. its file); default: a digest of its pixels. A key set again with
                other pixels is recomputed.

        Returns:
            the key (pass it to :py:meth:`predict` to use this image after setting others).
        """
        array = convert_to_numpy(image)
        if array.ndim == 2:
            array = array[None]
        if array.ndim != 3 or array.shape[0] not in (1, 3):
            raise ValueError(
                f"set_image expects (C, spatial_0, spatial_1) or (spatial_0, spatial_1) with C = 1 or 3, got shape "
                f"{tuple(array.shape)}."
            )
        digest = _digest(array)
        key = digest if key is None else key
        entry = self._cache.get(key)
        if entry is None or entry.digest != digest:
            pixels = torch.as_tensor(array.astype(np.float32) / 255.0 if array.dtype == np.uint8 else array)
            model_frame = self.resizer(pixels.float())
            model_frame = model_frame.as_tensor() if hasattr(model_frame, "as_tensor") else model_frame
            embedding = self.model.embed_images(model_frame[None].to(self.model.device))
            entry = CachedEmbedding(embedding, self.resizer.frame(array), self.reverse_indexing, digest)
        self._cache[key] = entry
        self._cache.move_to_end(key)
        while len(self._cache) > self.max_cached_images:
            self._cache.popitem(last=False)
        self.current_key = key
        return key

    def _entry(self, key: Hashable | None) -> CachedEmbedding:
        key = self.current_key if key is None else key
        if key is None:
            raise RuntimeError("no image is set: call set_image(image) before predict().")
        if key not in self._cache:
            raise KeyError(f"no cached embedding for {key!r}; cached: {self.cached_keys}. Call set_image again.")
        self._cache.move_to_end(key)
        return self._cache[key]

    def embedding(self, key: Hashable | None = None) -> torch.Tensor:
        """The cached embedding ``(1, C, h, w)`` of image ``key`` (default: the current image)."""
        return self._entry(key).embedding

    @torch.no_grad()
    def predict(
        self,
        boxes: Any = None,
        points: Any = None,
        labels: Any = None,
        key: Hashable | None = None,
        multimask_output: bool = False,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Masks for N prompts on one image, from its cached embedding (the image encoder does not run).

        Prompt ``n`` is ``boxes[n]`` together with ``points[n]``; a single point set ``(P, 2)`` goes with every box.

        Args:
            boxes: ``(N, 4)`` or ``(4,)`` as ``[x0, y0, x1, y1]`` in original pixels (x = column).
            points: ``(N, P, 2)`` or ``(P, 2)`` as ``[x, y]`` in original pixels.
            labels: ``(N, P)`` or ``(P,)``: 1 foreground, 0 background, -1 padding.
            key: the image (default: the one set last).
            multimask_output: M = the model's ``num_multimask_outputs`` masks per prompt instead of 1.
            return_logits: return logits instead of boolean masks.

        Returns:
            ``(masks, iou_predictions)``: ``(N, M, spatial_0, spatial_1)`` in the image's original size and axis
            order (see :py:meth:`LongestSideFrame.masks_to_original`), and ``(N, M)``.

        Raises:
            ValueError: no prompt, malformed prompts, an empty box or a prompt outside the image.
        """
        entry = self._entry(key)
        box_arr, point_arr, label_arr = self._prompt_arrays(boxes, points, labels, entry.frame)
        device = self.model.device
        model_boxes = model_points = model_labels = None
        if box_arr is not None:
            model_boxes = torch.as_tensor(entry.frame.boxes_to_model(box_arr), dtype=torch.float32, device=device)[None]
        if point_arr is not None:
            model_points = torch.as_tensor(entry.frame.coords_to_model(point_arr), dtype=torch.float32, device=device)
            model_points, model_labels = model_points[None], torch.as_tensor(label_arr, device=device)[None]
        logits, iou = self.model.decode(entry.embedding, model_boxes, model_points, model_labels, multimask_output)
        out = entry.frame.masks_to_original(logits[0], mode="auto")
        if entry.reverse_indexing:
            out = out.transpose(-1, -2)
        return (out if return_logits else out > self.model.mask_threshold), iou[0]

    @staticmethod
    def _prompt_arrays(
        boxes: Any, points: Any, labels: Any, frame: LongestSideFrame
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """Check the prompts of :py:meth:`predict` against the image and bring them to ``(N, 4)``, ``(N, P, 2)``,
        ``(N, P)``."""
        if boxes is None and points is None:
            raise ValueError("predict needs a prompt: give boxes, points (with labels) or both.")
        if (points is None) != (labels is None):
            raise ValueError("give points and labels together (labels: 1 foreground, 0 background, -1 padding).")
        box_arr = point_arr = label_arr = None
        if boxes is not None:
            box_arr = np.asarray(convert_to_numpy(boxes), dtype=np.float64)
            box_arr = box_arr[None] if box_arr.ndim == 1 else box_arr
            if box_arr.ndim != 2 or box_arr.shape[1] != 4:
                raise ValueError(f"boxes must be (N, 4) or (4,) as [x0, y0, x1, y1], got shape {box_arr.shape}.")
        if points is not None:
            point_arr = np.asarray(convert_to_numpy(points), dtype=np.float64)
            label_arr = np.asarray(convert_to_numpy(labels)).astype(np.int64)
            if point_arr.ndim == 2:
                point_arr, label_arr = point_arr[None], label_arr[None]
            if point_arr.ndim != 3 or point_arr.shape[-1] != 2 or label_arr.shape != point_arr.shape[:-1]:
                raise ValueError(
                    f"points must be (N, P, 2) or (P, 2) with labels (N, P) or (P,), got points {point_arr.shape} "
                    f"and labels {label_arr.shape}."
                )
            if box_arr is not None and len(point_arr) == 1 < len(box_arr):
                point_arr = np.repeat(point_arr, len(box_arr), axis=0)
                label_arr = np.repeat(label_arr, len(box_arr), axis=0)
            if box_arr is not None and len(point_arr) != len(box_arr):
                raise ValueError(f"{len(box_arr)} boxes but {len(point_arr)} point sets; give one set or one per box.")
        for n in range(len(box_arr) if box_arr is not None else len(point_arr)):
            pts = point_arr[n] if point_arr is not None else np.zeros((0, 2))
            lbl = label_arr[n] if label_arr is not None else np.zeros(0)
            parse_prompts(
                frame.original_size,
                roi=None if box_arr is None else box_arr[n],
                foreground=pts[lbl == 1],
                background=pts[lbl == 0],
                item=f"prompt {n}",
            )
        return box_arr, point_arr, label_arr

    def predict_prompts(
        self,
        roi: Any = None,
        foreground: Any = None,
        background: Any = None,
        key: Hashable | None = None,
        multimask_output: bool = False,
        return_logits: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One prompt in MONAI Label's keys: ``roi`` ``[x0, y0, x1, y1]``, ``foreground`` / ``background``
        ``[[x, y], ...]`` in original pixels.

        Returns:
            ``(masks, iou_predictions)``: ``(M, spatial_0, spatial_1)`` and ``(M,)``; see :py:meth:`predict`.
        """
        entry = self._entry(key)
        box, points, labels = parse_prompts(entry.frame.original_size, roi, foreground, background, item="prompt")
        masks, iou = self.predict(box, points, labels, key, multimask_output, return_logits)
        return masks[0], iou[0]
