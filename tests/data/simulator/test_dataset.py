from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from monai.transforms import Compose, EnsureTyped, RandFlipd

from usgen_monai.data.simulator import UNIFIED_CLASSES, SimulatedUltrasoundDataset, sample_seed


def test_items_are_channel_first_and_deterministic():
    ds = SimulatedUltrasoundDataset("msk", num_samples=4, size=48, seed=10, findings=["effusion"])
    assert len(ds) == 4
    a, b = ds[2], ds[2]
    assert a["image"].shape == a["label"].shape == a["label_map"].shape == (1, 48, 48)
    np.testing.assert_array_equal(a["image"], b["image"])
    assert a["context"]["seed"] == sample_seed(10, 2) and a["context"]["finding"] == "effusion"


def test_works_with_monai_transforms_and_dataloader():
    t = Compose([EnsureTyped(keys=["image", "label"]), RandFlipd(keys=["image", "label"], prob=1.0, spatial_axis=1)])
    ds = SimulatedUltrasoundDataset("breast", num_samples=4, size=32, transform=t, unified_labels=True)
    batch = next(iter(DataLoader(ds, batch_size=2, num_workers=0)))
    assert isinstance(batch["image"], torch.Tensor) and batch["image"].shape == (2, 1, 32, 32)
    assert int(batch["label_map"].max()) < len(UNIFIED_CLASSES)
    plain = SimulatedUltrasoundDataset("breast", num_samples=4, size=32)[0]
    np.testing.assert_allclose(ds[0]["image"].numpy(), plain["image"][..., ::-1])


def test_bad_findings_rejected():
    with pytest.raises(ValueError, match="findings"):
        SimulatedUltrasoundDataset("fetal_head", findings=["malignant"])


def test_context_image_shares_the_acquisition_and_context_is_flat():
    fields = ("preset", "finding", "probe", "depth_mm", "frequency_mhz", "gain_db", "dynamic_range_db")
    ds = SimulatedUltrasoundDataset("breast", num_samples=2, size=48, with_context_image=True, context_fields=fields)
    item = ds[1]
    assert tuple(item["context"]) == fields
    assert item["context_image"].shape == (1, 48, 48)
    assert not np.array_equal(item["context_image"], item["image"])
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["context_image"].shape == (2, 1, 48, 48) and len(batch["context"]["gain_db"]) == 2
    with pytest.raises(ValueError, match="not simulator context fields"):
        SimulatedUltrasoundDataset("breast", num_samples=1, size=32, context_fields=["colour"])[0]


def test_sample_with_given_acquisition_reproduces_the_look():
    from usgen_monai.data.simulator import UltrasoundSimulator

    sim = UltrasoundSimulator("msk", 64)
    a = sim.sample(seed=1)
    b = sim.sample(seed=2, acquisition=a.acquisition)
    for key in ("depth_mm", "frequency_mhz", "gain_db", "dynamic_range_db"):
        assert a.context[key] == b.context[key]
    assert not np.array_equal(a.label, b.label)
