"""The MGCC training configs on a tiny simulated data set: train.json with labeled and unlabeled images (a folder in
the BUSI layout and a CSG-style datalist), resume, the fallback without unlabeled images, evaluate.json, and
multi_gpu_train.json under torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run

from usgen_monai.data.layouts import simulate_dataset

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "mgcc" / "configs"
#: a tiny network at 32x32 (the ConvMixer stages one layer deep)
TINY = {"network_def#channels": [4, 4, 4, 8, 8], "network_def#mixer_depth": 1, "image_size": [32, 32]}
SMALL_RUN = {"max_epochs": 1, "labeled_batch_size": 2, "unlabeled_batch_size": 2, "seed": 1}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """14 labeled images (MONAI layout: 10 training, 2 validation, 2 test) and 6 unlabeled ones as a BUSI folder and
    as a CSG-style datalist (``training`` items with image and label)."""
    root = tmp_path_factory.mktemp("mgcc_data")
    simulate_dataset(root / "labeled", preset="breast", num=14, layout="monai", size=(48, 48), seed=0)
    simulate_dataset(root / "unlabeled_busi", preset="breast", num=3, layout="busi", size=(48, 48), seed=7)
    simulate_dataset(root / "csg", preset="breast", num=3, layout="monai", size=(48, 48), seed=9, split=(1.0,))
    return {
        "root": root,
        "labeled": root / "labeled",
        "unlabeled": [root / "unlabeled_busi", root / "csg" / "datalist.json"],
    }


def _train(out: Path, data: dict, config: str = "train.json", **overrides) -> None:
    settings = {"unlabeled": [str(p) for p in data["unlabeled"]], **TINY, **SMALL_RUN, **overrides}
    bundle_run(
        config_file=[str(CONFIGS / "train.json")] + ([str(CONFIGS / config)] if config != "train.json" else []),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        dataset_dir=str(data["labeled"]),
        output_dir=str(out / "runs"),
        ckpt_dir=str(out / "models"),
        **settings,
    )


def _labeled_training_items(data) -> int:
    return len(json.loads((data["labeled"] / "datalist.json").read_text())["training"])


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("mgcc_train")
    _train(out, data)
    return out


def test_train_writes_best_weights_and_a_resumable_checkpoint(trained, data):
    weights = torch.load(trained / "models" / "model.pt", weights_only=True)
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update(TINY)
    parser.get_parsed_content("network_def").load_state_dict(weights)  # a plain state dict of network_def
    rolling = torch.load(trained / "runs" / "checkpoint.pt", weights_only=True)
    assert {"mgcc", "optimizer", "best_weights", "trainer"} <= set(rolling["state_dicts"])
    assert rolling["state_dicts"]["trainer"]["iteration"] == math.ceil(_labeled_training_items(data) / 2)
    assert rolling["state_dicts"]["best_weights"]["best_epoch"] == 1
    assert rolling["constants"]["channel_def"] == {"0": "background", "1": "lesion"}


def test_train_resumes_and_continues_the_count(trained, data):
    per_epoch = math.ceil(_labeled_training_items(data) / 2)
    _train(trained, data, max_epochs=2)
    rolling = torch.load(trained / "runs" / "checkpoint.pt", weights_only=True)["state_dicts"]
    assert rolling["trainer"]["iteration"] == 2 * per_epoch and rolling["trainer"]["max_epochs"] == 2
    lr = rolling["optimizer"]["param_groups"][0]["lr"]  # the poly schedule went on where it stopped
    assert lr == pytest.approx(0.01 * (1 - (2 * per_epoch - 1) / (2 * per_epoch)) ** 0.9)
    assert rolling["best_weights"]["best_epoch"] in (1, 2)


def test_the_training_pieces_see_both_data_sets(data, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(data["labeled"]), "unlabeled": [str(p) for p in data["unlabeled"]],
                   "output_dir": str(tmp_path), "ckpt_dir": str(tmp_path), **TINY, **SMALL_RUN})  # fmt: skip
    unlabeled = parser.get_parsed_content("train#unlabeled_dataset#data")
    assert len(unlabeled) == 6 and all(set(item) == {"image"} for item in unlabeled)
    batch = next(iter(parser.get_parsed_content("train#unlabeled_dataloader")))
    assert tuple(batch["image"].shape) == (2, 1, 32, 32) and "label" not in batch
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    assert tuple(batch["label"].shape) == (2, 1, 32, 32) and set(batch["label"].unique().tolist()) <= {0.0, 1.0}
    trainer = parser.get_parsed_content("train#trainer")
    assert trainer.consistency_weight(0, 1000) == pytest.approx(7.0 * math.exp(-5.0))
    # no unlabeled sources: the labeled training images are the unlabeled set
    parser["unlabeled"] = []
    fallback = parser.get_parsed_content("train#unlabeled_dataset#data", lazy=False)
    assert [i["image"] for i in fallback] == [i["image"] for i in parser.get_parsed_content("train#dataset#data")]
    validation = parser.get_parsed_content("validate#dataset#data")
    test = ConfigParser.load_config_file(str(data["labeled"] / "datalist.json"))["test"]
    assert {i["image"] for i in validation}.isdisjoint(os.path.join(data["labeled"], t["image"]) for t in test)


def test_pretrained_path_starts_from_given_weights_and_patches_crop(trained, data, tmp_path):
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    parser.update({"dataset_dir": str(data["labeled"]), "unlabeled": [], "output_dir": str(tmp_path),
                   "ckpt_dir": str(tmp_path), **TINY, **SMALL_RUN, "train_patch_size": [16, 32],
                   "vertical_flip_prob": 0.0, "rotate90_prob": 0.0,
                   "pretrained_path": str(trained / "models" / "model.pt")})  # fmt: skip
    for step in parser.get_parsed_content("initialize"):
        pass  # instantiating the list runs it: determinism, then the given weights
    shipped = torch.load(trained / "models" / "model.pt", weights_only=True)
    state = parser.get_parsed_content("network_def").state_dict()
    assert all(torch.equal(state[k], shipped[k]) for k in shipped)
    batch = next(iter(parser.get_parsed_content("train#dataloader")))
    assert tuple(batch["image"].shape) == (2, 1, 16, 32) and tuple(batch["label"].shape) == (2, 1, 16, 32)
    flips = [t for t in parser.get_parsed_content("train#random_transforms") if type(t).__name__ == "RandFlipd"]
    assert [f.flipper.spatial_axis for f in flips] == [0, 1] and [f.prob for f in flips] == [0.5, 0.0]


def test_evaluate_writes_dice_and_iou_on_the_test_images(trained, data):
    metrics_path = trained / "eval" / "metrics.json"
    before = (trained / "models" / "model.pt").read_bytes()
    _train(trained, data, config="evaluate.json", metrics_path=str(metrics_path))
    metrics = json.loads(metrics_path.read_text())
    assert set(metrics["metrics"]) == {"test_mean_dice", "test_mean_iou"}
    assert metrics["num_images"] == 2 and metrics["test_subset"] == "test"
    assert all(0 <= v <= 1 or math.isnan(v) for v in metrics["metrics"].values())
    assert (trained / "models" / "model.pt").read_bytes() == before  # evaluation never writes weights


@pytest.mark.slow
def test_multi_gpu_config_with_two_cpu_processes(data, tmp_path):
    overrides = {
        **TINY, **SMALL_RUN, "dataset_dir": str(data["labeled"]), "unlabeled": [str(p) for p in data["unlabeled"]],
        "output_dir": str(tmp_path / "runs"), "ckpt_dir": str(tmp_path / "models"),
    }  # fmt: skip
    args = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29531",
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
    per_rank = math.ceil(_labeled_training_items(data) / 2)  # the training items split over 2 ranks
    assert rolling["state_dicts"]["trainer"]["iteration"] == math.ceil(per_rank / 2)
