"""Training data of the CSG generator: the built-in simulator, or a user's labelled data set (BUSI, HC18, UNeXt
layout, folder pairs, a MONAI datalist) with its masks mapped to the unified label classes."""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import ConcatDataset, Dataset

from usgen_monai.data.context_fields import CATEGORICAL_CONTEXT_FIELDS, GENERATOR_CONTEXT_FIELDS

__all__ = [
    "SIMULATOR",
    "SUBSETS",
    "BINARY_MASK_CLASSES",
    "UserGeneratorDataset",
    "generator_training_dataset",
]

logger = logging.getLogger(__name__)

SIMULATOR = "simulator"
# the unified class a binary mask's foreground stands for, per preset
BINARY_MASK_CLASSES = {"breast": "lesion", "fetal_head": "brain", "msk": "tendon"}


def _flat_context(context: Mapping[str, Any], fields: Sequence[str]) -> dict[str, Any]:
    """Every field present, with one type per field so MONAI's collate can batch it: categorical values as strings
    (``""`` = unknown), scalars as floats (NaN = unknown)."""
    out: dict[str, Any] = {}
    for field in fields:
        value = context.get(field)
        if field in CATEGORICAL_CONTEXT_FIELDS:
            out[field] = "" if value is None else str(value)
        else:
            try:
                out[field] = float(value) if value is not None else math.nan
            except (TypeError, ValueError):
                out[field] = math.nan
    return out


class UserGeneratorDataset(Dataset):
    """A user's labelled ultrasound images as CSG generator training items, in the format of the simulator's
    (:py:class:`usgen_monai.data.simulator.SimulatedUltrasoundDataset` with ``unified_labels=True``):
    ``{"image": (1, H, W) float32 in [0, 1], "label": (1, H, W) uint8 0/1 target, "label_map": (1, H, W) uint8
    unified classes, "context": dict[, "context_image": (1, H, W)]}``.

    The data set is read by :py:func:`usgen_monai.data.datasets.load_dataset` (layout ``busi``, ``hc18``,
    ``unext``, ``folder`` or ``monai``; detected by default). Images are read as grey in ``[0, 1]`` and resized to
    ``size`` exactly as inference reads context images (:py:func:`usgen_monai.data.image_files.read_grey_image`);
    masks are read as inference reads the user's masks (:py:func:`usgen_monai.data.image_files.read_label_values`):

    * binary masks (0/1 or 0/255; BUSI's several masks of one image, and the class masks of a ``unext`` image,
      merged by OR; HC18 outlines filled) become
      ``mask_class`` (default :py:data:`BINARY_MASK_CLASSES` of the preset: lesion, brain, tendon) on background 0,
      which for a user's data set means "not annotated";
    * label maps (other integer values) are taken as indices of the unified classes.

    The context of an item is ``preset``, the finding (``finding`` when given, else a BUSI class folder or a
    datalist item's ``context["finding"]`` when it is a finding of the preset) and whatever acquisition fields a
    datalist item's ``context`` holds; unknown fields reach the translator as its learned "unknown" embedding. With
    ``with_context_image`` each item is paired with another image of the data set (drawn per index from ``seed``),
    so the context image carries the data set's appearance, not the item's anatomy.

    Every file is read once, at construction (the items are small at generator resolution). A file that cannot be
    used is logged with the reason and skipped; :py:attr:`skipped` lists ``(file, reason)`` and a summary line says
    how many were skipped.

    Args:
        dataset_dir: the data set folder (or datalist JSON file).
        preset: the simulator preset the data set corresponds to (``breast``, ``fetal_head``, ``msk``); it is part of
            the context and chooses the default ``mask_class``.
        size: ``(H, W)`` of the items.
        layout: ``"auto"`` or a layout of :py:data:`usgen_monai.data.datasets.READ_LAYOUTS`.
        finding: the finding of every item; ``""`` infers it per item where the data set says.
        mask_class: the unified class of a binary mask's foreground; ``""`` = the preset's default.
        seed: seeds the choice of context images.
        with_context_image: add ``"context_image"``.
        context_fields: flat context fields kept (what the context vocabulary encodes).
        transform: MONAI transform applied to each item.
        class_names: the unified label classes.
        subset: ``"all"`` items, or the ``"training"`` or ``"validation"`` part of a split by
            :py:func:`usgen_monai.data.datasets.split_dataset` with seed 0 (stable across runs and file listings;
            images of one subject stay together).
        validation_fraction: the validation part of that split.

    Raises:
        ValueError: unknown preset, finding, mask class or subset; no usable item (the message lists why files were
            skipped).
        usgen_monai.data.datasets.DatasetLayoutError: the folder is not a data set of a known layout.
    """

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        preset: str,
        size: Sequence[int] = (128, 128),
        layout: str = "auto",
        finding: str | None = "",
        mask_class: str | None = "",
        seed: int = 0,
        with_context_image: bool = False,
        context_fields: Sequence[str] = GENERATOR_CONTEXT_FIELDS,
        transform: Callable | None = None,
        class_names: Sequence[str] | None = None,
        subset: str = "all",
        validation_fraction: float = 0.1,
    ) -> None:
        from usgen_monai.data.datasets import detect_layout, load_dataset, split_dataset
        from usgen_monai.data.simulator import PRESET_FINDINGS, UNIFIED_CLASSES

        _check_subset(subset, validation_fraction)
        if preset not in PRESET_FINDINGS:
            raise ValueError(f"unknown preset {preset!r} for {dataset_dir}; expected one of {list(PRESET_FINDINGS)}.")
        if finding and finding not in PRESET_FINDINGS[preset]:
            raise ValueError(f"finding {finding!r} is not a finding of preset {preset!r}: {PRESET_FINDINGS[preset]}.")
        self.class_names = tuple(class_names) if class_names is not None else tuple(UNIFIED_CLASSES)
        mask_class = mask_class or BINARY_MASK_CLASSES[preset]
        if mask_class not in self.class_names:
            raise ValueError(f"mask_class {mask_class!r} is not a label class; classes are {list(self.class_names)}.")
        self.dataset_dir = Path(dataset_dir)
        self.layout = detect_layout(dataset_dir) if layout == "auto" else layout
        self.preset = preset
        self.findings = tuple(PRESET_FINDINGS[preset])
        self.finding = finding or None
        self.mask_class = mask_class
        self.size = tuple(int(s) for s in size)
        self.seed = int(seed)
        self.with_context_image = with_context_image
        self.context_fields = tuple(context_fields)
        self.transform = transform
        self.records: list[dict[str, Any]] = []
        self.skipped: list[tuple[str, str]] = []
        # sizes are checked per item below, so that one bad file skips its item instead of failing the data set
        items = load_dataset(
            dataset_dir, layout=self.layout, **({} if self.layout == "monai" else {"check_sizes": False})
        )
        if subset != "all":
            training, validation = split_dataset(items, (1.0 - validation_fraction, validation_fraction), seed=0)
            items = training if subset == "training" else validation
        self.subset = subset
        for item in _progress(items, f"reading {self.dataset_dir}"):
            image_path = str(item.get("image", ""))
            try:
                if "label" not in item:
                    raise ValueError(f"{image_path}: the item has no label.")
                self.records.append(self._read(item))
            except ValueError as e:
                reason = str(e)
                logger.warning(f"skipping {image_path}: {reason}")
                self.skipped.append((image_path, reason))
        if not self.records:
            raise ValueError(
                f"no usable item in {self.dataset_dir}: {len(self.skipped)} skipped "
                f"({'; '.join(r for _, r in self.skipped[:5]) or 'the data set is empty'})."
            )
        if self.skipped:
            logger.warning(f"{self.dataset_dir}: {len(self.records)} items read, {len(self.skipped)} skipped.")

    def _label(self, label: Any) -> np.ndarray:
        from usgen_monai.data.image_files import read_label_values

        paths = list(label) if isinstance(label, (list, tuple)) else [label]
        merged, rule = None, "binary"
        for path in paths:
            values, rule = read_label_values(path, len(self.class_names))
            if len(paths) > 1 and rule != "binary":
                raise ValueError(f"{path}: one of several masks of an image holds class values, not a binary mask.")
            if merged is not None and values.shape != merged.shape:
                raise ValueError(f"{path}: mask of shape {values.shape}, its sibling masks are {merged.shape}.")
            merged = values if merged is None else np.maximum(merged, values)
        if rule == "binary":
            if self.layout == "hc18":
                from usgen_monai.transforms.masks import FillOutline

                merged = FillOutline()(merged[None])[0]
            merged = np.where(merged > 0, self.class_names.index(self.mask_class), 0)
        return merged

    def _read(self, item: Mapping[str, Any]) -> dict[str, Any]:
        from usgen_monai.data.datasets import check_item_sizes
        from usgen_monai.data.image_files import read_grey_image, resize_label_map

        check_item_sizes(item["image"], item["label"])
        image = read_grey_image(item["image"], self.size).numpy()
        label_map = resize_label_map(torch.as_tensor(self._label(item["label"])), self.size).numpy().astype(np.uint8)
        context = dict(item.get("context") or {})
        finding = self.finding or context.get("finding") or item.get("class")
        context.update(preset=self.preset, finding=finding if finding in self.findings else None)
        return {
            "image": image.astype(np.float32),
            "label": (label_map > 0).astype(np.uint8)[None],
            "label_map": label_map[None],
            "context": _flat_context(context, self.context_fields),
            "image_path": str(item["image"]),
        }

    def __len__(self) -> int:
        return len(self.records)

    def context_index(self, index: int) -> int:
        """The item whose image is item ``index``'s context image (another item when there are two or more)."""
        n = len(self.records)
        if n == 1:
            return 0
        from usgen_monai.data.simulator import sample_seed

        k = int(np.random.default_rng(sample_seed(self.seed, index)).integers(n - 1))
        return k if k < index else k + 1

    def __getitem__(self, index: int) -> dict[str, Any]:
        record = self.records[index]
        item = {
            k: (v.copy() if isinstance(v, np.ndarray) else dict(v) if isinstance(v, dict) else v)
            for k, v in record.items()
        }
        if self.with_context_image:
            item["context_image"] = self.records[self.context_index(index)]["image"].copy()
        if self.transform is not None:
            from monai.transforms import apply_transform

            item = apply_transform(self.transform, item)
        return item


SUBSETS = ("all", "training", "validation")


def _check_subset(subset: str, validation_fraction: float) -> None:
    if subset not in SUBSETS:
        raise ValueError(f"subset must be one of {list(SUBSETS)}, got subset={subset!r}.")
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be in (0, 1), got validation_fraction={validation_fraction}.")


def _progress(items: Sequence[Any], description: str):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm comes with MONAI's usual installs; without it, no bar
        return items
    return tqdm(items, desc=description, leave=False, disable=len(items) < 50)


def generator_training_dataset(
    dataset_dir: str = SIMULATOR,
    presets: Sequence[str] = ("breast", "fetal_head", "msk"),
    num_samples_per_preset: int = 1000,
    size: Sequence[int] = (128, 128),
    seed: int = 0,
    with_context_image: bool = False,
    context_fields: Sequence[str] = GENERATOR_CONTEXT_FIELDS,
    transform: Callable | None = None,
    layout: str = "auto",
    finding: str | None = "",
    mask_class: str | None = "",
    subset: str = "all",
    validation_fraction: float = 0.1,
):
    """Items ``{"image", "label", "label_map" (unified classes), "context", ["context_image"]}`` for training.

    Args:
        dataset_dir: ``"simulator"`` for the built-in simulator (one dataset per preset, concatenated), or the folder
            of a user's data set (a :py:class:`UserGeneratorDataset`, which reads every item once).
        presets: simulator presets to draw from; for a user's data set, the one preset it corresponds to.
        num_samples_per_preset: images per preset (an epoch) from the simulator; a user's data set gives all items.
        size: (H, W).
        seed: data-set seed (preset ``k`` uses ``seed + k`` so presets don't share anatomy seeds).
        with_context_image: add a context image per item (simulator: same acquisition, other anatomy; user data
            set: another image of the data set).
        context_fields: flat context fields kept (what the context vocabulary encodes).
        transform: MONAI transform applied to each item.
        layout, finding, mask_class: for a user's data set, see :py:class:`UserGeneratorDataset`.
        subset: ``"all"``, ``"training"`` or ``"validation"``. The simulator's validation images use seeds
            ``seed + 1000 + k`` (never those of training); a user's data set is split as
            :py:class:`UserGeneratorDataset` says.
        validation_fraction: a user's data set's validation part.

    Raises:
        ValueError: a user's data set with other than one preset, or any error of :py:class:`UserGeneratorDataset`.
    """
    if str(dataset_dir) != SIMULATOR:
        presets = [presets] if isinstance(presets, str) else list(presets)
        if len(presets) != 1:
            raise ValueError(
                f"dataset_dir={str(dataset_dir)!r}: a user's data set corresponds to one preset, "
                f"got presets={presets}; set presets to the one it is (e.g. --presets \"['breast']\" for BUSI)."
            )
        return UserGeneratorDataset(
            dataset_dir,
            preset=presets[0],
            size=size,
            layout=layout,
            finding=finding,
            mask_class=mask_class,
            seed=seed,
            with_context_image=with_context_image,
            context_fields=context_fields,
            transform=transform,
            subset=subset,
            validation_fraction=validation_fraction,
        )
    from usgen_monai.data.simulator import SimulatedUltrasoundDataset

    _check_subset(subset, validation_fraction)
    offset = 1000 if subset == "validation" else 0

    return ConcatDataset(
        [
            SimulatedUltrasoundDataset(
                preset=preset,
                num_samples=num_samples_per_preset,
                size=tuple(size),
                seed=seed + offset + k,
                unified_labels=True,
                context_fields=context_fields,
                with_context_image=with_context_image,
                transform=transform,
            )
            for k, preset in enumerate(presets)
        ]
    )
