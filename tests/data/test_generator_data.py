"""Training the CSG generator on a user's data set: BUSI and HC18 layouts read into unified-class items, bad files
skipped and reported, context images from the data set, and a context bank of the user's images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import DataLoader
from PIL import Image

from usgen_monai.data.datasets import DatasetLayoutError
from usgen_monai.data.generator_data import UserGeneratorDataset, generator_training_dataset
from usgen_monai.data.layouts import simulate_dataset
from usgen_monai.data.simulator import UNIFIED_CLASSES
from usgen_monai.engines import simulator_vocabulary

LESION = UNIFIED_CLASSES.index("lesion")
BRAIN = UNIFIED_CLASSES.index("brain")


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    root = tmp_path_factory.mktemp("busi")
    simulate_dataset(root, preset="breast", num=9, layout="busi", size=(48, 64), seed=3)
    # a lesion in two parts: a second mask file that the reader must merge by OR
    image = sorted((root / "benign").glob("* (*).png"))[0] if (root / "benign").is_dir() else None
    assert image is not None
    second = np.zeros((48, 64), np.uint8)
    second[2:6, 2:6] = 255
    Image.fromarray(second).save(image.with_name(image.stem + "_mask_1.png"))
    # a broken image with a valid mask: skipped and reported, not fatal
    (root / "benign" / "broken (99).png").write_bytes(b"not a png")
    Image.fromarray(np.zeros((48, 64), np.uint8)).save(root / "benign" / "broken (99)_mask.png")
    return root, image


def test_busi_items_are_unified_and_bad_files_are_skipped(busi):
    root, two_part = busi
    ds = UserGeneratorDataset(root, "breast", size=(32, 32), with_context_image=True, seed=1)
    assert len(ds) == 9
    assert [p for p, _ in ds.skipped] == [str(root / "benign" / "broken (99).png")]
    assert "broken (99).png" in ds.skipped[0][1]
    for index in range(len(ds)):
        item = ds[index]
        assert item["image"].shape == (1, 32, 32) and item["image"].dtype == np.float32
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        assert set(np.unique(item["label_map"]).tolist()) <= {0, LESION}
        np.testing.assert_array_equal(item["label"], item["label_map"] > 0)
        assert item["context"]["preset"] == "breast"
        folder = item["image_path"].split("/")[-2]
        assert item["context"]["finding"] == folder  # the BUSI class folder is the finding
        assert np.isnan(item["context"]["gain_db"]) and item["context"]["probe"] == ""
        other = ds.context_index(index)
        assert other != index
        np.testing.assert_array_equal(item["context_image"], ds[other]["image"])
    # the second mask file of the two-part lesion is in the label (top-left corner of the 48x64 mask)
    merged = next(ds[i] for i in range(len(ds)) if ds[i]["image_path"] == str(two_part))
    assert merged["label_map"][0, 2, 2] == LESION
    # batches collate and encode like the simulator's
    batch = next(iter(DataLoader(ds, batch_size=4)))
    categorical, scalars = simulator_vocabulary().encode(batch["context"], batch_size=4)
    assert categorical[:, 0].tolist() == [1, 1, 1, 1]  # breast
    assert torch.isnan(scalars).all()


def test_hc18_outlines_are_filled(tmp_path):
    simulate_dataset(tmp_path, preset="fetal_head", num=3, layout="hc18", size=(64, 64), seed=0)
    ds = generator_training_dataset(str(tmp_path), presets=["fetal_head"], size=(64, 64))
    item = ds[0]
    inside = item["label_map"][0] == BRAIN
    # a filled head, not a two-pixel outline
    assert inside.sum() > 200
    assert item["context"]["finding"] == ""  # HC18 says nothing of findings


def test_errors_name_the_problem(tmp_path, busi):
    root, _ = busi
    with pytest.raises(ValueError, match="one preset"):
        generator_training_dataset(str(root), presets=["breast", "msk"])
    with pytest.raises(ValueError, match="unknown preset"):
        UserGeneratorDataset(root, "liver")
    with pytest.raises(ValueError, match="not a finding of preset 'breast'"):
        UserGeneratorDataset(root, "breast", finding="tendon_tear")
    with pytest.raises(DatasetLayoutError, match=str(tmp_path)):
        UserGeneratorDataset(tmp_path, "breast")
    bad = tmp_path / "bad"
    (bad / "benign").mkdir(parents=True)
    (bad / "benign" / "a (1).png").write_bytes(b"junk")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(bad / "benign" / "a (1)_mask.png")
    with pytest.raises(ValueError, match=r"no usable item .* 1 skipped"):
        UserGeneratorDataset(bad, "breast")


def test_label_maps_keep_their_classes(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "masks").mkdir()
    label = np.zeros((32, 32), np.uint8)
    label[4:20, 4:20] = UNIFIED_CLASSES.index("tendon")
    label[8:12, 8:12] = UNIFIED_CLASSES.index("tear")
    Image.fromarray(label).save(tmp_path / "masks" / "a.png")
    Image.fromarray((np.arange(32 * 32).reshape(32, 32) % 256).astype(np.uint8)).save(tmp_path / "images" / "a.png")
    item = UserGeneratorDataset(tmp_path, "msk", size=(32, 32))[0]
    np.testing.assert_array_equal(item["label_map"][0], label)
    assert item["context"]["finding"] == ""


def test_training_and_validation_subsets_split_the_data_set(busi):
    root, _ = busi
    training = UserGeneratorDataset(root, "breast", size=(32, 32), subset="training", validation_fraction=0.3)
    validation = UserGeneratorDataset(root, "breast", size=(32, 32), subset="validation", validation_fraction=0.3)
    names = lambda ds: {ds[i]["image_path"] for i in range(len(ds))}  # noqa: E731
    assert names(training).isdisjoint(names(validation))
    assert len(training) + len(validation) == 9 and len(validation) >= 2
    with pytest.raises(ValueError, match="subset must be one of"):
        generator_training_dataset(str(root), presets=["breast"], subset="test")
    with pytest.raises(ValueError, match="validation_fraction"):
        generator_training_dataset("simulator", subset="validation", validation_fraction=1.0)
