"""The arms of a study, each a training through a bundle's own configs followed by its evaluation on the held-out test
set, and the per-cell generator (CSG) whose synthetic images the ``mgcc_csg`` arm learns from.

MGCC bundle arms (``bundles/mgcc/configs``), all with the same labelled pairs, iterations and validation:

* ``unet``: a plain MONAI ``UNet``, supervised (``unet_baseline.json`` over ``train.json``);
* ``supervised``: MGCCNet without the consistency term (``--consistency_max_weight 0``);
* ``strong_augmentation``: as ``supervised`` with the strong augmentation of ``strong_augmentation.json``, what
  synthetic data must beat;
* ``mgcc_real``: MGCC with the real unlabelled pool;
* ``mgcc_csg``: MGCC with the synthetic images of the cell's generator as the unlabelled set.

SAM bundle arms (``bundles/sam/configs``), box prompts at evaluation (Dice; head-circumference error for
``fetal_head``), the same number of batches of 4:

* ``sam_real``: the small SAM configuration fine-tuned on the cell's real pairs;
* ``sam_csg``: the same with the cell generator's synthetic pairs as ``sam_synthetic_fraction`` of each batch
  (half by default).

The generator of a cell (``csg``) keeps the CSG bundle's shipped autoencoder, base denoiser and speckle refiner (they
model images, not masks) and learns the mask branch from the cell's labelled pairs alone: a new ControlNet
(``--reset_semantic_branch true``) fine-tuned with the base frozen; its masks are the cell's own masks and its
context bank the cell's own images. That the shipped image models saw simulator images is recorded in the report.
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usgen_monai.study.protocol import (
    AnatomyData,
    StudySettings,
    labeled_subset,
    write_cell_datalist,
    write_masks_folder,
)
from usgen_monai.study.runner import Cell, run_bundle, run_cell
from usgen_monai.utils import write_json_atomic

__all__ = ["ARMS", "GENERATOR_ARM", "StudyContext", "default_bundles_dir", "run_arm", "run_generator", "run_quality"]

GENERATOR_ARM = "csg"
LABELED_BATCH_SIZE = 4
SAM_ITERATIONS_PER_EPOCH = 10
GENERATOR_BATCH_SIZE = 8


def default_bundles_dir() -> Path:
    """The repository's ``bundles/`` folder (next to the ``usgen_monai`` package of an editable install)."""
    import usgen_monai

    return Path(usgen_monai.__file__).resolve().parents[1] / "bundles"


@dataclass
class StudyContext:
    """What every arm needs: the study's folder, settings, data split and where the bundles are."""

    out: Path
    settings: StudySettings
    data: Mapping[str, AnatomyData]
    bundles_dir: Path

    def config(self, bundle: str, name: str) -> Path:
        path = self.bundles_dir / bundle / "configs" / name
        if not path.is_file():
            raise FileNotFoundError(f"bundle config {path} not found (--bundles-dir {self.bundles_dir}).")
        return path

    def common_overrides(self) -> dict[str, Any]:
        return {"device": f"$torch.device({self.settings.device!r})"} if self.settings.device else {}


def _epochs(iterations: int, items: int, batch_size: int) -> int:
    return max(1, math.ceil(iterations / max(1, math.ceil(items / batch_size))))


def _run_training(
    context: StudyContext, bundle: str, config_files: list[Path], overrides: dict[str, Any], log: Path
) -> float:
    """A segmenter's training run; with ``nproc_per_node > 1`` under ``torchrun`` with the bundle's own
    ``multi_gpu_train.json`` (which picks each rank's device itself)."""
    settings = context.settings
    if settings.nproc_per_node > 1:
        config_files = [*config_files, context.config(bundle, "multi_gpu_train.json")]
        overrides = {k: v for k, v in overrides.items() if k != "device"}
    return run_bundle(
        config_files, overrides, log, settings.num_threads, in_process=settings.in_process,
        nproc_per_node=settings.nproc_per_node,
    )


def _optimizer_override(settings: StudySettings) -> dict[str, Any]:
    """The MGCC bundle arms' optimizer: the bundle's SGD, or Adam (``--train#optimizer``, as its docs show)."""
    if settings.segmenter_optimizer == "sgd":
        return {}
    if settings.segmenter_optimizer != "adam":
        raise ValueError(f"segmenter_optimizer must be 'adam' or 'sgd', got {settings.segmenter_optimizer!r}.")
    adam = {"_target_": "torch.optim.Adam", "params": "$@network.parameters()",
            "lr": settings.segmenter_learning_rate, "weight_decay": 1e-4}  # fmt: skip
    return {"train#optimizer": adam}


def _read_metrics(path: Path) -> dict[str, float]:
    metrics = json.loads(path.read_text(encoding="utf-8"))["metrics"]
    return {k: float(v) for k, v in metrics.items()}


def run_generator(context: StudyContext, anatomy: str, num_labeled: int, seed: int) -> dict[str, Any]:
    """Train the cell's generator on its labelled pairs and write ``num_synthetic`` pairs (kept across runs)."""
    cell = Cell(anatomy, num_labeled, seed, GENERATOR_ARM)
    settings = context.settings

    def compute(folder: Path) -> dict[str, Any]:
        labeled = labeled_subset(context.data[anatomy], num_labeled, seed)
        datalist = folder / "labeled.json"
        write_json_atomic(datalist, {"training": labeled})
        masks = write_masks_folder(folder / "masks", labeled)
        images = folder / "images"
        images.mkdir(exist_ok=True)
        for k, item in enumerate(labeled):
            source = Path(item["image"])
            target = images / f"{k:04d}_{source.name}"
            if not target.exists():
                shutil.copyfile(source, target)
        csg = context.bundles_dir / "csg"
        common = context.config("csg", "common.json")
        generator_epochs = _epochs(settings.generator_iterations, num_labeled, GENERATOR_BATCH_SIZE)
        train_seconds = run_bundle(
            [common, context.config("csg", "train_diffusion.json")],
            {
                **context.common_overrides(),
                "bundle_root": str(csg),
                "dataset_dir": str(datalist),
                "presets": [anatomy],
                "image_size": [settings.generator_image_size] * 2,
                # model selection on the cell's own pairs, as for the segmenters
                "train#dataset#subset": "all",
                "validate#dataset#subset": "all",
                "pretrained_path": str(csg / "models" / "model.pt"),
                "reset_semantic_branch": True,
                "train#optimizer#params": "$@network.freeze_base()",
                "ckpt_dir": str(folder / "models"),
                "autoencoder_path": str(csg / "models" / "autoencoder.pt"),
                "output_dir": str(folder / "runs"),
                "max_epochs": generator_epochs,
                "val_interval": max(1, generator_epochs // 5),
                "seed": seed,
            },
            folder / "train.log",
            settings.num_threads,
            in_process=settings.in_process,
        )
        generated = folder / "generated"
        generate_seconds = run_bundle(
            [common, context.config("csg", "inference.json")],
            {
                **context.common_overrides(),
                "bundle_root": str(csg),
                "model_path": str(folder / "models" / "model.pt"),
                "autoencoder_path": str(csg / "models" / "autoencoder.pt"),
                "masks": str(masks),
                "mask_anatomy": "none",
                "preset": anatomy,
                "dataset_dir": str(images),
                "num_samples": settings.num_synthetic,
                "output_dir": str(generated),
                "progress": False,
                "seed": 1000 + seed,
            },
            folder / "generate.log",
            settings.num_threads,
            in_process=settings.in_process,
        )
        return {
            "datalist": str(generated / "datalist.json"),
            "labeled": str(datalist),
            "num_synthetic": settings.num_synthetic,
            "image_size": settings.generator_image_size,
            "trained_on": f"{num_labeled} labelled pairs (seed {seed}); shipped autoencoder, base denoiser, refiner",
            "train_seconds": round(train_seconds, 1),
            "generate_seconds": round(generate_seconds, 1),
        }

    return run_cell(cell, context.out, compute)


def _mgcc_arm(overlays: tuple[str, ...], overrides: Callable[[StudyContext, Cell], dict[str, Any]]):
    def run(context: StudyContext, cell: Cell, folder: Path) -> dict[str, Any]:
        settings = context.settings
        data = context.data[cell.anatomy]
        labeled = labeled_subset(data, cell.num_labeled, cell.seed)
        datalist = write_cell_datalist(folder / "datalist.json", labeled, data.test)
        mgcc = context.bundles_dir / "mgcc"
        train = context.config("mgcc", "train.json")
        overlay_files = [context.config("mgcc", name) for name in overlays]
        epochs = _epochs(settings.segmenter_iterations, cell.num_labeled, LABELED_BATCH_SIZE)
        shared = {
            **context.common_overrides(),
            "bundle_root": str(mgcc),
            "dataset_dir": str(datalist),
            "image_size": [settings.image_size, settings.image_size],
            "model_path": str(folder / "model.pt"),
        }
        train_seconds = _run_training(
            context,
            "mgcc",
            [train, *overlay_files],
            {
                **shared,
                "ckpt_dir": str(folder),
                "output_dir": str(folder / "runs"),
                "max_epochs": epochs,
                "val_interval": max(1, epochs // 10),
                "checkpoint_interval": max(1, epochs // 10),
                "seed": cell.seed,
                **_optimizer_override(settings),
                # lateral flips only: depth is not symmetric in ultrasound (shadows fall below what casts them)
                "vertical_flip_prob": 0.0,
                "rotate90_prob": 0.0,
                **overrides(context, cell),
            },
            folder / "train.log",
        )
        run_bundle(
            [train, *overlay_files, context.config("mgcc", "evaluate.json")],
            {
                **shared,
                "test_dataset_dir": str(datalist),
                "test_subset": "test",
                "metrics_path": str(folder / "metrics.json"),
            },
            folder / "evaluate.log",
            settings.num_threads,
            in_process=settings.in_process,
        )
        metrics = _read_metrics(folder / "metrics.json")
        return {
            "dice": metrics["test_mean_dice"],
            "iou": metrics.get("test_mean_iou"),
            "iterations": epochs * math.ceil(cell.num_labeled / LABELED_BATCH_SIZE),
            "train_seconds": round(train_seconds, 1),
        }

    return run


def _supervised(context: StudyContext, cell: Cell) -> dict[str, Any]:
    return {"consistency_max_weight": 0.0}


def _real_unlabeled(context: StudyContext, cell: Cell) -> dict[str, Any]:
    folder = cell.folder(context.out)
    pool = folder / "unlabeled.json"
    write_json_atomic(pool, {"training": [{"image": i["image"]} for i in context.data[cell.anatomy].unlabeled_pool]})
    return {"unlabeled": [str(pool)]}


def _synthetic_unlabeled(context: StudyContext, cell: Cell) -> dict[str, Any]:
    generator = run_generator(context, cell.anatomy, cell.num_labeled, cell.seed)
    if "error" in generator:
        raise RuntimeError(f"the cell's generator failed: {generator['error']}")
    return {"unlabeled": [generator["datalist"]]}


def _sam_arm(with_synthetic: bool):
    def run(context: StudyContext, cell: Cell, folder: Path) -> dict[str, Any]:
        settings = context.settings
        data = context.data[cell.anatomy]
        labeled = labeled_subset(data, cell.num_labeled, cell.seed)
        datalist = write_cell_datalist(folder / "datalist.json", labeled, data.test)
        sam = context.bundles_dir / "sam"
        train = context.config("sam", "train.json")
        synthetic: list[str] = []
        if with_synthetic:
            generator = run_generator(context, cell.anatomy, cell.num_labeled, cell.seed)
            if "error" in generator:
                raise RuntimeError(f"the cell's generator failed: {generator['error']}")
            synthetic = [generator["datalist"]]
        per_epoch = min(SAM_ITERATIONS_PER_EPOCH, settings.segmenter_iterations)
        epochs = max(1, math.ceil(settings.segmenter_iterations / per_epoch))
        shared = {**context.common_overrides(), "bundle_root": str(sam), "dataset_dir": str(datalist),
                  "model_path": str(folder / "model.pt"), "architecture": settings.sam_architecture}  # fmt: skip
        train_seconds = _run_training(
            context,
            "sam",
            [train],
            {
                **shared,
                "ckpt_dir": str(folder),
                "output_dir": str(folder / "runs"),
                "synthetic": synthetic,
                # the same number of batches of 4 with and without synthetic pairs (sam_synthetic_fraction of each)
                "synthetic_fraction": settings.sam_synthetic_fraction,
                "samples_per_epoch": per_epoch * LABELED_BATCH_SIZE,
                "batch_size": LABELED_BATCH_SIZE,
                "max_epochs": epochs,
                "val_interval": max(1, epochs // 10),
                "checkpoint_interval": max(1, epochs // 10),
                "seed": cell.seed,
                "train_mode": settings.sam_train_mode,
                **({"learning_rate": settings.sam_learning_rate} if settings.sam_learning_rate else {}),
                **({"checkpoint": str(Path(settings.sam_checkpoint).resolve())} if settings.sam_checkpoint else {}),
            },
            folder / "train.log",
        )
        head = cell.anatomy == "fetal_head"
        run_bundle(
            [train, context.config("sam", "evaluate.json")],
            {
                **shared,
                "test_dataset_dir": str(datalist),
                "test_subset": "test",
                "metrics_path": str(folder / "metrics.json"),
                "head_circumference": head and all("pixel_spacing_mm" in i for i in data.test),
            },
            folder / "evaluate.log",
            settings.num_threads,
            in_process=settings.in_process,
        )
        metrics = _read_metrics(folder / "metrics.json")
        result = {
            "dice": metrics["test_mean_dice"],
            "iou": metrics.get("test_mean_iou"),
            "iterations": epochs * per_epoch,
            "train_seconds": round(train_seconds, 1),
        }
        if "test_hc_abs_error_mm" in metrics:
            result["hc_abs_error_mm"] = metrics["test_hc_abs_error_mm"]
        return result

    return run


#: arm name -> (bundle, what it is, the function that trains and evaluates it in a cell folder)
ARMS: dict[str, tuple[str, str, Callable[[StudyContext, Cell, Path], dict[str, Any]]]] = {
    "unet": ("mgcc", "MONAI UNet, supervised", _mgcc_arm(("unet_baseline.json",), _supervised)),
    "supervised": ("mgcc", "MGCCNet, supervised only", _mgcc_arm((), _supervised)),
    "strong_augmentation": (
        "mgcc",
        "MGCCNet, supervised, strong augmentation",
        _mgcc_arm(("strong_augmentation.json",), _supervised),
    ),
    "mgcc_real": ("mgcc", "MGCC, real unlabelled images", _mgcc_arm((), _real_unlabeled)),
    "mgcc_csg": ("mgcc", "MGCC, CSG synthetic unlabelled images", _mgcc_arm((), _synthetic_unlabeled)),
    "sam_real": ("sam", "SAM, real pairs only, box prompts", _sam_arm(with_synthetic=False)),
    "sam_csg": ("sam", "SAM, real + CSG synthetic pairs (part of each batch), box prompts", _sam_arm(True)),
}


def run_arm(context: StudyContext, cell: Cell) -> dict[str, Any]:
    """Train and evaluate ``cell`` (or read its kept result)."""
    if cell.arm not in ARMS:
        raise ValueError(f"unknown arm {cell.arm!r}; arms are {sorted(ARMS)}.")
    run = ARMS[cell.arm][2]
    return run_cell(cell, context.out, lambda folder: run(context, cell, folder))


def run_quality(context: StudyContext, anatomy: str, num_labeled: int, seed: int) -> dict[str, Any] | None:
    """The C2ST, texture and mask-consistency measurements of a cell's generator
    (:py:func:`usgen_monai.study.quality.generator_quality`), or ``None`` when no arm of the cell needed one."""
    from usgen_monai.study.quality import QUALITY_ARM, generator_quality

    result = Cell(anatomy, num_labeled, seed, GENERATOR_ARM).folder(context.out) / "result.json"
    if not result.is_file():
        return None
    return generator_quality(
        context.out,
        context.data[anatomy],
        json.loads(result.read_text(encoding="utf-8")),
        Cell(anatomy, num_labeled, seed, QUALITY_ARM),
        context.bundles_dir,
        context.settings.image_size,
    )
