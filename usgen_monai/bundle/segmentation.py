"""The segmentation bundles (MGCC, and the SAM bundle's real pairs): data sets and their splits, unlabelled
items, weights, and metrics files."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "labeled_split",
    "load_initial_weights",
    "load_model_weights",
    "resolve_layout",
    "unlabeled_items",
    "write_metrics_json",
]


SPLIT_SUBSETS = ("training", "validation", "test")


def resolve_layout(path: str | os.PathLike | None, layout: str = "auto", default: str = "folder") -> str:
    """The data-set layout for :py:func:`usgen_monai.data.load_transforms`: ``layout`` itself unless ``"auto"``; else
    the layout detected at ``path`` (:py:func:`usgen_monai.data.detect_layout`), or ``default`` when ``path`` does
    not exist (MONAI Label passes its own items, so a bundle's default data path may be absent).

    Raises:
        DatasetLayoutError: ``path`` exists but its layout cannot be told.
    """
    if layout != "auto":
        return layout
    if not path or not Path(path).exists():
        return default
    from usgen_monai.data import detect_layout

    return detect_layout(path)


def _datalist_lists(path: Path) -> dict[str, list]:
    """The non-empty lists of a MONAI datalist JSON (a file, or a folder holding ``datalist.json``)."""
    file = path / "datalist.json" if path.is_dir() else path
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read MONAI datalist {file}: {e}") from None
    if not isinstance(data, dict):
        raise ValueError(f"MONAI datalist {file} holds a {type(data).__name__}, expected a JSON object.")
    return {k: v for k, v in data.items() if isinstance(v, list) and v}


def labeled_split(
    dataset_dir: str | os.PathLike,
    subset: str = "training",
    layout: str = "auto",
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
    num_items: int = 0,
    sample_seed: int | None = None,
) -> list[dict[str, Any]]:
    """The ``training``, ``validation`` or ``test`` items (or ``all``) of a labeled data set in any layout.

    A MONAI datalist that has a non-empty list of that name gives it as it is; otherwise the items (a datalist's
    ``training`` list, or every item of a BUSI, HC18 or folder-pair data set read by
    :py:func:`usgen_monai.data.load_dataset`) are split by :py:func:`usgen_monai.data.split_dataset` into
    ``fractions`` (training, validation, test) with ``seed``, so the three subsets never overlap.

    Args:
        dataset_dir: the data set: a folder in any layout, or a datalist JSON.
        subset: ``"training"``, ``"validation"``, ``"test"`` or ``"all"``.
        layout: the layout (``"auto"`` detects it).
        fractions: training, validation and test fractions of the split (summing to 1).
        seed: the split's seed (keep it fixed so the test subset stays the same across runs).
        num_items: keep this many items of the subset (0: all), e.g. few labeled images.
        sample_seed: the seed that draws the ``num_items``; ``None`` uses ``seed``.

    Raises:
        ValueError: an unknown subset, a data set that cannot be read (naming it), an empty subset, or items without
            a label.
    """
    import random

    from usgen_monai.data import load_dataset, load_json_datalist, split_dataset

    if subset not in (*SPLIT_SUBSETS, "all"):
        raise ValueError(f"subset must be one of {(*SPLIT_SUBSETS, 'all')}, got subset={subset!r}.")
    path = Path(dataset_dir)
    layout = resolve_layout(path, layout, default="missing")
    if layout == "missing":
        raise ValueError(f"labeled data set {path} does not exist (dataset_dir).")
    if layout == "monai":
        lists = _datalist_lists(path)
        if subset == "all":
            items = load_json_datalist(path, key=[k for k in SPLIT_SUBSETS if k in lists])
        elif subset in lists:
            items = load_json_datalist(path, key=subset)
        else:
            items = load_json_datalist(path, key="training")
    else:
        items = load_dataset(path, layout=layout)
    if subset != "all" and not (layout == "monai" and subset in lists):
        if len(fractions) != len(SPLIT_SUBSETS):
            raise ValueError(f"fractions must hold (training, validation, test) fractions, got {tuple(fractions)}.")
        items = list(split_dataset(items, fractions=fractions, seed=seed)[SPLIT_SUBSETS.index(subset)])
    num_items = int(num_items)
    if num_items and num_items < len(items):
        keep = sorted(random.Random(seed if sample_seed is None else sample_seed).sample(range(len(items)), num_items))
        items = [items[i] for i in keep]
    if not items:
        raise ValueError(
            f"the {subset} subset of {path} is empty (fractions {tuple(fractions)}); give more images or other "
            "fractions."
        )
    unlabeled = [i for i, item in enumerate(items) if "label" not in item]
    if unlabeled:
        raise ValueError(
            f"{len(unlabeled)} {subset} item(s) of {path} have no label, e.g. {items[unlabeled[0]].get('image')}."
        )
    return items


_UNLABELED_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".nii", ".nii.gz")


def unlabeled_items(
    sources: str | os.PathLike | Sequence[str | os.PathLike] | None,
    fallback: Sequence[Mapping[str, Any]] | None = None,
    datalist_key: str = "training",
    recursive: bool = False,
) -> list[dict[str, Any]]:
    """``{"image": path}`` items of the unlabeled images, from one source or a list of them.

    A source is a MONAI datalist (a JSON file, or a folder holding ``datalist.json``, e.g. the CSG bundle's output:
    its ``datalist_key`` images, labels dropped), a labeled data set in the BUSI, HC18 or folder-pair layout (its
    images), or a folder of 2D images (``.png``, ``.jpg``, ``.jpeg``, ``.bmp``, ``.nii``, ``.nii.gz``; DICOM is not
    read here). Without sources, the images of ``fallback`` (e.g. the labeled training items) are the unlabeled set,
    so the consistency term still regularises the model.

    Raises:
        ValueError: a source that is neither, a source without images, or no sources and no fallback.
    """
    from usgen_monai.data import DatasetLayoutError, detect_layout, load_dataset, load_json_datalist

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources] if os.fspath(sources) else []
    items: list[dict[str, Any]] = []
    for source in sources or []:
        path = Path(source)
        if path.is_file() and path.suffix.lower() == ".json" or (path / "datalist.json").is_file():
            found = [item["image"] for item in load_json_datalist(path, key=datalist_key)]
        elif path.is_dir():
            try:
                layout = detect_layout(path)
            except DatasetLayoutError:
                layout = None
            if layout is not None:
                found = [item["image"] for item in load_dataset(path, layout=layout)]
            else:
                files = path.rglob("*") if recursive else path.iterdir()
                found = sorted(
                    str(p.resolve())
                    for p in files
                    if p.is_file() and not p.name.startswith(".") and p.name.lower().endswith(_UNLABELED_SUFFIXES)
                )
        else:
            raise ValueError(f"unlabeled source {path} is neither a datalist JSON nor a folder of images.")
        if not found:
            raise ValueError(f"unlabeled source {path} holds no images (expected {', '.join(_UNLABELED_SUFFIXES)}).")
        items.extend({"image": image} for image in found)
    if items:
        return items
    if fallback is None:
        raise ValueError("no unlabeled sources given and no fallback items.")
    return [{"image": item["image"]} for item in fallback]


def load_model_weights(
    network: Any,
    path: str | os.PathLike,
    map_location: Any = "cpu",
    strict: bool = True,
    train_command: str = "",
) -> Any:
    """Load a MONAI model-zoo weights file (``models/model.pt``) into ``network`` and return it in eval mode.

    The file is read with ``torch.load(..., weights_only=True)`` (``map_location`` lets GPU-saved weights load on a
    CPU-only machine) and may hold a plain ``state_dict`` (MONAI's ``CheckpointSaver``,
    :py:class:`usgen_monai.engines.BestWeightsSaver`), ``{"model": state_dict}``, or a
    usgen-monai checkpoint with one network state.

    Args:
        network: the ``nn.Module`` (e.g. ``@network_def`` moved to ``@device``).
        path: the weights file.
        map_location: ``torch.load``'s map location.
        strict: ``nn.Module.load_state_dict``'s ``strict``.
        train_command: the command that trains the weights, quoted when the file is missing.

    Raises:
        FileNotFoundError: no file at ``path`` (the message names it and the training command).
        InvalidCheckpointError: the file is empty, truncated, corrupt or not a torch file (a ``ValueError``; see
            :py:func:`usgen_monai.engines.checkpoint.load_torch_file`).
        ValueError: the file holds no state dict (naming it).
    """
    from usgen_monai.engines.checkpoint import load_torch_file

    path = Path(path)
    if not path.is_file():
        hint = f" Train them first: {train_command}" if train_command else ""
        raise FileNotFoundError(f"model weights {path} not found: no trained weights are installed there.{hint}")
    state = load_torch_file(path, map_location=map_location)
    if isinstance(state, Mapping) and isinstance(state.get("state_dicts"), Mapping):
        if len(state["state_dicts"]) != 1:
            raise ValueError(f"{path} holds states {sorted(state['state_dicts'])}; expected one network.")
        state = next(iter(state["state_dicts"].values()))
    elif isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    if not isinstance(state, Mapping):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state_dict.")
    network.load_state_dict(state, strict=strict)
    return network.eval()


def load_initial_weights(network: Any, path: str | os.PathLike | None, map_location: Any = "cpu") -> Any:
    """Start a training from given weights (a model-zoo ``model.pt``, e.g. the shipped ones, to fine-tune on new
    labels) with :py:func:`load_model_weights`; an empty ``path`` (train from scratch) does nothing. A resumed run's
    checkpoint is restored afterwards and wins.

    Returns:
        ``network`` (left in training mode).
    """
    if not path:
        return network
    return load_model_weights(network, path, map_location=map_location).train()


def write_metrics_json(path: str | os.PathLike, metrics: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """Write ``{"metrics": metrics, **extra}`` as JSON (atomically) and return it, e.g. an evaluator's
    ``state.metrics`` with the data set and checkpoint it was measured on.

    Returns:
        the written dict (numbers as plain floats).
    """
    from usgen_monai.utils import json_safe, write_json_atomic

    data = json_safe({"metrics": {k: float(v) for k, v in metrics.items()}, **extra})
    write_json_atomic(path, data)
    return data
