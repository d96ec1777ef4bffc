"""Exact values of the metrics of a conditioned generator (``usgen_monai.metrics.conditioning``) on constructed inputs
whose answer is known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from usgen_monai.metrics import (
    context_effect,
    false_finding_rate,
    label_map_fragmentation,
    mask_consistency,
    pairwise_ms_ssim,
    segmentation_dice,
)

C1 = (0.01 * 1.0) ** 2  # SSIM's luminance constant (k1 = 0.01, data range 1)
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
# MS-SSIM runs in float32: a flat image's variance E[x^2] - E[x]^2 cancels to about 1e-8 against SSIM's contrast
# constant C2 = 9e-4, so the contrast terms of constant images are 1 only to about 1e-5
FLOAT32_SSIM = 3e-5


def _oracle(images):
    # a "segmenter" that thresholds the image: logits positive where the image is bright
    return (images - 0.5) * 20


def _square_masks(n, size=32):
    masks = torch.zeros(n, 1, size, size)
    masks[:, :, 8:24, 8:24] = 1  # 256 pixels
    return masks


def test_segmentation_dice_is_the_mean_over_images_with_a_foreground():
    masks = _square_masks(4)
    real = masks * 0.9 + 0.05
    assert segmentation_dice(_oracle, real, masks) == pytest.approx(1.0, abs=1e-7)
    half = real.clone()
    half[:2, :, 8:24, 8:16] = 0.05  # two images find half the square: Dice 2 * 128 / (128 + 256) = 2/3
    assert segmentation_dice(_oracle, half, masks) == pytest.approx((2 * 2 / 3 + 2 * 1) / 4, abs=1e-7)  # 5/6
    # batches do not change the mean
    assert segmentation_dice(_oracle, half, masks, batch_size=3) == pytest.approx(5 / 6, abs=1e-7)
    # an image with an empty mask is left out, even with a false positive (its Dice is undefined)
    empty = torch.zeros(1, 1, 32, 32)
    false_positive = torch.full_like(empty, 0.05)
    false_positive[..., :4, :4] = 0.95
    assert segmentation_dice(_oracle, torch.cat([half, false_positive]), torch.cat([masks, empty])) == pytest.approx(
        5 / 6, abs=1e-7
    )
    # a prediction that misses entirely scores 0; no image with a foreground at all also gives 0
    assert segmentation_dice(_oracle, torch.full_like(masks, 0.05), masks) == 0.0
    assert segmentation_dice(_oracle, false_positive, empty) == 0.0
    # the threshold applies to the sigmoid of the logits: at 0.95 the 0.55 ring below counts as background
    ring = real.clone()
    ring[:, :, 8:24, 8:16] = 0.55  # logits 1: sigmoid 0.73
    assert segmentation_dice(_oracle, ring, masks, threshold=0.5) == pytest.approx(1.0, abs=1e-7)
    assert segmentation_dice(_oracle, ring, masks, threshold=0.95) == pytest.approx(2 / 3, abs=1e-7)


def test_mask_consistency_ratio():
    masks = _square_masks(4)
    real = masks * 0.9 + 0.05
    real[:2, :, 8:24, 8:16] = 0.05  # the segmenter scores 5/6 on real images
    generated = masks * 0.9 + 0.05
    generated[:, :, 8:24, 8:16] = 0.05  # and 2/3 on every generated image
    out = mask_consistency(_oracle, generated, masks, real, masks)
    assert out["dice_real"] == pytest.approx(5 / 6, abs=1e-7)
    assert out["dice_generated"] == pytest.approx(2 / 3, abs=1e-7)
    assert out["ratio"] == pytest.approx((2 / 3) / (5 / 6), abs=1e-6)  # 4/5
    assert out["images_with_finding_generated"] == out["images_with_finding_real"] == 4
    assert out["images_without_finding_generated"] == 0 and math.isnan(out["false_finding_rate_generated"])
    missed = mask_consistency(_oracle, generated, masks, torch.zeros_like(real), masks)
    assert missed["dice_real"] == 0.0 and math.isnan(missed["ratio"])


def test_empty_masks_are_reported_by_their_false_findings():
    """Dice covers the images with the finding; in those without it, what counts is whether the segmenter finds a
    target anyway (at least min_pixels of it)."""
    masks = torch.cat([_square_masks(2), torch.zeros(4, 1, 32, 32)])
    real = masks * 0.9 + 0.05  # dark where the mask is empty
    generated = real.clone()
    generated[2, :, :4, :4] = 0.95  # 16 bright pixels: a finding at min_pixels 16
    generated[3, :, :3, :3] = 0.95  # 9: too small to count
    out = mask_consistency(_oracle, generated, masks, real, masks)
    assert out["dice_generated"] == pytest.approx(1.0, abs=1e-7) and out["ratio"] == pytest.approx(1.0, abs=1e-6)
    assert out["images_with_finding_generated"] == 2 and out["images_without_finding_generated"] == 4
    assert out["false_finding_rate_generated"] == pytest.approx(1 / 4) and out["false_finding_rate_real"] == 0.0
    assert false_finding_rate(_oracle, generated, masks, min_pixels=9) == pytest.approx(2 / 4)
    assert false_finding_rate(_oracle, generated, masks, min_pixels=9, batch_size=1) == pytest.approx(2 / 4)
    assert math.isnan(false_finding_rate(_oracle, generated[:2], masks[:2]))
    seen = []

    def counting(images):
        seen.append(len(images))
        return _oracle(images)

    mask_consistency(counting, generated, masks, real, masks)
    assert sum(seen) == len(generated) + len(real)  # each image segmented once, for Dice and false findings alike


def _ms_ssim_of_constants(a, b, size):
    """MS-SSIM of two constant images: contrast-structure terms are 1 at every scale, so only the luminance term
    ``(2ab + C1) / (a^2 + b^2 + C1)`` of the coarsest scale remains, raised to its (renormalised) weight."""
    scales = {16: 1, 32: 2, 64: 3, 128: 4, 256: 5}[size]  # the coarsest scale keeps at least 14 pixels
    weights = MS_SSIM_WEIGHTS[:scales]
    luminance = (2 * a * b + C1) / (a * a + b * b + C1)
    return luminance ** (weights[-1] / sum(weights))


@pytest.mark.parametrize("size", [16, 32, 64, 128])
def test_pairwise_ms_ssim_exact(size):
    g = torch.Generator().manual_seed(0)
    base = torch.rand(1, 1, size, size, generator=g)
    assert pairwise_ms_ssim(base.repeat(4, 1, 1, 1)) == pytest.approx(1.0, abs=1e-6)  # identical images
    values = (0.2, 0.4, 0.6)
    constants = torch.cat([torch.full((1, 1, size, size), v) for v in values])
    pairs = [(0.2, 0.4), (0.2, 0.6), (0.4, 0.6)]
    expected = np.mean([_ms_ssim_of_constants(a, b, size) for a, b in pairs])
    assert pairwise_ms_ssim(constants) == pytest.approx(expected, abs=FLOAT32_SSIM)


def test_pairwise_ms_ssim_diverse_and_errors():
    g = torch.Generator().manual_seed(0)
    diverse = torch.rand(4, 1, 64, 64, generator=g)
    assert pairwise_ms_ssim(diverse) < 0.3
    # max_pairs draws that many of the pairs, the same ones for the same seed
    constants = torch.cat([torch.full((1, 1, 16, 16), v) for v in (0.2, 0.4, 0.6)])
    each = [_ms_ssim_of_constants(a, b, 16) for a, b in [(0.2, 0.4), (0.2, 0.6), (0.4, 0.6)]]
    drawn = {seed: pairwise_ms_ssim(constants, max_pairs=1, seed=seed) for seed in range(6)}
    assert all(min(abs(v - e) for e in each) < FLOAT32_SSIM for v in drawn.values())
    assert len({round(v, 6) for v in drawn.values()}) > 1  # different seeds, different pairs
    assert pairwise_ms_ssim(constants, max_pairs=1, seed=3) == drawn[3]
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_ms_ssim(diverse[:1])


def _constant_images(values, size=4):
    return torch.stack([torch.full((1, size, size), float(v), dtype=torch.float64) for v in values])


def test_context_effect_is_cohens_d_of_per_image_means():
    a = _constant_images([0.1, 0.2, 0.3])  # per-image means with variance 0.01 (unbiased)
    out = context_effect(a, a + 0.2)
    assert out["mean_a"] == pytest.approx(0.2, abs=1e-12)
    assert out["mean_b"] == pytest.approx(0.4, abs=1e-12)
    assert out["difference"] == pytest.approx(0.2, abs=1e-12)
    assert out["effect_size"] == pytest.approx(0.2 / 0.1, abs=1e-9)  # pooled sd sqrt((0.01 + 0.01) / 2)
    b = _constant_images([0.5, 0.7, 0.9])  # variance 0.04
    out = context_effect(a, b)
    assert out["difference"] == pytest.approx(0.5, abs=1e-12)
    assert out["effect_size"] == pytest.approx(0.5 / math.sqrt((0.01 + 0.04) / 2), abs=1e-9)  # sqrt(10)
    reverse = context_effect(b, a)
    assert reverse["effect_size"] == pytest.approx(-out["effect_size"], abs=1e-12)
    null = context_effect(a, a)
    assert null["difference"] == 0 and null["effect_size"] == 0


def test_context_effect_within_masks_and_degenerate_cases():
    # inside the mask the images are those of the previous test; outside they hold values that would change the means
    a = _constant_images([0.1, 0.2, 0.3], size=8)
    b = _constant_images([0.5, 0.7, 0.9], size=8)
    masks = torch.zeros_like(a, dtype=torch.bool)
    masks[..., 2:6, 2:6] = True
    a[~masks], b[~masks] = 1.0, 0.0
    out = context_effect(a, b, masks)
    assert out["mean_a"] == pytest.approx(0.2, abs=1e-12) and out["mean_b"] == pytest.approx(0.7, abs=1e-12)
    assert out["effect_size"] == pytest.approx(math.sqrt(10), abs=1e-9)
    # no spread between images: an infinite effect in the direction of the change, undefined without a change
    flat = _constant_images([0.3, 0.3])
    assert context_effect(flat, flat + 0.1)["effect_size"] == math.inf
    assert context_effect(flat + 0.1, flat)["effect_size"] == -math.inf
    assert math.isnan(context_effect(flat, flat)["effect_size"])
    assert context_effect(flat[:1], flat[:1] + 0.1)["effect_size"] == math.inf  # one image: no spread either
    with pytest.raises(ValueError, match="must match"):
        context_effect(a, b[:2])


def test_label_map_fragmentation_of_a_constructed_map():
    m = np.zeros((1, 1, 32, 32), np.int64)
    m[0, 0, 2:18, 2:26] = 3  # 384 pixels, one component
    m[0, 0, 20:30, 2:26] = 5  # 240 pixels
    m[0, 0, 20:24, 27:31] = 4  # 16 pixels: exactly min_size, not a fragment
    m[0, 0, 0, 28:31] = 2  # a 3-pixel fragment
    m[0, 0, 31, 0] = 7  # two single pixels of class 7
    m[0, 0, 31, 31] = 7
    m[0, 0, 25:26, 27:32] = 3  # a 5-pixel fragment of class 3, apart from its large region
    total = 384 + 240 + 16 + 3 + 2 + 5
    assert label_map_fragmentation(m) == pytest.approx((3 + 2 + 5) / total, abs=1e-15)
    assert label_map_fragmentation(m, min_size=17) == pytest.approx((16 + 3 + 2 + 5) / total, abs=1e-15)
    assert label_map_fragmentation(m, min_size=1) == 0.0
    assert label_map_fragmentation(torch.as_tensor(m[:, 0])) == label_map_fragmentation(m)  # (N, H, W) tensors too


def test_label_map_fragmentation_connectivity_pooling_and_errors():
    diagonal = np.zeros((1, 8, 8), np.int64)
    diagonal[0, 3, 3] = diagonal[0, 4, 4] = 6  # touching corners: two components under 4-connectivity
    assert label_map_fragmentation(diagonal, min_size=2) == 1.0
    # pixels are pooled over maps (not a mean of per-map fractions): 10 fragment pixels of 100 + 10 pixels
    clean = np.zeros((1, 16, 16), np.int64)
    clean[0, :10, :10] = 1
    speckled = np.zeros((1, 16, 16), np.int64)
    speckled[0, ::4, ::4] = 2  # 16 isolated pixels ...
    speckled[0, 12, :] = 0  # ... less one row of 4: 12
    speckled[0, 0, :] = 0  # ... and another: 8
    speckled[0, 1, 1] = speckled[0, 1, 3] = 2  # 10
    assert label_map_fragmentation(speckled) == 1.0
    assert label_map_fragmentation(np.concatenate([clean, speckled])) == pytest.approx(10 / 110, abs=1e-15)
    assert label_map_fragmentation(np.zeros((1, 4, 4), np.int64)) == 0.0  # no anatomy
    with pytest.raises(ValueError, match="label_maps must be"):
        label_map_fragmentation(np.zeros((4, 4)))
    with pytest.raises(ValueError, match="label_maps must be"):
        label_map_fragmentation(np.zeros((2, 3, 4, 4)))
