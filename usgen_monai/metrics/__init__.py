"""Metrics: pure functions of images, masks and features."""

from __future__ import annotations

from .generation import (
    context_effect,
    label_map_fragmentation,
    mask_consistency,
    pairwise_ms_ssim,
    segmentation_dice,
)
from .realism import (
    class_histograms,
    compare_speckle_statistics,
    extract_features,
    frechet_distance,
    histogram_distance,
    speckle_statistics,
)

__all__ = [
    "class_histograms",
    "compare_speckle_statistics",
    "context_effect",
    "extract_features",
    "frechet_distance",
    "histogram_distance",
    "label_map_fragmentation",
    "mask_consistency",
    "pairwise_ms_ssim",
    "segmentation_dice",
    "speckle_statistics",
]
