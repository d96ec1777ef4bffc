"""Callables the bundle configs reference, so that the JSON wires objects and sets scalars and every branch, loop
or file parsing sits here, documented and tested.

Example (``bundles/csg/configs/inference.json``)::

    "bundle_version": {"_target_": "usgen_monai.bundle.read_bundle_version", "bundle_root": "@bundle_root"},
    "network": {
        "_target_": "usgen_monai.bundle.load_network_weights",
        "network": "$@network_def.to(@device, memory_format=torch.channels_last)",
        "path": "@model_path", "name": "translator", "map_location": "@device"
    }
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "checkpoint_constants",
    "class_weights",
    "latent_shape",
    "load_network_weights",
    "load_pretrained",
    "read_bundle_version",
    "labeled_split",
    "load_initial_weights",
    "load_model_weights",
    "load_sam_bundle_weights",
    "sam_eval_prompt",
    "sam_evaluation_metrics",
    "sam_for_training",
    "sam_learning_rate",
    "sam_train_parts",
    "synthetic_pairs",
    "synthetic_share",
    "with_pixel_spacing",
    "resolve_layout",
    "unlabeled_items",
    "write_metrics_json",
]


def read_bundle_version(bundle_root: str | os.PathLike) -> str:
    """The ``version`` of ``<bundle_root>/configs/metadata.json``.

    Raises:
        ValueError: the file is missing, not JSON, or has no version, naming it.
    """
    path = Path(bundle_root) / "configs" / "metadata.json"
    try:
        version = json.loads(path.read_text(encoding="utf-8"))["version"]
    except FileNotFoundError:
        raise ValueError(f"bundle metadata {path} does not exist; is bundle_root={str(bundle_root)!r} right?") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"bundle metadata {path} has no readable version ({type(e).__name__}: {e}).") from None
    return str(version)


def load_network_weights(
    network: Any, path: str | os.PathLike, name: str, map_location: Any = "cpu", strict: bool = True
) -> Any:
    """Load the state ``name`` of the checkpoint ``path`` into ``network`` (strictly by default) and return it in
    eval mode: the bundle's ``network`` id is then the network with its shipped weights, whatever uses it first.

    Args:
        network: the ``nn.Module`` (e.g. ``@network_def`` moved to ``@device``).
        path: the checkpoint (``models/model.pt``).
        name: the state's name in the checkpoint (``"translator"``, ``"autoencoder"``, ...).
        map_location: ``torch.load`` map location (GPU-saved checkpoints load on a CPU-only machine).
        strict: ``nn.Module.load_state_dict``'s ``strict``.

    Raises:
        FileNotFoundError, ValueError, KeyError: see :py:func:`usgen_monai.engines.load_checkpoint`.
    """
    from usgen_monai.engines.checkpoint import load_checkpoint

    load_checkpoint(path, {name: network}, map_location=map_location, strict=strict)
    return network.eval()


def checkpoint_constants(path: str | os.PathLike) -> dict[str, Any]:
    """The constants stored with a checkpoint (latent scale factor, schedule, class names, image size, ...)."""
    from usgen_monai.engines.checkpoint import read_checkpoint

    return dict(read_checkpoint(path)["constants"])


def load_pretrained(
    path: str | os.PathLike | None,
    networks: Mapping[str, Any],
    strict: bool = True,
    map_location: Any = "cpu",
    reset_semantic_branch: bool = False,
) -> dict[str, Any] | None:
    """Fine-tuning start: load ``networks`` from the checkpoint ``path`` when one is given; an empty ``path`` (train
    from scratch) does nothing.

    Args:
        path: the checkpoint, or ``""``/``None``.
        networks: ``{state name: network}``.
        strict: ``nn.Module.load_state_dict``'s ``strict``.
        map_location: ``torch.load`` map location.
        reset_semantic_branch: after loading, give each translator a new ControlNet initialised from its base
            (:py:meth:`usgen_monai.networks.ControlNetTranslator.reset_semantic_branch`): keep the pretrained base
            and context encoder, learn the mask branch from the new labelled data alone.

    Returns:
        the checkpoint's constants, or ``None`` without a path.

    Raises:
        ValueError: ``reset_semantic_branch`` for a network without a ControlNet branch.
    """
    if not path:
        return None
    from usgen_monai.engines.checkpoint import load_checkpoint

    from usgen_monai.utils import as_flag

    constants = load_checkpoint(path, dict(networks), map_location=map_location, strict=strict)
    if as_flag(reset_semantic_branch):
        for name, network in networks.items():
            if not hasattr(network, "reset_semantic_branch"):
                raise ValueError(
                    f"reset_semantic_branch: network {name!r} ({type(network).__name__}) has no ControlNet branch to "
                    "reset; use semantic_mode controlnet."
                )
            network.reset_semantic_branch()
    return constants


def class_weights(class_names: Sequence[str], weights: Mapping[str, float], default: float = 1.0) -> list[float]:
    """Per-class loss weights in the order of ``class_names``: ``weights[name]`` where given, else ``default``.

    Raises:
        ValueError: a weighted name that is not a class (a typo would silently weigh nothing).
    """
    unknown = sorted(set(weights) - set(class_names))
    if unknown:
        raise ValueError(f"class weights for {unknown}, which are not classes; classes are {list(class_names)}.")
    return [float(weights.get(name, default)) for name in class_names]


def latent_shape(image_size: Sequence[int], latent_channels: int, autoencoder_channels: Sequence[int]) -> list[int]:
    """``[latent_channels, H / f, W / f]`` of a MONAI ``AutoencoderKL`` with ``autoencoder_channels`` levels, which
    downsamples by ``f = 2 ** (levels - 1)``.

    Raises:
        ValueError: an image size that ``f`` does not divide.
    """
    factor = 2 ** (len(autoencoder_channels) - 1)
    size = [int(s) for s in image_size]
    if any(s % factor for s in size):
        raise ValueError(f"image_size {size} must be divisible by {factor}, the autoencoder's downsampling factor.")
    return [int(latent_channels)] + [s // factor for s in size]


# ---------------------------------------------------------------------------------------------------------------
# segmentation bundles (MGCC): data sets, weights, metrics


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


# ---------------------------------------------------------------------------------------------------------------
# the promptable SAM bundle: weights, fine-tuning settings, synthetic pairs


def load_sam_bundle_weights(
    network: Any,
    model_path: str | os.PathLike,
    checkpoint: str | os.PathLike | None = "",
    map_location: Any = "cpu",
    train_command: str = "",
) -> Any:
    """The SAM bundle's ``network``: ``network`` with the bundle's trained weights, or with a published checkpoint.

    With ``checkpoint`` (a local SAM ViT-B/L/H or MedSAM file saved as ``torch.save(model.state_dict())``, or a
    usgen-monai checkpoint; build ``network`` of the same architecture) that file is loaded; otherwise
    ``model_path`` (``models/model.pt``, written by the bundle's training). Loading is strict, with
    ``torch.load(weights_only=True)`` and ``map_location`` (see :py:func:`usgen_monai.networks.sam.load_sam_weights`:
    the error names missing and unexpected keys).

    Returns:
        ``network`` in eval mode.

    Raises:
        FileNotFoundError: no ``checkpoint`` given and no file at ``model_path`` (naming it and ``train_command``),
            or no file at ``checkpoint``.
        ValueError: a file that does not fit the network.
    """
    from usgen_monai.networks.sam import load_sam_weights

    if checkpoint:
        load_sam_weights(network, checkpoint, map_location=map_location)
        return network.eval()
    path = Path(model_path)
    if not path.is_file():
        hint = f" Train them first: {train_command}" if train_command else ""
        raise FileNotFoundError(
            f"model weights {path} not found: no trained weights are installed there.{hint} Or give a published "
            "checkpoint: --checkpoint <sam_vit_b.pth> --architecture vit_b."
        )
    load_sam_weights(network, path, map_location=map_location)
    return network.eval()


SAM_TRAIN_MODES = ("auto", "decoder", "full")


def sam_train_parts(train_mode: str = "auto", checkpoint: str | os.PathLike | None = "") -> str:
    """What SAM fine-tuning trains: ``"mask_decoder"`` (image and prompt encoders frozen, as arXiv 2506.23664) or
    ``"all"`` (full fine-tuning, and training from scratch).

    ``train_mode`` ``"decoder"`` and ``"full"`` say it; ``"auto"`` trains the decoder only when starting from a
    ``checkpoint`` (there are pretrained encoders to keep) and everything otherwise (a randomly initialised encoder
    that stays frozen learns nothing).

    Raises:
        ValueError: an unknown ``train_mode``.
    """
    if train_mode not in SAM_TRAIN_MODES:
        raise ValueError(f"train_mode must be one of {SAM_TRAIN_MODES}, got train_mode={train_mode!r}.")
    if train_mode == "auto":
        train_mode = "decoder" if checkpoint else "full"
    return "mask_decoder" if train_mode == "decoder" else "all"


def sam_learning_rate(
    learning_rate: float | str = "auto",
    checkpoint: str | os.PathLike | None = "",
    finetune_rate: float = 1e-5,
    scratch_rate: float = 2e-4,
) -> float:
    """The Adam learning rate of SAM training: ``learning_rate`` itself, or for ``"auto"`` the paper's
    ``finetune_rate`` (1e-5) when starting from a ``checkpoint`` and ``scratch_rate`` when training from scratch
    (1e-5 barely moves a randomly initialised network in the epochs a CPU affords)."""
    if learning_rate != "auto":
        return float(learning_rate)
    return float(finetune_rate if checkpoint else scratch_rate)


def synthetic_pairs(
    sources: str | os.PathLike | Sequence[str | os.PathLike] | None,
    datalist_key: str = "training",
    target_key: str = "target_labels",
) -> list[dict[str, Any]]:
    """The labelled synthetic pairs of CSG datalists (the CSG bundle's ``datalist.json``), for supervised training.

    CSG labels are label maps of the unified classes; the datalist's ``target_labels`` names, per preset, the classes
    that form the task's binary mask (``fetal_head``: skull and brain; ``breast``: lesion). Each item gets
    ``target_key``: the target classes of its ``context["preset"]``
    (:py:class:`usgen_monai.engines.sam_training.TargetMaskd` then makes the mask). A datalist without
    ``target_labels`` holds binary masks already: its items get ``[1]`` (0/1) and 255 (0/255 PNG masks).

    Args:
        sources: a datalist JSON (or its folder), a list of them, or none (``[]``: no synthetic pairs).
        datalist_key: the list to read.
        target_key: the item key of the target classes.

    Raises:
        ValueError: a source that is unreadable, or whose items' preset has no entry in its ``target_labels``.
    """
    from usgen_monai.data import load_json_datalist

    if isinstance(sources, (str, os.PathLike)):
        sources = [sources] if os.fspath(sources) else []
    items: list[dict[str, Any]] = []
    for source in sources or []:
        path = Path(source)
        file = path / "datalist.json" if path.is_dir() else path
        try:
            targets = json.loads(file.read_text(encoding="utf-8")).get("target_labels")
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"cannot read synthetic pairs {file}: {e}") from None
        for item in load_json_datalist(file, key=datalist_key):
            if "label" not in item:
                raise ValueError(f"synthetic pairs {file}: item {item.get('image')} has no label.")
            if targets is None:
                values = [1, 255]
            else:
                preset = (item.get("context") or {}).get("preset")
                if preset not in targets:
                    raise ValueError(
                        f"synthetic pairs {file}: item {item.get('image')} of preset {preset!r} has no entry in the "
                        f"datalist's target_labels {sorted(targets)}."
                    )
                values = [int(v) for v in targets[preset]]
            items.append({"image": item["image"], "label": item["label"], target_key: values})
    return items


def synthetic_share(synthetic_fraction: float, num_synthetic: int) -> float:
    """The synthetic share of a training epoch: ``synthetic_fraction``, or 0 without synthetic pairs (real-only
    training needs no other setting)."""
    return float(synthetic_fraction) if int(num_synthetic) > 0 else 0.0


def with_pixel_spacing(
    items: Sequence[Mapping[str, Any]], key: str = "pixel_spacing_mm", default: Sequence[float] | None = None
) -> list[dict[str, Any]]:
    """Items with their (row, column) pixel spacing in mm under ``key``, for measurements in mm (head circumference).

    The spacing comes from the item's own ``key``, else its ``context["pixel_spacing_mm"]`` (the simulator's
    datalists), else ``default``.

    Raises:
        ValueError: an item without a spacing and no ``default`` (naming the item).
    """
    out = []
    for item in items:
        spacing = item.get(key) or (item.get("context") or {}).get("pixel_spacing_mm") or default
        if spacing is None or len(spacing) != 2:
            raise ValueError(
                f"{item.get('image')}: no pixel spacing (neither {key!r} nor context['pixel_spacing_mm']); give "
                "pixel_spacing_mm [row, column] in mm to measure head circumference in mm."
            )
        out.append({**item, key: [float(spacing[0]), float(spacing[1])]})
    return out


def sam_for_training(network: Any, train_parts: str = "all", checkpoint: str | os.PathLike | None = "") -> Any:
    """The SAM network to train: loaded from a published ``checkpoint`` when one is given, and with only
    ``train_parts`` trainable (:py:func:`usgen_monai.engines.sam_training.set_trainable`; see
    :py:func:`sam_train_parts`). The optimizer takes the parameters that require gradients.

    Returns:
        ``network`` in training mode.
    """
    from usgen_monai.engines.sam_training import set_trainable
    from usgen_monai.networks.sam import load_sam_weights

    if checkpoint:
        load_sam_weights(network, checkpoint)
    set_trainable(network, train_parts)
    return network.train()


SAM_EVAL_PROMPTS = ("box", "click")


def sam_eval_prompt(eval_prompt: str = "box", box_margin: int = 10, label_key: str = "label") -> Any:
    """The prompt SAM validation and evaluation give each image, simulated from its mask deterministically:
    ``"box"``: the mask's bounding box widened by ``box_margin`` px per side (the whole image for an empty mask);
    ``"click"``: one foreground click at the mask's most interior pixel (a background click at the image centre for
    an empty mask), :py:class:`usgen_monai.transforms.prompts.PointFromMaskd`.

    Raises:
        ValueError: an unknown ``eval_prompt``.
    """
    from usgen_monai.transforms.prompts import BoxFromMaskd, PointFromMaskd

    if eval_prompt not in SAM_EVAL_PROMPTS:
        raise ValueError(f"eval_prompt must be one of {SAM_EVAL_PROMPTS}, got eval_prompt={eval_prompt!r}.")
    if eval_prompt == "click":
        return PointFromMaskd(label_key, empty="background")
    return BoxFromMaskd(label_key, margin=box_margin, empty="image")


def sam_evaluation_metrics(head_circumference: bool | str = False, label_key: str = "label") -> dict[str, Any]:
    """The SAM bundle's evaluation metrics besides Dice: IoU, and with ``head_circumference`` (fetal heads) the mean
    absolute head-circumference error in mm as HC18 scores it
    (:py:class:`usgen_monai.engines.sam_evaluation.HeadCircumferenceError`), all against ``label_key``."""
    from monai.handlers import MeanIoUHandler, from_engine

    from usgen_monai.engines.sam_evaluation import HeadCircumferenceError
    from usgen_monai.utils import as_flag

    metrics: dict[str, Any] = {
        "test_mean_iou": MeanIoUHandler(include_background=True, output_transform=from_engine(["pred", label_key]))
    }
    if as_flag(head_circumference):  # "--head_circumference false" arrives as a string
        metrics["test_hc_abs_error_mm"] = HeadCircumferenceError(label_key=label_key)
        metrics["test_hc_rel_error"] = HeadCircumferenceError(label_key=label_key, statistic="rel_error")
    return metrics
