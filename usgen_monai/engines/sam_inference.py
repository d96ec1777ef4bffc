"""Prompted inference with a promptable SAM on the files users have, through the package's one inference path
(:py:class:`usgen_monai.engines.segmentation_inference.SegmentationInference`: readers, ``Invertd`` back to the
file's grid, PNG / NIfTI / DICOM SEG writers, bad items reported and skipped, ``inference_summary.json``).

The pieces the ``bundles/sam`` inference config wires (``_target_``):

* :py:func:`prompt_inputs`: the items of a prompts file, a JSON list of ``{"image": path, "roi": [x0, y0, x1, y1],
  "foreground": [[x, y], ...], "background": [[x, y], ...]}`` (any prompt key may be absent; MONAI Label's keys, in
  the image's own pixel coordinates), or a MONAI datalist dict with such a list. A malformed entry stays in the
  list, marked, so that the run reports it (naming the entry) and goes on.
* :py:class:`CheckPromptItemd`: the first preprocessing step; raises the marked entry's error.
* :py:class:`AutoBoxPromptd`: an item without any prompt gets a box from another bundle's prediction (the MGCC
  bundle's, run through that bundle's own ``inference.json`` definitions) when that bundle has trained weights, or
  a ``ValueError`` saying that a prompt is needed.
* :py:class:`FromModelFramed`: model-frame predictions back to the grid of a reference (an evaluator's copy of the
  original label), where ``Invertd`` has no image metadata to follow (``monai.engines`` evaluators output the
  prepared batch's plain tensors).
* :py:class:`PromptInferer`: runs the network with the item's prompts, computing each image's embedding once: items
  that share an image (several boxes on one image) reuse the cached embedding, and only the prompt encoder and the
  mask decoder run again.

Example (what ``bundles/sam/configs/inference.json`` does)::

    items = prompt_inputs("prompts.json")          # [{"image": ".../case.png", "roi": [40, 50, 200, 180]}, ...]
    runner = SegmentationInference(
        network=sam, preprocessing=Compose([CheckPromptItemd(), AutoBoxPromptd(""), LoadImaged(...), ...,
                                            ResizeLongestSidePadd("image", image_size=256)]),
        inferer=PromptInferer(), postprocessing=..., writer=MaskWriter("out"),
        prompt_keys=("boxes", "points", "point_labels"), item_stems=True,
    )
    runner.run(items)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from monai.config import KeysCollection
from monai.data import MetaTensor
from monai.transforms import MapTransform

from usgen_monai.engines.sam_training import SamInferer

__all__ = [
    "PROMPT_KEYS",
    "AutoBoxPromptd",
    "CheckPromptItemd",
    "FromModelFramed",
    "PromptInferer",
    "prompt_inputs",
]

logger = logging.getLogger(__name__)

#: the prompt keys of an item (MONAI Label's)
PROMPT_KEYS: tuple[str, ...] = ("roi", "foreground", "background")
#: where :py:func:`prompt_inputs` puts the reason an entry is malformed
INVALID_KEY = "invalid_item"


def _describe(entry: Any, limit: int = 80) -> str:
    text = json.dumps(entry, default=str) if not isinstance(entry, str) else repr(entry)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def prompt_inputs(
    datalist: str | os.PathLike | None,
    datalist_key: str = "test",
    base_dir: str | os.PathLike | None = None,
    dataset_dir: str | os.PathLike | None = "",
) -> list[dict[str, Any]]:
    """The items of a prompts file for prompted inference (or, without one, every image of ``dataset_dir`` without
    prompts, for automatic prompts: :py:func:`usgen_monai.engines.segmentation_inference.inference_inputs`).

    The file holds a JSON list of items, or a MONAI datalist dict whose ``datalist_key`` list (or, when it has no
    such list, its only list) holds them. Each item is ``{"image": path, ...}`` with any of the prompt keys ``roi``
    ``[x0, y0, x1, y1]``, ``foreground`` and ``background`` ``[[x, y], ...]`` in the image's pixel coordinates
    (x = column, y = row; checked against the image when it is read). A relative image path is relative to
    ``base_dir`` (default: the file's folder); other keys are kept as they are.

    An entry that is not an object, or has no ``image`` string, is kept as ``{"image": "<file> item <k>",
    "invalid_item": reason}``: :py:class:`CheckPromptItemd` raises the reason, so the run reports that entry as failed
    (naming it) and segments the rest, as it does with an unreadable image.

    Args:
        datalist: the JSON file; empty: read ``dataset_dir``.
        datalist_key: the list of a datalist dict. Defaults to ``"test"``.
        base_dir: the folder relative image paths start from.
        dataset_dir: a folder of images, used when no ``datalist`` is given.

    Raises:
        ValueError: the file is missing, not JSON, holds neither a list nor a dict with a list of items, or the list
            is empty (the message names the file).
    """
    if not datalist:
        from usgen_monai.engines.segmentation_inference import inference_inputs

        if not dataset_dir:
            raise ValueError(
                "no inputs: give datalist (a JSON list of {'image': path, 'roi': [x0, y0, x1, y1], 'foreground': "
                "[[x, y], ...], 'background': [[x, y], ...]}, --datalist) or dataset_dir (a folder of images, each "
                "prompted automatically, --dataset_dir)."
            )
        return inference_inputs(dataset_dir=dataset_dir)
    path = Path(datalist)
    file = path / "datalist.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"prompts file {file} does not exist (--datalist).") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read prompts file {file}: {e}") from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if datalist_key in lists:
            data = lists[datalist_key]
        elif len(lists) == 1:
            data = next(iter(lists.values()))
        else:
            raise ValueError(
                f"prompts file {file} is a dict without a {datalist_key!r} list (its lists: {sorted(lists)}); give "
                "--datalist_key or a JSON list of items."
            )
    if not isinstance(data, list):
        raise ValueError(f"prompts file {file} holds a {type(data).__name__}; expected a list of items.")
    if not data:
        raise ValueError(f"prompts file {file} holds no items.")
    root = Path(base_dir) if base_dir else file.parent
    items = []
    for k, entry in enumerate(data):
        name = f"{file} item {k}"
        if not isinstance(entry, Mapping):
            items.append(
                {"image": name, INVALID_KEY: f"{name}: expected an object with 'image', got {_describe(entry)}"}
            )
            continue
        image = entry.get("image")
        if not isinstance(image, str) or not image:
            items.append({"image": name, INVALID_KEY: f"{name}: no 'image' file path in {_describe(entry)}"})
            continue
        item = dict(entry)
        item["image"] = image if os.path.isabs(image) else os.path.normpath(str(root / image))
        items.append(item)
    return items


class CheckPromptItemd(MapTransform):
    """Raise the error :py:func:`prompt_inputs` recorded for a malformed entry (``invalid_item``), so the run skips
    and reports it; other items pass unchanged.

    Args:
        key: where the reason is.
    """

    def __init__(self, key: str = INVALID_KEY) -> None:
        super().__init__(keys=[key], allow_missing_keys=True)
        self.key = key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        if data.get(self.key):
            raise ValueError(str(data[self.key]))
        return dict(data)


class AutoBoxPromptd(MapTransform):
    """``auto`` prompts: an item without any prompt gets the bounding box of another bundle's predicted mask.

    An item that has any of ``roi``, ``foreground`` or ``background`` passes unchanged. For one without, the bundle at
    ``bundle_root`` (the MGCC bundle: automatic lesion segmentation) segments the item's image through its own
    ``configs/inference.json`` (:py:class:`usgen_monai.engines.bundle_segmenter.BundleSegmenter`, built on first use
and kept), and the box of its mask on
    the image's grid, each side widened by ``margin`` px (training widens boxes by 0-20 px, 10 on average), becomes
    the item's ``roi``. The whole mask gives one box (one mask per item). When that bundle or its
    weights (``models/model.ts`` or ``models/model.pt``) are missing, or its mask is empty, the item gets a ``ValueError`` saying that a prompt is
    needed (the run reports it and goes on).

    Place it before ``LoadImaged``: it reads the item's file itself, as that bundle reads it.

    Args:
        bundle_root: the bundle whose prediction gives the boxes (``""`` or ``None``: no automatic prompts).
        device: where that bundle's network runs; default its config's.
        margin: pixels added to each side of the box.
        image_key: the item's image file.
        roi_key: where the box goes.
        prompt_keys: the keys that count as a given prompt.
    """

    def __init__(
        self,
        bundle_root: str | os.PathLike | None,
        device: str | torch.device | None = None,
        margin: int = 10,
        image_key: str = "image",
        roi_key: str = "roi",
        prompt_keys: Sequence[str] = PROMPT_KEYS,
    ) -> None:
        super().__init__(keys=[image_key])
        if int(margin) != margin or margin < 0:
            raise ValueError(f"margin must be a non-negative integer, got margin={margin!r}.")
        self.bundle_root = Path(bundle_root) if bundle_root else None
        self.device = device
        self.margin = int(margin)
        self.image_key, self.roi_key = image_key, roi_key
        self.prompt_keys = tuple(prompt_keys)
        self._segmenter: Any = None

    @property
    def weights(self) -> Path | None:
        """The weights file the automatic prompts need (the one :py:class:`BundleSegmenter` loads)."""
        from usgen_monai.engines.bundle_segmenter import bundle_model_file

        return None if self.bundle_root is None else bundle_model_file(self.bundle_root)

    @property
    def available(self) -> bool:
        """Whether items without prompts can get one (the bundle and its weights are there)."""
        return self.weights is not None and self.weights.is_file()

    def segmenter(self) -> Any:
        """The bundle's pipeline (built once)."""
        if self._segmenter is None:
            from usgen_monai.engines.bundle_segmenter import BundleSegmenter

            self._segmenter = BundleSegmenter(self.bundle_root, device=self.device).runner
            logger.info(f"automatic box prompts from the bundle {self.bundle_root} ({self.weights})")
        return self._segmenter

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from usgen_monai.transforms.prompts import BoxFromMask

        d = dict(data)
        if any(d.get(k) is not None for k in self.prompt_keys):
            return d
        name = d.get(self.image_key)
        if not self.available:
            why = (
                "automatic prompts are off (auto_prompt_bundle is empty)"
                if self.bundle_root is None
                else f"automatic prompts need {self.weights}, which does not exist"
            )
            raise ValueError(
                f"{name}: no prompt given and {why}; give 'roi' [x0, y0, x1, y1] and/or 'foreground' / 'background' "
                "[[x, y], ...] in pixels."
            )
        pred = self.segmenter().segment({self.image_key: name})["pred"]
        if not bool((pred > 0).any()):
            raise ValueError(
                f"{name}: no prompt given, and the automatic prompt from {self.bundle_root} found nothing to box (its "
                "mask is empty); give 'roi' and/or 'foreground' / 'background' points."
            )
        box = BoxFromMask(margin=self.margin, reverse_indexing=True)(pred > 0)
        d[self.roi_key] = [int(v) for v in box]
        logger.info(f"{name}: automatic box prompt {d[self.roi_key]} from {self.bundle_root}")
        return d


def _digest(images: torch.Tensor) -> str:
    data = images.detach().cpu().contiguous()
    return hashlib.sha1(f"{tuple(data.shape)}{data.dtype}".encode() + data.numpy().tobytes()).hexdigest()


class PromptInferer(SamInferer):
    """Run a :py:class:`usgen_monai.networks.sam.PromptableSam` on model-frame images with their prompts, computing
    each image's embedding once.

    The embedding of each image (keyed by a digest of its pixels) is kept for the ``max_cached_images`` images used
    last: further prompts on a cached image (several items on one image, a user's next click) run only the prompt
    encoder and the mask decoder. Returns the single-mask logits ``(B, N, H, W)`` as :py:class:`SamInferer` does, so
    the same postprocessing and losses apply. :py:attr:`hits` and :py:attr:`misses` count cache use.

    Args:
        multimask_output: see :py:class:`SamInferer`.
        max_cached_images: embeddings kept (>= 1).
    """

    def __init__(self, multimask_output: bool | str = False, max_cached_images: int = 8) -> None:
        super().__init__(multimask_output=multimask_output)
        if int(max_cached_images) != max_cached_images or max_cached_images < 1:
            raise ValueError(
                f"max_cached_images must be a positive integer, got max_cached_images={max_cached_images}."
            )
        self.max_cached_images = int(max_cached_images)
        self._cache: OrderedDict[str, torch.Tensor] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def clear(self) -> None:
        """Drop every cached embedding."""
        self._cache.clear()

    def embed(self, inputs: torch.Tensor, network: nn.Module) -> torch.Tensor:
        """The embeddings ``(B, C, h, w)`` of ``inputs`` ``(B, C, H, W)``, from the cache where there."""
        keys = [_digest(image) for image in inputs]
        missing = [b for b, key in enumerate(keys) if key not in self._cache]
        if missing:
            with torch.no_grad():
                computed = network.embed_images(inputs[missing])
            for b, embedding in zip(missing, computed):
                self._cache[keys[b]] = embedding
        self.misses += len(missing)
        self.hits += len(keys) - len(missing)
        embeddings = torch.stack([self._cache[key] for key in keys])
        for key in keys:
            self._cache.move_to_end(key)
        while len(self._cache) > self.max_cached_images:
            self._cache.popitem(last=False)
        return embeddings

    def __call__(  # type: ignore[override]
        self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any
    ) -> torch.Tensor:
        x = inputs.as_tensor() if isinstance(inputs, MetaTensor) else torch.as_tensor(inputs)
        if x.ndim != 4:
            raise ValueError(
                f"PromptInferer expects (B, C, H, W) images, got shape {tuple(x.shape)}; a prompt names one 2D image, "
                "so select a frame of a cine first (usgen_monai.transforms.SelectFramesd)."
            )
        module = network.module if isinstance(network, nn.parallel.DistributedDataParallel) else network
        if not hasattr(module, "embed_images") or not hasattr(module, "decode"):
            raise ValueError(
                f"PromptInferer needs a PromptableSam (embed_images, decode), got {type(module).__name__}."
            )
        logits, iou = module.decode(
            self.embed(x, module), *args, multimask_output=self.multimask_output, output_size=tuple(x.shape[-2:]),
            **kwargs,
        )  # fmt: skip
        return self.select(logits, iou)


class FromModelFramed(MapTransform):
    """Map model-frame predictions ``(C, S, S)`` back to the grid of a reference item entry ``(C', spatial_0,
    spatial_1)``: the padding cropped and the rest resized, as
    :py:meth:`usgen_monai.transforms.prompts.LongestSideFrame.masks_to_original` does (``"auto"``: probabilities and
    logits; threshold afterwards).

    ``Invertd`` does the same from the image's transform record where the record survives (the inference pipeline);
    ``monai.engines`` evaluators output the prepared batch's plain tensors, so evaluation maps back to the size of a
    copy of the original label instead.

    Args:
        keys: the predictions.
        reference_key: the entry whose spatial shape is the original grid.
        image_size: the model's square input side.
        reverse_indexing: ``True`` for MONAI's axis order (x first), as loaded images are.
        reference_to: also write the reference under this key (e.g. ``"label"``, the evaluator's output label, so
            metrics compare on the original grid); ``None`` to leave it.
    """

    def __init__(
        self,
        keys: KeysCollection,
        reference_key: str,
        image_size: int,
        reverse_indexing: bool = True,
        reference_to: str | None = None,
    ) -> None:
        super().__init__(keys)
        self.reference_key = reference_key
        self.reference_to = reference_to
        self.image_size = int(image_size)
        self.reverse_indexing = reverse_indexing

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        from usgen_monai.transforms.prompts import LongestSideFrame, row_major_size

        d = dict(data)
        if self.reference_key not in d:
            raise KeyError(f"FromModelFramed: no {self.reference_key!r} among the keys {sorted(map(str, d))}.")
        frame = LongestSideFrame(
            row_major_size(d[self.reference_key].shape[1:], self.reverse_indexing), self.image_size
        )
        for key in self.key_iterator(d):
            pred = d[key].as_tensor() if isinstance(d[key], MetaTensor) else torch.as_tensor(d[key])
            out = frame.masks_to_original(pred.float(), mode="auto")
            d[key] = out.transpose(-1, -2) if self.reverse_indexing else out
        if self.reference_to is not None:
            d[self.reference_to] = d[self.reference_key]
        return d
