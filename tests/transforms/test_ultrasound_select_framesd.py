"""SelectFramesd: image and per-frame label keep the same frames; Invertd restores the cine length."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from usgen_monai.transforms.ultrasound import SelectFramesD, SelectFramesd


def test_image_and_label_and_invertd():
    image = MetaTensor(torch.rand(1, 6, 5, 4))
    label = MetaTensor((torch.rand(1, 6, 5, 4) > 0.5).float())
    pre = Compose([SelectFramesd(keys=["image", "label"], frames=[1, 3])])
    data = pre({"image": image, "label": label})
    assert data["image"].shape == data["label"].shape == (1, 6, 5, 2)
    np.testing.assert_array_equal(data["label"].numpy(), label.numpy()[..., [1, 3]])
    data["pred"] = data["image"] > 0.5
    data = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True)(data)
    assert data["pred"].shape == (1, 6, 5, 4)
    assert not data["pred"][..., [0, 2]].any()
    np.testing.assert_array_equal(data["pred"][..., [1, 3]].numpy(), image.numpy()[..., [1, 3]] > 0.5)
    assert SelectFramesD is SelectFramesd
