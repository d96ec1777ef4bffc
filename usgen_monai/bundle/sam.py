"""The promptable SAM bundle: weights, fine-tuning settings (trained parts, learning rate), synthetic pairs,
evaluation prompts and metrics."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "load_sam_bundle_weights",
    "sam_eval_prompt",
    "sam_evaluation_metrics",
    "sam_for_training",
    "sam_learning_rate",
    "sam_train_parts",
    "synthetic_pairs",
    "synthetic_share",
    "with_pixel_spacing",
]


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
