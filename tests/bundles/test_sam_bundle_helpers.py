"""The callables the SAM bundle configs use for weights, fine-tuning settings, synthetic pairs and pixel spacing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from usgen_monai.bundle import (
    load_sam_bundle_weights,
    sam_evaluation_metrics,
    sam_learning_rate,
    sam_train_parts,
    synthetic_pairs,
    synthetic_share,
    with_pixel_spacing,
)
from usgen_monai.engines.sam_training import TargetMaskd
from usgen_monai.networks.sam import build_sam


def test_train_parts_and_learning_rate_follow_the_start():
    assert sam_train_parts("auto", "") == "all" and sam_train_parts("auto", "sam.pth") == "mask_decoder"
    assert sam_train_parts("decoder") == "mask_decoder" and sam_train_parts("full", "sam.pth") == "all"
    with pytest.raises(ValueError, match="train_mode"):
        sam_train_parts("encoder")
    assert sam_learning_rate("auto", "sam.pth") == 1e-5 and sam_learning_rate("auto", "") == 2e-4
    assert sam_learning_rate(3e-3, "sam.pth") == 3e-3
    assert synthetic_share(0.5, 0) == 0.0 and synthetic_share(0.5, 3) == 0.5


def test_bundle_weights_from_model_pt_or_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    trained = build_sam("tiny")
    torch.save(trained.state_dict(), tmp_path / "model.pt")
    net = load_sam_bundle_weights(build_sam("tiny"), tmp_path / "model.pt")
    torch.testing.assert_close(net.state_dict(), trained.state_dict())
    assert not net.training
    net = load_sam_bundle_weights(build_sam("tiny"), tmp_path / "absent.pt", checkpoint=tmp_path / "model.pt")
    torch.testing.assert_close(net.state_dict(), trained.state_dict())
    with pytest.raises(FileNotFoundError, match="absent.pt.*train it"):
        load_sam_bundle_weights(build_sam("tiny"), tmp_path / "absent.pt", train_command="train it")


def test_synthetic_pairs_take_the_target_classes_of_each_preset(tmp_path):
    datalist = {"target_labels": {"fetal_head": [13, 14], "breast": [8]},
                "training": [{"image": "a.png", "label": "a_l.png", "context": {"preset": "fetal_head"}},
                             {"image": "b.png", "label": "b_l.png", "context": {"preset": "breast"}}]}  # fmt: skip
    for name in ("a.png", "a_l.png", "b.png", "b_l.png"):
        (tmp_path / name).touch()  # the datalist's files are checked to exist
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    items = synthetic_pairs(str(tmp_path / "datalist.json"))
    assert [i["target_labels"] for i in items] == [[13, 14], [8]]
    assert items[0]["image"] == str(tmp_path / "a.png")
    assert synthetic_pairs([]) == [] and synthetic_pairs("") == []
    datalist["training"][1]["context"]["preset"] = "msk"
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    with pytest.raises(ValueError, match="preset 'msk' has no entry"):
        synthetic_pairs(tmp_path)
    label = torch.tensor([[[0, 13, 14], [8, 2, 13]]], dtype=torch.float32)
    out = TargetMaskd("label")({"label": label, "target_labels": [13, 14]})
    assert out["label"].tolist() == [[[0, 1, 1], [0, 0, 1]]] and "target_labels" not in out
    assert TargetMaskd("label")({"label": label})["label"] is label  # real pairs pass unchanged


def test_pixel_spacing_from_the_item_its_context_or_a_default():
    items = [
        {"image": "a", "pixel_spacing_mm": [0.2, 0.3]},
        {"image": "b", "context": {"pixel_spacing_mm": [0.5, 0.5]}},
    ]
    assert [i["pixel_spacing_mm"] for i in with_pixel_spacing(items)] == [[0.2, 0.3], [0.5, 0.5]]
    assert with_pixel_spacing([{"image": "c"}], default=[1, 1])[0]["pixel_spacing_mm"] == [1.0, 1.0]
    with pytest.raises(ValueError, match="c: no pixel spacing"):
        with_pixel_spacing([{"image": "c"}])
    assert np.isfinite(with_pixel_spacing(items)[0]["pixel_spacing_mm"]).all()


def test_evaluation_metrics_take_command_line_flags():
    assert set(sam_evaluation_metrics("false")) == {"test_mean_iou"}
    assert set(sam_evaluation_metrics("true")) == {"test_mean_iou", "test_hc_abs_error_mm", "test_hc_rel_error"}
    with pytest.raises(ValueError, match="true or false"):
        sam_evaluation_metrics("maybe")
