"""CropToUltrasoundRegiond: image and label cropped alike, and Invertd maps a prediction back."""

from __future__ import annotations

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, Invertd

from usgen_monai.transforms.ultrasound import CropToUltrasoundRegionD, CropToUltrasoundRegiond
from usgen_monai.transforms.ultrasound import UltrasoundMetaKeys as K


def sample():
    image = MetaTensor(
        torch.rand(1, 30, 20), meta={K.REGION_ROI_START: np.array([5, 2]), K.REGION_ROI_END: np.array([25, 18])}
    )
    label = MetaTensor((torch.rand(1, 30, 20) > 0.5).float())  # e.g. from a PNG: no region metadata
    return {"image": image, "label": label}


def test_source_key_crops_every_key_alike():
    data = sample()
    out = CropToUltrasoundRegiond(keys=["image", "label"], source_key="image", margin=1)(data)
    assert out["image"].shape == out["label"].shape == (1, 22, 18)
    np.testing.assert_array_equal(out["label"].numpy(), data["label"].numpy()[:, 4:26, 1:19])
    np.testing.assert_array_equal(out["image"].numpy(), data["image"].numpy()[:, 4:26, 1:19])


def test_invertd_puts_prediction_back_on_the_original_grid():
    data = sample()
    pre = Compose([CropToUltrasoundRegiond(keys="image")])
    out = pre(data)
    out["pred"] = (out["image"] > 0.5).float()
    out = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True)(out)
    assert out["pred"].shape == (1, 30, 20)
    expected = np.zeros((1, 30, 20), dtype=np.float32)
    expected[:, 5:25, 2:18] = data["image"].numpy()[:, 5:25, 2:18] > 0.5
    np.testing.assert_array_equal(out["pred"].numpy(), expected)


def test_inverse_and_alias():
    assert CropToUltrasoundRegionD is CropToUltrasoundRegiond
    data = sample()
    t = CropToUltrasoundRegiond(keys=["image"], allow_missing_keys=True)
    back = t.inverse(t(data))
    assert back["image"].shape == (1, 30, 20) and back["label"] is data["label"]
