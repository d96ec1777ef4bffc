"""Deterministic train/validation/test splits of a MONAI datalist: :py:func:`split_dataset`.

A split depends only on the seed and on the items' names relative to the data set, not on the order the file system
lists them, and keeps grouped items together (the images of one HC18 subject share ``"group"``; the several masks of
a BUSI image, or the class masks of an image of the ``unext`` layout, are in one item already). Used on the items of
:py:func:`usgen_monai.data.datasets.load_dataset`, which re-exports it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import PurePath
from typing import Any

__all__ = ["split_dataset"]


def _first_path(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return _first_path(value[0]) if value else ""
    return str(value)


def split_dataset(
    items: Sequence[dict[str, Any]],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    group_key: str | None = "group",
) -> tuple[list[dict[str, Any]], ...]:
    """Deterministic train/validation/test split of a datalist, by seed.

    Items that share ``item[group_key]`` form one group and land in one split; an item without that key is its own
    group, named by its ``image`` path relative to the folder common to all such items (so the split survives
    moving the data set). Groups are ordered by a SHA-256 hash of the seed and the group name, which depends
    neither on the order of ``items`` (file-system listing order) nor on the other items; adding images to a data
    set moves few existing ones between splits. The ordered groups are then cut where the running item count
    reaches ``round(len(items) * cumsum(fractions))``.

    Args:
        items: datalist items, each with ``image``.
        fractions: non-negative fractions summing to 1, one per split.
        seed: non-negative integer.
        group_key: item key naming the group (``None``: every item on its own).

    Returns:
        one list per fraction; each keeps the input order of its items.

    Raises:
        ValueError: bad fractions or seed, or an item without ``image`` and without a group.
    """
    fractions = tuple(float(f) for f in fractions)
    if not fractions or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(f"fractions must be non-negative and sum to 1, got fractions={fractions}.")
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got seed={seed!r}.")
    names: list[str | None] = []
    paths: dict[int, str] = {}
    for index, item in enumerate(items):
        if group_key is not None and item.get(group_key) is not None:
            names.append(f"group:{item[group_key]}")
        elif "image" in item:
            names.append(None)
            paths[index] = os.path.abspath(_first_path(item["image"]))
        else:
            raise ValueError(f"item {index} has neither 'image' nor '{group_key}': {item}.")
    if paths:
        common = os.path.commonpath(list(paths.values())) if len(paths) > 1 else os.path.dirname(*paths.values())
        for index, path in paths.items():
            names[index] = "path:" + PurePath(os.path.relpath(path, common)).as_posix()
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(names):
        groups.setdefault(str(name), []).append(index)
    order = sorted(groups, key=lambda g: hashlib.sha256(f"{int(seed)}\0{g}".encode()).hexdigest())
    total = len(items)
    bounds, running = [], 0.0
    for f in fractions:
        running += f
        bounds.append(round(total * running))
    bounds[-1] = total
    splits: list[list[int]] = [[] for _ in fractions]
    position = 0
    for name in order:
        part = next((k for k, b in enumerate(bounds) if position < b), len(bounds) - 1)
        splits[part].extend(groups[name])
        position += len(groups[name])
    return tuple([items[i] for i in sorted(split)] for split in splits)
