"""UltrasoundToGrey and rgb_to_grey: the documented colour -> grey rule (ITU-R BT.601 luma)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from usgen_monai.transforms.ultrasound import LUMA_WEIGHTS, UltrasoundToGrey, rgb_to_grey

TEST_NDARRAYS = [np.array, torch.as_tensor, lambda x: MetaTensor(torch.as_tensor(x))]


@pytest.mark.parametrize("to_type", TEST_NDARRAYS)
def test_luma_rule(to_type):
    rgb = np.random.default_rng(0).integers(0, 256, size=(3, 6, 5)).astype(np.uint8)
    out = UltrasoundToGrey()(to_type(rgb))
    assert tuple(out.shape) == (1, 6, 5) and out.dtype == torch.float32
    expected = sum(w * rgb[i].astype(np.float64) for i, w in enumerate(LUMA_WEIGHTS))
    np.testing.assert_allclose(out[0].numpy(), expected, atol=1e-3)


def test_grey_stored_as_colour_is_exact():
    grey = np.random.default_rng(1).integers(0, 256, size=(1, 7, 9)).astype(np.float32)
    out = UltrasoundToGrey()(np.repeat(grey, 3, axis=0))
    np.testing.assert_array_equal(out.numpy(), grey)
    rgba = np.concatenate([np.repeat(grey, 3, axis=0), np.zeros_like(grey)])
    np.testing.assert_array_equal(UltrasoundToGrey()(rgba).numpy(), grey)  # alpha ignored


def test_single_channel_passes_and_bad_channels_fail():
    x = MetaTensor(torch.rand(1, 4, 4))
    np.testing.assert_array_equal(UltrasoundToGrey()(x).numpy(), x.numpy())
    with pytest.raises(ValueError, match=r"1, 3 \(RGB\) or 4 \(RGBA\) channels first, got shape \(2, 4, 4\)"):
        UltrasoundToGrey()(torch.rand(2, 4, 4))
    with pytest.raises(ValueError, match="got 2"):
        rgb_to_grey(np.zeros((4, 4, 2)), channel_dim=-1)


def test_inverse_keeps_grid_and_pops_record():
    t = UltrasoundToGrey()
    out = t(MetaTensor(torch.rand(3, 4, 5)))
    assert out.meta["us_color"] == "grey" and len(out.applied_operations) == 1
    pred = out.clone()
    back = t.inverse(pred)
    assert back.shape == (1, 4, 5) and not back.applied_operations


def test_rgb_to_grey_channel_last_numpy():
    rgb = np.random.default_rng(2).random((5, 6, 3))
    g = rgb_to_grey(rgb, channel_dim=-1, keepdim=False)
    assert g.shape == (5, 6)
    np.testing.assert_allclose(g, rgb @ np.array(LUMA_WEIGHTS), atol=1e-12)
