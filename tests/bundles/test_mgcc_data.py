"""The bundle callables the MGCC configs use for data and weights: layouts, labeled splits, unlabeled sources, the
model-zoo weights file and the metrics JSON."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from usgen_monai.bundle import labeled_split, load_model_weights, resolve_layout, unlabeled_items, write_metrics_json
from usgen_monai.data.layouts import simulate_dataset
from usgen_monai.engines.checkpoint import save_checkpoint


@pytest.fixture(scope="module")
def busi(tmp_path_factory):
    root = tmp_path_factory.mktemp("busi")
    simulate_dataset(root, preset="breast", num=20, layout="busi", size=(32, 32), seed=3)
    return root


def test_resolve_layout(busi, tmp_path):
    assert resolve_layout(busi) == "busi" and resolve_layout(busi, "hc18") == "hc18"
    assert resolve_layout(tmp_path / "absent") == "folder"  # MONAI Label passes its own items


def test_labeled_split_is_disjoint_and_draws_few_labels(busi):
    parts = {s: labeled_split(busi, s, seed=0) for s in ("training", "validation", "test")}
    assert [len(p) for p in parts.values()] == [14, 3, 3]
    images = [{i["image"] for i in p} for p in parts.values()]
    assert not (images[0] & images[1] or images[0] & images[2] or images[1] & images[2])
    assert len(labeled_split(busi, "all")) == 20
    few = labeled_split(busi, "training", seed=0, num_items=4, sample_seed=1)
    assert len(few) == 4 and {i["image"] for i in few} <= images[0]
    assert few != labeled_split(busi, "training", seed=0, num_items=4, sample_seed=2)
    assert labeled_split(busi, "test", seed=0) == parts["test"]  # the test subset does not follow sample_seed


def test_labeled_split_errors_name_the_problem(busi, tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        labeled_split(tmp_path / "absent")
    with pytest.raises(ValueError, match="subset"):
        labeled_split(busi, "train")
    with pytest.raises(ValueError, match="is empty"):
        labeled_split(busi, "test", fractions=(0.9, 0.1, 0.0))
    (tmp_path / "unlabeled.json").write_text(json.dumps({"training": [{"image": str(next(busi.rglob("*).png")))}]}))
    with pytest.raises(ValueError, match="no label"):
        labeled_split(tmp_path / "unlabeled.json", "all")


def test_unlabeled_sources(busi, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for name in ("a.png", "b.jpg", "c.txt", ".hidden.png"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / name, format="PNG")
    datalist = tmp_path / "csg.json"
    datalist.write_text(json.dumps({"training": [{"image": "images/a.png", "label": "images/b.jpg"}]}))
    items = unlabeled_items([busi, folder, datalist])
    assert len(items) == 20 + 2 + 1 and all(set(i) == {"image"} for i in items)
    assert not any("_mask" in i["image"] for i in items)  # a labeled data set gives its images only
    assert items[-1]["image"] == os.path.join(tmp_path, "images/a.png")
    fallback = [{"image": "x.png", "label": "y.png"}]
    assert unlabeled_items([], fallback=fallback) == [{"image": "x.png"}] == unlabeled_items("", fallback)
    with pytest.raises(ValueError, match="neither a datalist"):
        unlabeled_items([tmp_path / "absent"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="holds no images"):
        unlabeled_items([tmp_path / "empty"])
    with pytest.raises(ValueError, match="no unlabeled sources"):
        unlabeled_items(None)


def test_load_model_weights_reads_every_layout(tmp_path):
    net = torch.nn.Linear(3, 2)
    state = {k: torch.full_like(v, 0.5) for k, v in net.state_dict().items()}
    torch.save(state, tmp_path / "plain.pt")
    torch.save({"model": state}, tmp_path / "nested.pt")
    save_checkpoint(tmp_path / "usgen.pt", {"mgcc": torch.nn.Linear(3, 2)})
    for name in ("plain.pt", "nested.pt"):
        loaded = load_model_weights(torch.nn.Linear(3, 2).train(), tmp_path / name)
        assert not loaded.training and torch.equal(loaded.weight, state["weight"])
    load_model_weights(torch.nn.Linear(3, 2), tmp_path / "usgen.pt")
    with pytest.raises(FileNotFoundError, match="train.json"):
        load_model_weights(net, tmp_path / "absent.pt", train_command="python -m monai.bundle run ... train.json")
    (tmp_path / "junk.pt").write_bytes(b"not torch")
    with pytest.raises(ValueError, match="junk.pt"):
        load_model_weights(net, tmp_path / "junk.pt")


def test_write_metrics_json(tmp_path):
    data = write_metrics_json(tmp_path / "m.json", {"test_mean_dice": np.float32(0.5)}, num_images=3)
    assert (
        data == json.loads((tmp_path / "m.json").read_text()) == {"metrics": {"test_mean_dice": 0.5}, "num_images": 3}
    )
