"""The SAM bundle's training configs on tiny simulated fetal heads (the ``tiny`` architecture, 64 px): train.json with
real pairs and CSG-style synthetic pairs (label maps with ``target_labels``) mixed at a ratio, resume, decoder-only
vs full fine-tuning, evaluate.json with Dice and head-circumference error, and multi_gpu_train.json under torchrun
with two CPU processes (gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from PIL import Image

from usgen_monai.data.layouts import simulate_dataset

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "sam" / "configs"
TINY = {"architecture": "tiny"}
SMALL_RUN = {"max_epochs": 1, "batch_size": 2, "seed": 1}


def _csg_like(root: Path) -> Path:
    """A CSG-style datalist of synthetic pairs: label maps of several classes, the task's classes in
    ``target_labels`` (as the CSG bundle writes them), ``context.preset`` per item."""
    simulate_dataset(root / "sim", preset="fetal_head", num=3, layout="monai", size=(48, 56), seed=9, split=(1.0,))
    items, targets = [], set()
    for item in json.loads((root / "sim" / "datalist.json").read_text())["training"]:
        binary = np.asarray(Image.open(root / "sim" / item["label"])) > 0
        label_map = np.asarray(Image.open(root / "sim" / item["label_multiclass"]))
        targets |= set(np.unique(label_map[binary]).tolist())
        items.append({"image": f"sim/{item['image']}", "label": f"sim/{item['label_multiclass']}",
                      "context": {"preset": "fetal_head"}})  # fmt: skip
    datalist = {"synthetic": True, "target_labels": {"fetal_head": sorted(int(t) for t in targets)}, "training": items}
    (root / "datalist.json").write_text(json.dumps(datalist))
    return root / "datalist.json"


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """12 real fetal heads at 64 px (MONAI layout; training, validation and test lists of at least 2 items, so that
    two ranks each validate) and 3 synthetic pairs."""
    root = tmp_path_factory.mktemp("sam_data")
    simulate_dataset(root / "real", preset="fetal_head", num=12, layout="monai", size=(64, 64), seed=0,
                     split=(0.6, 0.2, 0.2))  # fmt: skip
    return {"real": root / "real", "synthetic": _csg_like(root / "csg")}


def _run(out: Path, data: dict, configs=("train.json",), **overrides) -> None:
    settings = {"synthetic": [str(data["synthetic"])], **TINY, **SMALL_RUN, **overrides}
    bundle_run(
        config_file=[str(CONFIGS / c) for c in configs],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        dataset_dir=str(data["real"]),
        output_dir=str(out / "runs"),
        ckpt_dir=str(out / "models"),
        **settings,
    )


def _num_real(data, subset: str = "training") -> int:
    return len(json.loads((data["real"] / "datalist.json").read_text())[subset])


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sam_train")
    _run(out, data)
    return out


def test_train_writes_best_weights_and_a_resumable_checkpoint(trained, data):
    weights = torch.load(trained / "models" / "model.pt", weights_only=True)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "inference.json"))
    parser.update(TINY)
    parser.get_parsed_content("network_def").load_state_dict(weights)  # the inference config's network takes it
    rolling = torch.load(trained / "runs" / "checkpoint.pt", weights_only=True)
    assert {"sam", "optimizer", "best_weights", "trainer"} <= set(rolling["state_dicts"])
    # at synthetic fraction 0.5 an epoch is every real item and as many synthetic ones, batch 2
    assert rolling["state_dicts"]["trainer"]["iteration"] == math.ceil(2 * _num_real(data) / 2)
    assert rolling["constants"]["architecture"] == "tiny" and rolling["constants"]["train_parts"] == "all"
    assert rolling["constants"]["sam"]["image_size"] == 64


def test_train_resumes_and_continues_the_count(trained, data):
    per_epoch = math.ceil(2 * _num_real(data) / 2)
    _run(trained, data, max_epochs=2)
    rolling = torch.load(trained / "runs" / "checkpoint.pt", weights_only=True)["state_dicts"]
    assert rolling["trainer"]["iteration"] == 2 * per_epoch and rolling["trainer"]["max_epochs"] == 2
    assert rolling["best_weights"]["best_epoch"] in (1, 2)


def test_the_loader_mixes_real_and_synthetic_pairs_with_box_prompts(data, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(data["real"]), "synthetic": [str(data["synthetic"])], "output_dir": str(tmp_path),
                   "ckpt_dir": str(tmp_path), "synthetic_fraction": 0.25, **TINY})  # fmt: skip
    synthetic = parser.get_parsed_content("train#synthetic_dataset")
    assert len(synthetic) == 3
    for k in range(3):  # label maps became the binary task mask through target_labels, prompts on it
        item = synthetic[k]
        assert set(torch.unique(item["label"]).tolist()) == {0.0, 1.0} and tuple(item["image"].shape) == (1, 64, 64)
        x0, y0, x1, y1 = item["boxes"][0].tolist()
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64
    sampler = parser.get_parsed_content("train#sampler")
    total = math.ceil(_num_real(data) / 0.75)
    assert (sampler.num_real_samples, sampler.num_synthetic_samples) == (total - round(total / 4), round(total / 4))
    epoch = sampler.epoch_indices(0)
    assert sum(i >= _num_real(data) for i in epoch) == round(total / 4) and len(epoch) == total
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    assert tuple(batch["image"].shape) == (4, 1, 64, 64) and tuple(batch["boxes"].shape) == (4, 1, 4)
    # no synthetic pairs: real-only training without touching the fraction
    parser["synthetic"] = []
    assert parser.get_parsed_content("train#sampler", lazy=False).num_synthetic_samples == 0


def test_click_prompt_training_mixes_boxes_and_clicks(data, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(data["real"]), "output_dir": str(tmp_path), "ckpt_dir": str(tmp_path),
                   "click_prompt_prob": 0.5, "batch_size": 8, "seed": 3, **TINY})  # fmt: skip
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    no_box = torch.isnan(batch["boxes"]).all(-1)[:, 0]
    clicked = ~(batch["point_labels"] == -1).all(-1)[:, 0]
    assert tuple(batch["points"].shape[1:]) == (1, 2, 2) and bool(no_box.any()) and bool((~no_box).any())
    assert torch.equal(no_box, clicked)  # each item is prompted by a box or by clicks
    _run(tmp_path, data, click_prompt_prob=1.0)  # clicks only, empty masks included: trains and validates
    assert (tmp_path / "models" / "model.pt").is_file()


def test_augmentation_moves_image_mask_and_box_together(tmp_path):
    """Rotation, scaling, translation and contrast (``affine_prob`` 1): an image that is its own mask stays on its
    mask (the image is resampled bilinearly, the mask by nearest neighbour), the box is drawn on the moved mask, and
    the objects really move; ``affine_prob`` 0 and ``contrast_prob`` 0 leave only the flip."""
    yy, xx = np.mgrid[:64, :64]
    mask = (((yy - 30) / 14.0) ** 2 + ((xx - 34) / 9.0) ** 2 <= 1).astype(np.uint8) * 255
    (tmp_path / "images").mkdir()
    Image.fromarray(mask).save(tmp_path / "images" / "disk.png")
    item = {"image": "images/disk.png", "label": "images/disk.png"}
    (tmp_path / "datalist.json").write_text(json.dumps({"training": [item] * 12, "validation": [item], "test": [item]}))

    def samples(**overrides):
        parser = ConfigParser()
        parser.read_config(str(CONFIGS / "train.json"))
        parser.update({"dataset_dir": str(tmp_path), "output_dir": str(tmp_path), "ckpt_dir": str(tmp_path),
                       "box_margin_range": [0, 0], "cache_rate": 0.0, **TINY, **overrides})  # fmt: skip
        return [parser.get_parsed_content("train#dataset")[k] for k in range(12)]

    moved = samples(affine_prob=1.0, contrast_prob=1.0)
    centres = []
    for sample in moved:
        label, image = sample["label"][0] > 0.5, sample["image"][0] > 0.5
        assert (label & image).sum() / (label | image).sum() > 0.9  # image and mask moved together
        rows, cols = torch.nonzero(label, as_tuple=True)
        x0, y0, x1, y1 = sample["boxes"][0].tolist()  # margin 0: the box is the moved mask's bounding box
        assert abs(x0 - cols.min().item()) <= 1 and abs(x1 - cols.max().item() - 1) <= 1
        assert abs(y0 - rows.min().item()) <= 1 and abs(y1 - rows.max().item() - 1) <= 1
        centres.append((rows.float().mean().item(), cols.float().mean().item(), label.sum().item()))
    centres = np.asarray(centres)
    assert centres[:, :2].std(0).max() > 1.0 and centres[:, 2].std() > 10  # translated and scaled
    still = samples(affine_prob=0.0, contrast_prob=0.0)
    areas = {int((s["label"][0] > 0.5).sum()) for s in still}
    assert len(areas) == 1  # flips only: the same object every time


@pytest.mark.parametrize(
    "overrides, trained_parts, learning_rate",
    [
        ({}, {"image_encoder", "prompt_encoder", "mask_decoder"}, 2e-4),  # from scratch: everything
        ({"train_mode": "decoder"}, {"mask_decoder"}, 2e-4),
        ({"train_mode": "full", "learning_rate": 1e-3}, {"image_encoder", "prompt_encoder", "mask_decoder"}, 1e-3),
    ],
)
def test_decoder_only_or_full_fine_tuning(data, tmp_path, overrides, trained_parts, learning_rate):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(data["real"]), "output_dir": str(tmp_path), **TINY, **overrides})
    optimizer = parser.get_parsed_content("train#optimizer")
    network = parser.get_parsed_content("network")
    assert {n.split(".")[0] for n, p in network.named_parameters() if p.requires_grad} == trained_parts
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in network.parameters() if p.requires_grad
    )
    assert optimizer.param_groups[0]["lr"] == pytest.approx(learning_rate)


def test_fine_tuning_a_published_checkpoint_trains_the_decoder_at_the_papers_rate(data, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(data["real"]), "output_dir": str(tmp_path), **TINY})
    torch.manual_seed(3)
    published = parser.get_parsed_content("network_def", lazy=False)
    torch.save(published.state_dict(), tmp_path / "published.pth")
    parser["checkpoint"] = str(tmp_path / "published.pth")
    network = parser.get_parsed_content("network", lazy=False)
    torch.testing.assert_close(network.state_dict(), published.state_dict())
    assert {n.split(".")[0] for n, p in network.named_parameters() if p.requires_grad} == {"mask_decoder"}
    assert parser.get_parsed_content("train#optimizer", lazy=False).param_groups[0]["lr"] == pytest.approx(1e-5)


def test_evaluate_writes_dice_and_head_circumference_error(trained, data):
    metrics_path = trained / "eval" / "metrics.json"
    before = (trained / "models" / "model.pt").read_bytes()
    _run(trained, data, configs=("train.json", "evaluate.json"), metrics_path=str(metrics_path),
         head_circumference=True)  # fmt: skip
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics["metrics"]) == {"test_mean_dice", "test_mean_iou", "test_hc_abs_error_mm", "test_hc_rel_error"}
    assert (
        metrics["num_images"] == _num_real(data, "test")
        and metrics["test_subset"] == "test"
        and metrics["architecture"] == "tiny"
    )
    assert 0 <= metrics["metrics"]["test_mean_dice"] <= 1 and metrics["metrics"]["test_hc_abs_error_mm"] >= 0
    assert (trained / "models" / "model.pt").read_bytes() == before  # evaluation never writes weights


def test_evaluate_with_clicks(trained, data, tmp_path):
    """``--eval_prompt click`` scores one click per image at the mask's most interior pixel (the model sees points
    and no box); an unknown prompt is refused by name."""
    metrics_path = tmp_path / "click_metrics.json"
    _run(trained, data, configs=("train.json", "evaluate.json"), metrics_path=str(metrics_path), eval_prompt="click")
    metrics = json.loads(metrics_path.read_text())
    assert metrics["prompts"].startswith("one click per image") and 0 <= metrics["metrics"]["test_mean_dice"] <= 1
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update(ConfigParser.load_config_file(str(CONFIGS / "evaluate.json")))
    parser.update({"dataset_dir": str(data["real"]), "output_dir": str(tmp_path), "eval_prompt": "click", **TINY})
    item = parser.get_parsed_content("validate#dataset")[0]
    assert "boxes" not in item and item["points"].shape == (1, 1, 2) and item["point_labels"].tolist() == [[1]]
    parser["eval_prompt"] = "clik"
    with pytest.raises(RuntimeError) as error:
        parser.get_parsed_content("validate#dataset", lazy=False)
    assert "eval_prompt must be one of ('box', 'click'), got eval_prompt='clik'" in repr(error.value.__cause__)


def test_evaluate_scores_on_the_original_grid(data, tmp_path):
    """A perfect model-frame prediction through evaluate.json's pipeline gives the label back on the original,
    non-square grid (no larger than the frame, so exactly), hence Dice 1 and head-circumference error 0."""
    simulate_dataset(tmp_path / "wide", preset="fetal_head", num=6, layout="monai", size=(36, 56), seed=4)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update(ConfigParser.load_config_file(str(CONFIGS / "evaluate.json")))
    parser.update({"dataset_dir": str(tmp_path / "wide"), "test_subset": "training", "head_circumference": True,
                   "output_dir": str(tmp_path), **TINY})  # fmt: skip
    dataset = parser.get_parsed_content("validate#dataset")
    post = parser.get_parsed_content("validate#postprocessing")
    item = dataset[0]
    assert tuple(item["label_original"].shape) == (1, 56, 36) and tuple(item["image"].shape) == (1, 64, 64)
    logits = item["label"] * 20.0 - 10.0  # the model-frame mask as logits
    out = post({**item, "pred": logits})
    assert torch.equal(out["pred"].bool(), item["label_original"].bool())
    from usgen_monai.metrics import head_circumference_error

    assert head_circumference_error(out["pred"], out["label"], item["pixel_spacing_mm"], True)["abs_error_mm"] == 0


@pytest.mark.slow
def test_multi_gpu_config_with_two_cpu_processes(data, tmp_path):
    overrides = {
        **TINY,
        **SMALL_RUN,
        "dataset_dir": str(data["real"]),
        "synthetic": [str(data["synthetic"])],
        "output_dir": str(tmp_path / "runs"),
        "ckpt_dir": str(tmp_path / "models"),
        "train_mode": "decoder",
    }  # fmt: skip  (frozen parts under DDP)
    args = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
        "-m", "monai.bundle", "run",
        "--config_file", str([str(CONFIGS / "train.json"), str(CONFIGS / "multi_gpu_train.json")]),
        "--meta_file", str(CONFIGS / "metadata.json"),
    ]  # fmt: skip
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    weights = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in weights)  # DDP wrapped the network, the file holds the module's
    rolling = torch.load(tmp_path / "runs" / "checkpoint.pt", weights_only=True)
    per_rank = math.ceil(2 * _num_real(data) / 2)  # the epoch's real + synthetic samples split over 2 ranks, batch 2
    assert rolling["state_dicts"]["trainer"]["iteration"] == math.ceil(per_rank / 2)
