"""UltrasoundToGreyd: dictionary form; Invertd passes a prediction through it."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from usgen_monai.transforms.ultrasound import UltrasoundToGreyd, UltrasoundToGreyDict


def test_converts_image_and_inverts_prediction():
    image = MetaTensor(torch.rand(3, 8, 6))
    pre = Compose([UltrasoundToGreyd(keys="image")])
    data = pre({"image": image, "label": torch.ones(1, 8, 6)})
    assert data["image"].shape == (1, 8, 6)
    np.testing.assert_allclose(
        data["image"][0].numpy(), (0.299 * image[0] + 0.587 * image[1] + 0.114 * image[2]).numpy(), atol=1e-6
    )
    data["pred"] = torch.stack([1 - data["image"][0], data["image"][0]])  # two class channels
    data["pred"] = MetaTensor(data["pred"], meta=data["image"].meta)
    out = Invertd(keys="pred", transform=pre, orig_keys="image")(data)
    assert out["pred"].shape == (2, 8, 6)  # class channels untouched: the grid did not change
    assert UltrasoundToGreyDict is UltrasoundToGreyd
