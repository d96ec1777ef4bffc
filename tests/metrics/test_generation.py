from __future__ import annotations

import numpy as np
import pytest
import torch

from usgen_monai.metrics import context_effect, mask_consistency, pairwise_ms_ssim, segmentation_dice


def _oracle(images):
    # a "segmenter" that thresholds the image: logits positive where the image is bright
    return (images - 0.5) * 20


def test_segmentation_dice_and_mask_consistency():
    masks = torch.zeros(4, 1, 32, 32)
    masks[:, :, 8:24, 8:24] = 1
    real = masks * 0.9 + 0.05
    generated = real.clone()
    generated[:2, :, 8:24, 8:16] = 0.05  # half of the structure missing in two images
    assert segmentation_dice(_oracle, real, masks) == pytest.approx(1.0)
    out = mask_consistency(_oracle, generated, masks, real, masks)
    assert out["dice_real"] == pytest.approx(1.0)
    assert 0.7 < out["dice_generated"] < 0.95
    assert out["ratio"] == pytest.approx(out["dice_generated"])


def test_pairwise_ms_ssim_identical_vs_independent():
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, 64, 64, generator=g)
    same = base.repeat(4, 1, 1, 1)
    diverse = torch.rand(4, 1, 64, 64, generator=g)
    assert pairwise_ms_ssim(same) == pytest.approx(1.0, abs=1e-4)
    assert pairwise_ms_ssim(diverse) < 0.3
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_ms_ssim(base)


def test_context_effect_detects_gain_change():
    g = torch.Generator().manual_seed(1)
    a = torch.rand(6, 1, 16, 16, generator=g) * 0.5
    b = a + 0.2
    out = context_effect(a, b)
    assert out["difference"] == pytest.approx(0.2, abs=1e-6)
    assert out["effect_size"] > 3
    null = context_effect(a, a)
    assert null["difference"] == 0


def test_label_map_fragmentation_separates_clean_from_noisy_maps():
    from usgen_monai.metrics import label_map_fragmentation

    clean = np.zeros((2, 1, 32, 32), np.int64)
    clean[:, :, 4:20, 4:28] = 3
    clean[:, :, 20:30, 4:28] = 5
    assert label_map_fragmentation(clean) == 0.0
    noisy = clean.copy()
    rng = np.random.default_rng(0)
    flips = rng.random(noisy.shape) < 0.1
    noisy[flips] = rng.integers(1, 8, flips.sum())
    # about 10% of the pixels flipped to isolated classes: mostly single-pixel fragments
    assert 0.05 < label_map_fragmentation(torch.as_tensor(noisy)) < 0.2
    one = np.zeros((1, 8, 8), np.int64)
    one[0, 0, 0] = 2
    assert label_map_fragmentation(one, min_size=1) == 0.0 and label_map_fragmentation(one, min_size=2) == 1.0
    assert label_map_fragmentation(np.zeros((1, 4, 4), np.int64)) == 0.0
    with pytest.raises(ValueError, match="label_maps must be"):
        label_map_fragmentation(np.zeros((4, 4)))
