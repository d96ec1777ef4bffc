"""Metrics: pure functions of images, masks and features.

* :py:mod:`~usgen_monai.metrics.conditioning`: does a conditioned generator follow its conditions (segmentation Dice,
  mask consistency, context effect), how diverse are its images (pairwise MS-SSIM), how clean its label maps
  (label-map fragmentation);
* :py:mod:`~usgen_monai.metrics.head_circumference`: the head circumference of a fetal-head mask as HC18 measures it
  (ellipse fitted to the mask's edge) and a prediction's error;
* :py:mod:`~usgen_monai.metrics.realism`: do its images look like real ones (speckle statistics, class histograms and
  their distance, Fréchet distance of features);
* :py:mod:`~usgen_monai.metrics.two_sample`: can a network tell them apart (classifier two-sample test ROC AUC) and
  how much fine texture they keep (high-frequency energy).
"""

from __future__ import annotations

from .conditioning import (
    context_effect,
    false_finding_rate,
    label_map_fragmentation,
    mask_consistency,
    pairwise_ms_ssim,
    segmentation_dice,
)
from .head_circumference import head_circumference, head_circumference_error
from .realism import (
    class_histograms,
    compare_speckle_statistics,
    extract_features,
    frechet_distance,
    histogram_distance,
    speckle_statistics,
)
from .two_sample import classifier_two_sample_test, high_frequency_energy

__all__ = [
    "classifier_two_sample_test",
    "high_frequency_energy",
    "class_histograms",
    "compare_speckle_statistics",
    "context_effect",
    "extract_features",
    "false_finding_rate",
    "frechet_distance",
    "head_circumference",
    "head_circumference_error",
    "histogram_distance",
    "label_map_fragmentation",
    "mask_consistency",
    "pairwise_ms_ssim",
    "segmentation_dice",
    "speckle_statistics",
]
