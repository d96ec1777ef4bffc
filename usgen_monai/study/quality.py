"""How faithful a study cell's generator is, next to how much its images help: the classifier two-sample test (C2ST)
of its images against real images of the same anatomy, with the real-versus-real noise floor, the fine-texture
(speckle) energy ratio, and mask consistency: the Dice of the cell's own ``supervised`` segmenter on the generated
images against the masks that conditioned them, next to its Dice on the held-out test images.

The real images are the anatomy's unlabelled pool (never the test set, which stays held out from everything); the
floor splits that pool in two halves. Everything is computed at the generator's output size.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from usgen_monai.study.protocol import AnatomyData
from usgen_monai.study.runner import Cell, run_cell

__all__ = ["QUALITY_ARM", "generator_quality", "load_image_stack"]

QUALITY_ARM = "csg_quality"
SEGMENTER_ARM = "supervised"


def load_image_stack(
    items: Sequence[Mapping[str, Any]], size: Sequence[int], with_masks: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``(N, 1, H, W)`` images in ``[0, 1]`` (each scaled to its own range) resized to ``size``, and with
    ``with_masks`` their ``(N, 1, H, W)`` 0/1 masks (CSG label maps through their ``target_labels``)."""
    from monai.transforms import Compose, EnsureTyped, Resized, ScaleIntensityd

    from usgen_monai.data import load_transforms
    from usgen_monai.engines.sam_training import TargetMaskd

    keys = ["image", "label"] if with_masks else ["image"]
    transform = Compose(
        [
            load_transforms("monai", keys=("image", "label"), binarize=False),
            TargetMaskd(keys="label", allow_missing_keys=True),
            ScaleIntensityd(keys="image", minv=0.0, maxv=1.0),
            Resized(keys=keys, spatial_size=list(size), mode=["bilinear", "nearest"][: len(keys)]),
            EnsureTyped(keys=keys, dtype=torch.float32, track_meta=False),
        ]
    )
    images, masks = [], []
    for item in items:
        entry = {k: item[k] for k in ("image", "label", "target_labels") if k in item and (k == "image" or with_masks)}
        out = transform(entry)
        images.append(torch.as_tensor(out["image"])[:1])
        if with_masks:
            masks.append((torch.as_tensor(out["label"])[:1] > 0).float())
    return torch.stack(images), (torch.stack(masks) if with_masks else None)


def _generated_items(datalist: str | Path) -> list[dict[str, Any]]:
    from usgen_monai.bundle import synthetic_pairs

    return synthetic_pairs(str(datalist))


def _segmenter(model_path: Path, bundles_dir: Path, image_size: int):
    """The cell's ``supervised`` MGCCNet (eval mode: main decoder logits), fed at the size it was trained at."""
    from monai.bundle import ConfigParser

    from usgen_monai.bundle import load_model_weights

    parser = ConfigParser()
    parser.read_config(str(bundles_dir / "mgcc" / "configs" / "train.json"))
    network = load_model_weights(parser.get_parsed_content("network_def"), str(model_path), map_location="cpu")
    network.eval()

    def segment(images: torch.Tensor) -> torch.Tensor:
        small = torch.nn.functional.interpolate(images, size=(image_size, image_size), mode="bilinear")
        with torch.no_grad():
            logits = network(small)
        return torch.nn.functional.interpolate(logits, size=images.shape[-2:], mode="bilinear")

    return segment


def generator_quality(
    out: Path,
    data: AnatomyData,
    generator: Mapping[str, Any],
    cell: Cell,
    bundles_dir: Path,
    image_size: int,
    folds: int = 4,
    epochs: int = 15,
) -> dict[str, Any]:
    """C2ST, texture energy and mask consistency of the generator of ``cell``'s anatomy, N and seed (kept in the
    cell folder of arm :data:`QUALITY_ARM` like any other result)."""
    from usgen_monai.metrics import high_frequency_energy, mask_consistency

    def compute(folder: Path) -> dict[str, Any]:
        generated_items = _generated_items(generator["datalist"])
        size = _image_size(generated_items[0])
        generated, conditioning = load_image_stack(generated_items, size, with_masks=True)
        real, _ = load_image_stack(data.unlabeled_pool, size)
        c2st = _c2st(real, generated, folds, epochs, cell.seed)
        half = len(real) // 2
        floor = _c2st(real[:half], real[half : 2 * half], folds, epochs, cell.seed)
        result: dict[str, Any] = {
            "c2st_auc": c2st.get("auc"),
            "c2st_auc_std": c2st.get("auc_std"),
            "c2st_images_per_set": c2st.get("num_per_set"),
            "c2st_real_vs_real_auc": floor.get("auc"),
            "high_frequency_ratio": high_frequency_energy(generated) / max(high_frequency_energy(real), 1e-12),
            "image_size": list(size),
        }
        model = out / "cells" / Cell(cell.anatomy, cell.num_labeled, cell.seed, SEGMENTER_ARM).name / "model.pt"
        if model.is_file():
            test, test_masks = load_image_stack(data.test, size, with_masks=True)
            has_finding = conditioning.flatten(1).amax(1) > 0
            consistency = mask_consistency(
                _segmenter(model, bundles_dir, image_size), generated[has_finding], conditioning[has_finding], test,
                test_masks,
            )
            result.update(
                {
                    "mask_consistency_dice_generated": consistency["dice_generated"],
                    "mask_consistency_dice_real": consistency["dice_real"],
                    "mask_consistency_ratio": consistency["ratio"],
                    "mask_consistency_images": int(has_finding.sum()),
                    "empty_conditioning_masks": int((~has_finding).sum()),
                    "mask_consistency_segmenter": f"the cell's '{SEGMENTER_ARM}' arm (no texture-hiding augmentation)",
                }
            )
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in result.items()}

    return run_cell(cell, out, compute)


def _c2st(real: torch.Tensor, generated: torch.Tensor, folds: int, epochs: int, seed: int) -> dict[str, Any]:
    """The C2ST with as many folds as the sets allow (at least 4 images per set per fold, at least 2 folds);
    empty when the sets are too small for two folds."""
    from usgen_monai.metrics import classifier_two_sample_test

    n = min(len(real), len(generated))
    if n < 4:
        return {}
    return classifier_two_sample_test(real, generated, folds=max(2, min(folds, n // 4)), epochs=epochs, seed=seed)


def _image_size(item: Mapping[str, Any]) -> tuple[int, int]:
    from PIL import Image

    with Image.open(item["image"]) as image:
        width, height = image.size
    return height, width
