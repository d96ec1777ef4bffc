"""Metrics of a mask-conditioned generator: how well its images respect the conditioning mask (segmentation Dice,
mask consistency), how diverse they are (pairwise MS-SSIM), how much a context change moves them (context effect), and
how clean its generated label maps are (label-map fragmentation)."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import torch
from monai.metrics import DiceMetric, MultiScaleSSIMMetric

__all__ = [
    "segmentation_dice",
    "false_finding_rate",
    "mask_consistency",
    "pairwise_ms_ssim",
    "context_effect",
    "label_map_fragmentation",
]


@torch.no_grad()
def _predict(segmenter: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int,
             threshold: float) -> torch.Tensor:  # fmt: skip
    """``(N, 1, H, W)`` float 0/1 predictions of a binary segmenter, ``batch_size`` images per call."""
    chunks = [
        (torch.sigmoid(segmenter(images[i : i + batch_size])) > threshold).float()
        for i in range(0, len(images), batch_size)
    ]
    return torch.cat(chunks) if chunks else images.new_zeros((0, 1, *images.shape[2:]))


def _dice(pred: torch.Tensor, masks: torch.Tensor) -> float:
    metric = DiceMetric(include_background=True, reduction="mean", ignore_empty=True)
    metric(pred, masks.float())
    return float(metric.aggregate())


def _false_findings(pred: torch.Tensor, masks: torch.Tensor, min_pixels: int) -> float:
    empty = masks.flatten(1).sum(1) == 0
    if not bool(empty.any()):
        return float("nan")
    return float((pred[empty].flatten(1).sum(1) >= min_pixels).float().mean())


def segmentation_dice(
    segmenter: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    masks: torch.Tensor,
    batch_size: int = 32,
    threshold: float = 0.5,
) -> float:
    """Mean Dice of a binary segmenter against ``masks`` over the images whose mask has a foreground (Dice is
    undefined for an empty mask, so those images are left out whatever the segmenter predicts there).

    Args:
        segmenter: ``(B, C, H, W)`` images -> ``(B, 1, H, W)`` logits.
        images: ``(N, C, H, W)`` images.
        masks: ``(N, 1, H, W)`` binary masks.
        batch_size: images per segmenter call.
        threshold: foreground where ``sigmoid(logits) > threshold``.

    Returns:
        the mean Dice, in [0, 1]; 0.0 when no mask has a foreground.
    """
    has_finding = masks.flatten(1).sum(1) > 0
    if not bool(has_finding.any()):
        return 0.0
    return _dice(_predict(segmenter, images[has_finding], batch_size, threshold), masks[has_finding])


def false_finding_rate(
    segmenter: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    masks: torch.Tensor,
    min_pixels: int = 16,
    batch_size: int = 32,
    threshold: float = 0.5,
) -> float:
    """Share of the images whose mask is empty in which a binary segmenter finds the target anyway (at least
    ``min_pixels`` foreground pixels): what Dice cannot score, e.g. a lesion drawn into a normal breast.

    Args:
        segmenter: ``(B, C, H, W)`` images -> ``(B, 1, H, W)`` logits.
        images: ``(N, C, H, W)`` images.
        masks: ``(N, 1, H, W)`` binary masks; only the empty ones count.
        min_pixels: predicted foreground pixels that make a finding.
        batch_size: images per segmenter call.
        threshold: foreground where ``sigmoid(logits) > threshold``.

    Returns:
        the share in [0, 1]; NaN when no mask is empty.
    """
    empty = masks.flatten(1).sum(1) == 0
    if not bool(empty.any()):
        return float("nan")
    return _false_findings(_predict(segmenter, images[empty], batch_size, threshold), masks[empty], min_pixels)


def mask_consistency(
    segmenter, generated: torch.Tensor, conditioning_masks: torch.Tensor, real: torch.Tensor, real_masks: torch.Tensor
) -> dict[str, float]:
    """How well generated images respect the mask that conditioned them.

    An independent segmenter trained on real images segments the generated images; its Dice against the
    conditioning masks is compared with its Dice on real images (the best a perfect generator could score). Dice is
    taken over the images that contain the finding (non-empty masks); images with an empty mask are reported
    separately, by how often the segmenter finds a target in them (:py:func:`false_finding_rate`).

    Args:
        segmenter: ``(B, C, H, W)`` images -> ``(B, 1, H, W)`` logits (see :py:func:`segmentation_dice`); use one
            trained without augmentations that hide texture differences (blur, noise), or texture errors go unseen.
        generated: ``(N, C, H, W)`` generated images.
        conditioning_masks: ``(N, 1, H, W)`` the masks they were generated from.
        real: ``(M, C, H, W)`` real images.
        real_masks: ``(M, 1, H, W)`` their masks.

    Returns:
        ``dice_generated``, ``dice_real``, ``ratio`` = dice_generated / dice_real (NaN if dice_real is 0), over the
        images with the finding (``images_with_finding_generated`` / ``_real`` of them); ``false_finding_rate_generated``
        / ``_real`` over the images without it (NaN when there are none; ``images_without_finding_generated`` /
        ``_real``).
    """
    # each image through the segmenter once; Dice over those with the finding, false findings over the others
    pred_generated = _predict(segmenter, generated, 32, 0.5)
    pred_real = _predict(segmenter, real, 32, 0.5)

    def with_finding(masks: torch.Tensor) -> int:
        return int((masks.flatten(1).sum(1) > 0).sum())

    def dice(pred: torch.Tensor, masks: torch.Tensor) -> float:
        has_finding = masks.flatten(1).sum(1) > 0
        return _dice(pred[has_finding], masks[has_finding]) if bool(has_finding.any()) else 0.0

    gen = dice(pred_generated, conditioning_masks)
    ref = dice(pred_real, real_masks)

    return {
        "dice_generated": gen,
        "dice_real": ref,
        "ratio": gen / ref if ref > 0 else float("nan"),
        "images_with_finding_generated": with_finding(conditioning_masks),
        "images_with_finding_real": with_finding(real_masks),
        "false_finding_rate_generated": _false_findings(pred_generated, conditioning_masks, 16),
        "false_finding_rate_real": _false_findings(pred_real, real_masks, 16),
        "images_without_finding_generated": len(conditioning_masks) - with_finding(conditioning_masks),
        "images_without_finding_real": len(real_masks) - with_finding(real_masks),
    }


def pairwise_ms_ssim(images: torch.Tensor, max_pairs: int = 200, seed: int = 0) -> float:
    """Mean multi-scale SSIM over pairs of (N, 1, H, W) images in [0, 1]: lower means more diverse.

    The number of scales adapts to the image size: MS-SSIM halves the image per scale, and as many of the 5 scales
    are used as keep at least 14 pixels (twice the 7-pixel window) at the coarsest (16 pixels: 1 scale, 32: 2,
    64: 3, 128: 4, 256: 5), with the standard weights of those scales renormalised to sum to 1.

    Args:
        images: ``(N, 1, H, W)`` images, N >= 2.
        max_pairs: at most this many of the N (N - 1) / 2 pairs, drawn without replacement.
        seed: seed of that draw.

    Returns:
        the mean MS-SSIM (1 for identical images), computed in float32.
    """
    n, _, h, w = images.shape
    if n < 2:
        raise ValueError(f"need at least 2 images for pairwise MS-SSIM, got {n}.")
    scales = 1
    while scales < 5 and min(h, w) // 2**scales >= 7 * 2:
        scales += 1
    default = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)[:scales]
    weights = tuple(float(x) / sum(default) for x in default)
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=7, weights=weights)
    pairs = list(itertools.combinations(range(n), 2))
    if len(pairs) > max_pairs:
        rng = np.random.default_rng(seed)
        pairs = [pairs[i] for i in rng.choice(len(pairs), max_pairs, replace=False)]
    a = torch.stack([images[i] for i, _ in pairs]).float()
    b = torch.stack([images[j] for _, j in pairs]).float()
    return float(metric(a, b).mean())


def context_effect(
    images_a: torch.Tensor, images_b: torch.Tensor, masks: torch.Tensor | None = None
) -> dict[str, float]:
    """Effect of a context change (e.g. gain, or a bright vs dark context image) with the mask held fixed.

    Args:
        images_a, images_b: (N, 1, H, W) images generated from the same masks under contexts A and B.
        masks: optional (N, 1, H, W) region (e.g. the field of view) over which intensities are compared.

    Returns:
        {"mean_a", "mean_b", "difference", "effect_size"}: the mean over images of the per-image means, B minus A,
        and Cohen's d, the difference over the pooled standard deviation ``sqrt((var_a + var_b) / 2)`` of the
        per-image means (unbiased variances), so a controllable context gives |d| well above 1. Without spread
        between the images (all per-image means equal, or N = 1), d is +-inf in the direction of the difference,
        and NaN without a difference.
    """
    if images_a.shape != images_b.shape:
        raise ValueError(f"images_a and images_b must match, got {tuple(images_a.shape)} and {tuple(images_b.shape)}.")
    if masks is None:
        masks = torch.ones_like(images_a, dtype=torch.bool)
    masks = masks.bool()
    ma = torch.stack([a[m].mean() for a, m in zip(images_a, masks)]).double()
    mb = torch.stack([b[m].mean() for b, m in zip(images_b, masks)]).double()
    pooled = float(torch.sqrt((ma.var(unbiased=True) + mb.var(unbiased=True)) / 2)) if len(ma) > 1 else 0.0
    diff = float(mb.mean() - ma.mean())
    if pooled > 0:
        effect = diff / pooled
    else:
        effect = math.copysign(math.inf, diff) if diff != 0 else math.nan
    return {"mean_a": float(ma.mean()), "mean_b": float(mb.mean()), "difference": diff, "effect_size": effect}


def label_map_fragmentation(label_maps: torch.Tensor | np.ndarray, min_size: int = 16) -> float:
    """Fraction of the non-background pixels of label maps that lie in small fragments: connected components
    (4-connectivity, per class) of fewer than ``min_size`` pixels. Anatomy is made of a few large regions, so a clean
    map scores near 0; salt-and-pepper class noise, the failure of an undertrained label-map generator, scores high.

    Args:
        label_maps: ``(N, 1, H, W)`` or ``(N, H, W)`` integer maps, 0 = background.
        min_size: components smaller than this count as fragments.

    Returns:
        fragment pixels over non-background pixels, both summed over all maps (so a map weighs by its anatomy
        pixels, not equally); 0.0 for maps without anatomy.
    """
    from scipy import ndimage

    maps = label_maps.detach().cpu().numpy() if isinstance(label_maps, torch.Tensor) else np.asarray(label_maps)
    if maps.ndim == 4:
        if maps.shape[1] != 1:
            raise ValueError(f"label_maps must be (N, 1, H, W) or (N, H, W), got shape {maps.shape}.")
        maps = maps[:, 0]
    if maps.ndim != 3:
        raise ValueError(f"label_maps must be (N, 1, H, W) or (N, H, W), got shape {maps.shape}.")
    fragments = total = 0
    for label_map in maps:
        for value in np.unique(label_map):
            if value == 0:
                continue
            components, count = ndimage.label(label_map == value)
            sizes = np.bincount(components.ravel())[1:]
            fragments += int(sizes[sizes < min_size].sum())
            total += int(sizes.sum())
    return fragments / total if total else 0.0
