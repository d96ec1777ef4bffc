"""Realism statistics of generated ultrasound against real (or simulated) images: speckle statistics and
intensity histograms per tissue class, and a Fréchet distance on features of a network trained here (no
downloaded Inception weights)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from monai.metrics.fid import get_fid_score

__all__ = [
    "speckle_statistics",
    "class_histograms",
    "histogram_distance",
    "compare_speckle_statistics",
    "extract_features",
    "frechet_distance",
]


def _as_numpy(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def speckle_statistics(
    images: Sequence | np.ndarray, label_maps: Sequence | np.ndarray, num_classes: int, min_pixels: int = 50
) -> dict[int, dict[str, float]]:
    """First-order speckle statistics of each class over a set of images.

    Args:
        images: (N, H, W) or (N, 1, H, W) intensities in [0, 1] (log-compressed B-mode).
        label_maps: label maps of the same shape, integer class values.
        num_classes: classes 0..num_classes-1 are reported when they cover at least ``min_pixels`` pixels.

    Returns:
        class value -> {"mean", "std", "snr" (mean/std), "skewness", "pixels"}: population moments (``std`` with
        ddof 0); a constant class has std 0, SNR ``inf`` and skewness 0.
    """
    img = _as_numpy(images).astype(np.float64).reshape(-1)
    lab = _as_numpy(label_maps).astype(np.int64).reshape(-1)
    if img.shape != lab.shape:
        raise ValueError(f"images and label_maps must have the same number of pixels, got {img.size} and {lab.size}.")
    out: dict[int, dict[str, float]] = {}
    for c in range(num_classes):
        v = img[lab == c]
        if v.size < min_pixels:
            continue
        mean = float(v.mean())
        std = 0.0 if v.min() == v.max() else float(v.std())  # exactly 0 for a constant field, not rounding noise
        skew = float(((v - mean) ** 3).mean() / std**3) if std > 0 else 0.0
        out[c] = {
            "mean": mean,
            "std": std,
            "snr": mean / std if std > 0 else float("inf"),
            "skewness": skew,
            "pixels": int(v.size),
        }
    return out


def class_histograms(images, label_maps, num_classes: int, bins: int = 64) -> dict[int, np.ndarray]:
    """Normalised intensity histogram (``bins`` equal bins over [0, 1], the last one closed) of each class present in
    the label maps.

    Args:
        images: (N, H, W) or (N, 1, H, W) intensities in [0, 1].
        label_maps: label maps of the same shape, integer class values.
        num_classes: classes 0..num_classes-1 are looked for.
        bins: number of bins.

    Returns:
        class value -> ``(bins,)`` histogram summing to 1.
    """
    img = _as_numpy(images).reshape(-1)
    lab = _as_numpy(label_maps).astype(np.int64).reshape(-1)
    out = {}
    for c in range(num_classes):
        v = img[lab == c]
        if v.size:
            h, _ = np.histogram(v, bins=bins, range=(0.0, 1.0))
            out[c] = h / h.sum()
    return out


def histogram_distance(p: np.ndarray, q: np.ndarray) -> float:
    """Earth mover's (Wasserstein-1) distance between two normalised histograms over [0, 1] with equal bins, in
    intensity units: ``sum |CDF_p - CDF_q| / bins``, so moving all the mass by ``k`` bins costs ``k / bins``."""
    p, q = np.asarray(p, np.float64), np.asarray(q, np.float64)
    if p.shape != q.shape:
        raise ValueError(f"histograms must have the same bins, got {p.shape} and {q.shape}.")
    return float(np.abs(np.cumsum(p) - np.cumsum(q)).sum() / len(p))


def compare_speckle_statistics(
    generated, generated_labels, real, real_labels, num_classes: int, class_names: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """Per-class differences between generated and real images: mean and SNR gaps and the histogram distance.

    Args:
        generated, generated_labels: generated images and their label maps (see :py:func:`speckle_statistics`).
        real, real_labels: real images and their label maps.
        num_classes: classes 0..num_classes-1 are compared.
        class_names: names of the classes (index = value) for the keys of the result; ``None`` uses the values.

    Returns:
        class name (or value) -> {"mean_gen", "mean_real", "snr_gen", "snr_real", "histogram_emd"}; only classes
        present in both sets.
    """
    sg = speckle_statistics(generated, generated_labels, num_classes)
    sr = speckle_statistics(real, real_labels, num_classes)
    hg = class_histograms(generated, generated_labels, num_classes)
    hr = class_histograms(real, real_labels, num_classes)
    out = {}
    for c in sorted(set(sg) & set(sr)):
        name = class_names[c] if class_names is not None else str(c)
        out[name] = {
            "mean_gen": sg[c]["mean"],
            "mean_real": sr[c]["mean"],
            "snr_gen": sg[c]["snr"],
            "snr_real": sr[c]["snr"],
            "histogram_emd": histogram_distance(hg[c], hr[c]),
        }
    return out


@torch.no_grad()
def extract_features(
    feature_fn: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, batch_size: int = 32
) -> torch.Tensor:
    """(N, C, H, W) images -> (N, F) float32 CPU features: ``feature_fn`` outputs are global-average pooled when
    spatial, kept as they are when ``(B, F)``."""
    feats = []
    for i in range(0, len(images), batch_size):
        f = feature_fn(images[i : i + batch_size])
        if f.ndim > 2:
            f = f.flatten(2).mean(-1)
        feats.append(f.float().cpu())
    return torch.cat(feats)


def frechet_distance(features_a: torch.Tensor, features_b: torch.Tensor) -> float:
    """Fréchet distance between two (N, F) feature sets (MONAI's FID formula); features come from a network
    trained in this project (e.g. a segmenter's encoder), since no Inception weights are available offline.

    With the sample means ``mu`` and unbiased sample covariances ``S`` of the two sets, the distance is
    ``||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2))``, computed in float64.

    Args:
        features_a: ``(N, F)`` features, N >= 2.
        features_b: ``(M, F)`` features, M >= 2.
    """
    if features_a.ndim != 2 or features_b.ndim != 2 or features_a.shape[1] != features_b.shape[1]:
        raise ValueError(
            f"features must be (N, F) with the same F, got {tuple(features_a.shape)} and {tuple(features_b.shape)}."
        )
    if min(len(features_a), len(features_b)) < 2:
        raise ValueError(
            "the Fréchet distance needs at least 2 feature vectors per set for a covariance, got "
            f"{len(features_a)} and {len(features_b)}."
        )
    return float(get_fid_score(features_a.double(), features_b.double()))
