"""Each CSG training config runs end to end on a tiny configuration, writes weights that carry their sampling
constants, resumes from its last checkpoint, and trains under torchrun with two CPU processes (gloo)."""

from __future__ import annotations

import json
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

from usgen_monai.engines import file_sha256

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "csg" / "configs"


def _files(*names: str) -> list[str]:
    """A command's config files: common.json (networks, sizes, paths) first, then ``names``."""
    return [str(CONFIGS / "common.json")] + [str(CONFIGS / n) for n in names]


TINY_AUTOENCODER_DEF = {
    "image_size": [64, 64],
    "autoencoder_def#channels": [8, 8, 8],
    "autoencoder_def#norm_num_groups": 8,
}
TINY_AE = {**TINY_AUTOENCODER_DEF, "discriminator_def#channels": 8, "discriminator_def#num_layers_d": 2}
TINY_DIFFUSION = {
    **TINY_AUTOENCODER_DEF,
    "translator_def#channels": [16, 16, 16],
    "translator_def#norm_num_groups": 8,
    "translator_def#conditioning_embedding_num_channels": [8, 8, 16],
    "context_encoder_def#embed_dim": 16,
    "context_encoder_def#image_hidden_channels": 8,
}
TINY_PRIOR = {
    "image_size": [64, 64],
    "label_size": [32, 32],
    "mask_prior_def#channels": [16, 16, 16],
    "mask_prior_def#norm_num_groups": 8,
}
TINY_REFINER = {
    **TINY_AUTOENCODER_DEF,
    "refiner_def#channels": 8,
    "discriminator_def#channels": 8,
    "discriminator_def#num_layers_d": 2,
    "crop_size": 32,
}
SMALL_RUN = {"num_samples_per_preset": 2, "batch_size": 2, "max_epochs": 1}


def _config(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


def _train(name: str, tmp: Path, **overrides):
    bundle_run(
        config_file=_files(name),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=str(CONFIGS / "logging.conf"),
        output_dir=str(tmp / "runs" / name),
        ckpt_dir=str(tmp / "models"),
        **overrides,
    )


@pytest.fixture(scope="module")
def trained_autoencoder(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("csg")
    _train("train_autoencoder.json", tmp, adversarial_start_iteration=1, **TINY_AE, **SMALL_RUN)
    _train("train_refiner.json", tmp, **TINY_REFINER, **SMALL_RUN)  # the stage after the decoder, on its output
    return tmp


def test_refiner_config_trains_on_the_autoencoders_reconstructions(trained_autoencoder):
    models = trained_autoencoder / "models"
    data = torch.load(models / "refiner.pt", weights_only=True)
    assert set(data["state_dicts"]) == {"refiner"}
    assert data["constants"]["autoencoder_sha256"] == file_sha256(models / "autoencoder.pt")
    assert data["constants"]["crop_size"] == 32
    out = data["state_dicts"]["refiner"]["out.weight"]
    assert out.abs().sum() > 0  # trained away from the identity it starts as
    rolling = torch.load(trained_autoencoder / "runs" / "train_refiner.json" / "checkpoint.pt", weights_only=True)
    assert {"refiner", "discriminator", "optimizer", "d_optimizer", "trainer"} <= set(rolling["state_dicts"])


def test_refiner_fine_tunes_from_given_weights_on_a_user_dataset(trained_autoencoder, tmp_path):
    """``train_refiner.json --pretrained_path`` starts from given refiner weights (the shipped ones, to adapt the
    speckle to a user's images) and trains on the user's data set."""
    from usgen_monai.data.layouts import simulate_dataset

    models = trained_autoencoder / "models"
    busi = tmp_path / "busi"
    simulate_dataset(busi, preset="breast", num=4, layout="busi", size=(64, 64), seed=5)
    overrides = {**TINY_REFINER, "dataset_dir": str(busi), "presets": ["breast"], "batch_size": 2,
                 "autoencoder_path": str(models / "autoencoder.pt"), "pretrained_path": str(models / "refiner.pt")}
    parser = ConfigParser()
    parser.read_config(_files("train_refiner.json"))
    parser.update({**overrides, "output_dir": str(tmp_path / "runs"), "ckpt_dir": str(tmp_path / "tuned")})
    parser.get_parsed_content("initialize")
    given = torch.load(models / "refiner.pt", weights_only=True)["state_dicts"]["refiner"]
    start = parser.get_parsed_content("network_def").state_dict()
    assert all(torch.equal(start[k], given[k]) for k in given)
    _train("train_refiner.json", tmp_path, max_epochs=1, **overrides)
    tuned = torch.load(tmp_path / "models" / "refiner.pt", weights_only=True)["state_dicts"]["refiner"]
    assert any(not torch.equal(tuned[k], given[k]) for k in given)


def test_autoencoder_config_writes_weights_with_the_latent_scale_factor(trained_autoencoder):
    data = torch.load(trained_autoencoder / "models" / "autoencoder.pt", weights_only=True)
    assert set(data["state_dicts"]) == {"autoencoder"}  # shipped file: the network only
    assert data["constants"]["latent_scale_factor"] > 0
    assert data["constants"]["image_size"] == [64, 64]
    rolling = torch.load(trained_autoencoder / "runs" / "train_autoencoder.json" / "checkpoint.pt", weights_only=True)
    assert {"autoencoder", "discriminator", "optimizer", "d_optimizer", "trainer"} <= set(rolling["state_dicts"])
    assert rolling["state_dicts"]["trainer"]["iteration"] == 3  # 3 presets x 2 samples / batch 2


def test_autoencoder_fine_tunes_from_given_weights_on_a_user_dataset(trained_autoencoder, tmp_path):
    """``train_autoencoder.json --pretrained_path`` starts stage 1 from given weights (the shipped autoencoder, to
    adapt it to a user's images) and writes new weights with their own latent scale factor."""
    from usgen_monai.data.layouts import simulate_dataset

    given_file = trained_autoencoder / "models" / "autoencoder.pt"
    busi = tmp_path / "busi"
    simulate_dataset(busi, preset="breast", num=10, layout="busi", size=(64, 64), seed=6)
    overrides = {**TINY_AE, "dataset_dir": str(busi), "presets": ["breast"], "batch_size": 2,
                 "pretrained_path": str(given_file), "adversarial_start_iteration": 1}  # fmt: skip
    parser = ConfigParser()
    parser.read_config(_files("train_autoencoder.json"))
    parser.update({**overrides, "output_dir": str(tmp_path / "runs"), "ckpt_dir": str(tmp_path / "tuned")})
    parser.get_parsed_content("initialize")
    given = torch.load(given_file, weights_only=True)["state_dicts"]["autoencoder"]
    start = parser.get_parsed_content("network_def").state_dict()
    assert all(torch.equal(start[k], given[k]) for k in given)
    _train("train_autoencoder.json", tmp_path, max_epochs=1, **overrides)
    tuned = torch.load(tmp_path / "models" / "autoencoder.pt", weights_only=True)
    assert any(not torch.equal(tuned["state_dicts"]["autoencoder"][k], given[k]) for k in given)
    assert tuned["constants"]["latent_scale_factor"] > 0


def test_diffusion_config_trains_and_resumes(trained_autoencoder):
    tmp = trained_autoencoder
    _train("train_diffusion.json", tmp, **TINY_DIFFUSION, **SMALL_RUN)
    model = torch.load(tmp / "models" / "model.pt", weights_only=True)
    assert set(model["state_dicts"]) == {"translator"}
    constants = model["constants"]
    assert constants["scheduler"]["name"] == "ddim" and constants["latent_shape"] == [3, 16, 16]
    assert len(constants["class_names"]) == 19 and constants["latent_scale_factor"] > 0
    assert "preset" in constants["context_vocabulary"]["categorical"]
    # a restart with another seed resumes instead of starting afresh: nothing left to train, same weights
    _train("train_diffusion.json", tmp, **TINY_DIFFUSION, **SMALL_RUN, seed=123)
    again = torch.load(tmp / "models" / "model.pt", weights_only=True)["state_dicts"]["translator"]
    assert all(torch.equal(again[k], v) for k, v in model["state_dicts"]["translator"].items())
    # a second run with more epochs resumes from the rolling checkpoint and continues the count
    _train("train_diffusion.json", tmp, **TINY_DIFFUSION, **{**SMALL_RUN, "max_epochs": 2})
    rolling = torch.load(tmp / "runs" / "train_diffusion.json" / "checkpoint.pt", weights_only=True)
    assert rolling["state_dicts"]["trainer"]["max_epochs"] == 2
    assert rolling["state_dicts"]["trainer"]["iteration"] == 6


def test_mask_prior_config(tmp_path):
    _train("train_mask_prior.json", tmp_path, **TINY_PRIOR, **SMALL_RUN)
    prior = torch.load(tmp_path / "models" / "mask_prior.pt", weights_only=True)
    assert set(prior["state_dicts"]) == {"mask_prior"}
    assert prior["constants"]["image_size"] == [32, 32]
    assert prior["constants"]["condition_fields"] == ["preset", "finding"]
    # training goes on from given weights (learning rate 0: the written weights are the given ones)
    _train("train_mask_prior.json", tmp_path / "again", pretrained_path=str(tmp_path / "models" / "mask_prior.pt"),
           learning_rate=0.0, **TINY_PRIOR, **SMALL_RUN)  # fmt: skip
    again = torch.load(tmp_path / "again" / "models" / "mask_prior.pt", weights_only=True)["state_dicts"]["mask_prior"]
    assert all(torch.equal(again[k], v) for k, v in prior["state_dicts"]["mask_prior"].items())


def test_every_stage_trains_on_a_user_dataset(trained_autoencoder, tmp_path):
    """BUSI layout in, the ControlNet fine-tuned on it with the base frozen (the issue's own-data recipe)."""
    from usgen_monai.data.layouts import simulate_dataset

    busi = tmp_path / "busi"
    simulate_dataset(busi, preset="breast", num=5, layout="busi", size=(80, 72), seed=2)
    (busi / "benign" / "broken (9).png").write_bytes(b"junk")
    Image.fromarray(np.zeros((80, 72), np.uint8)).save(busi / "benign" / "broken (9)_mask.png")
    user = {"dataset_dir": str(busi), "presets": ["breast"], "batch_size": 2, "max_epochs": 1}
    _train("train_autoencoder.json", tmp_path, adversarial_start_iteration=1, **TINY_AE, **user)
    assert (tmp_path / "models" / "autoencoder.pt").is_file()
    _train("train_mask_prior.json", tmp_path, **TINY_PRIOR, **user)
    assert (tmp_path / "models" / "mask_prior.pt").is_file()

    base_dir = trained_autoencoder / "models"
    if not (base_dir / "model.pt").exists():
        _train("train_diffusion.json", trained_autoencoder, **TINY_DIFFUSION, **SMALL_RUN)
    pretrained = torch.load(base_dir / "model.pt", weights_only=True)["state_dicts"]["translator"]
    tuned_dir = tmp_path / "tuned"
    _train(
        "train_diffusion.json",
        tuned_dir,
        autoencoder_path=str(base_dir / "autoencoder.pt"),
        pretrained_path=str(base_dir / "model.pt"),
        **{"train#optimizer#params": "$@network.freeze_base()"},
        **TINY_DIFFUSION,
        **user,
    )
    rolling = torch.load(tuned_dir / "runs" / "train_diffusion.json" / "checkpoint.pt", weights_only=True)
    assert rolling["state_dicts"]["trainer"]["iteration"] == 2  # 4 of 5 readable images in training (1 validation) / 2
    tuned = torch.load(tuned_dir / "models" / "model.pt", weights_only=True)["state_dicts"]["translator"]
    assert all(torch.equal(tuned[k], pretrained[k]) for k in tuned if k.startswith(("unet.", "context_encoder.")))
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in tuned if k.startswith("controlnet."))


def test_spade_translator_trains_and_generates(trained_autoencoder, tmp_path):
    spade = {
        "network_def": "@spade_translator_def",
        "semantic_mode": "spade",
        "spade_translator_def#channels": [16, 16, 16],
        "spade_translator_def#norm_num_groups": 8,
        "spade_translator_def#spade_intermediate_channels": 8,
    }
    models = trained_autoencoder / "models"
    _train(
        "train_diffusion.json",
        tmp_path,
        autoencoder_path=str(models / "autoencoder.pt"),
        **TINY_DIFFUSION,
        **SMALL_RUN,
        **spade,
    )
    model = torch.load(tmp_path / "models" / "model.pt", weights_only=True)
    assert model["constants"]["semantic_mode"] == "spade"
    assert any("mlp_gamma" in k for k in model["state_dicts"]["translator"])  # SPADE modulation layers
    for name in ("autoencoder.pt", "refiner.pt"):
        (tmp_path / "models" / name).write_bytes((models / name).read_bytes())
    out = tmp_path / "generated"
    bundle_run(
        config_file=_files("inference.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        bundle_root=str(REPO / "bundles" / "csg"),
        ckpt_dir=str(tmp_path / "models"),
        output_dir=str(out),
        num_samples=1,
        num_inference_steps=2,
        bank_size=2,
        progress=False,
        **{k: v for k, v in TINY_DIFFUSION.items() if k != "image_size"},
        **{"refiner_def#channels": TINY_REFINER["refiner_def#channels"]},
        **spade,
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "datalist.json", "dataset.json", "items", "sample_000000_image.png", "sample_000000_label.png"
    ]


def test_every_target_is_public_and_resolvable():
    for name in ("train_autoencoder.json", "train_diffusion.json", "train_mask_prior.json"):
        parser = ConfigParser()
        parser.read_config(_files(name))
        for item_id in ("network_def", "train#trainer"):
            target = parser.get(f"{item_id}#_target_") if isinstance(parser.get(item_id), dict) else None
            if target:
                assert not target.split(".")[-1].startswith("_")


def test_multi_gpu_config_with_two_cpu_processes(trained_autoencoder, tmp_path):
    overrides = {**TINY_DIFFUSION, **SMALL_RUN, "output_dir": str(tmp_path / "runs"), "ckpt_dir": str(tmp_path)}
    (tmp_path / "autoencoder.pt").write_bytes((trained_autoencoder / "models" / "autoencoder.pt").read_bytes())
    args = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
        "-m", "monai.bundle", "run",
        "--config_file", str(_files("train_diffusion.json", "multi_gpu_train.json")),
        "--meta_file", str(CONFIGS / "metadata.json"),
    ]
    for key, value in overrides.items():
        args += [f"--{key}", json.dumps(value) if not isinstance(value, str) else value]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    model = torch.load(tmp_path / "model.pt", weights_only=True)
    # DDP wrapped the network, but the checkpoint holds the plain module's keys
    assert not any(k.startswith("module.") for k in model["state_dicts"]["translator"])
    rolling = torch.load(tmp_path / "runs" / "checkpoint.pt", weights_only=True)
    # 6 samples split over 2 ranks, batch 2: 2 iterations per rank
    assert rolling["state_dicts"]["trainer"]["iteration"] == 2


def test_segmenter_config(tmp_path):
    # the independent segmenter that mask consistency (evaluate.json) is measured with
    _train("train_segmenter.json", tmp_path, image_size=[64, 64], **{"segmenter_def#channels": [8, 8, 8, 8]},
           **SMALL_RUN)
    seg = torch.load(tmp_path / "models" / "segmenter.pt", weights_only=True)
    assert set(seg["state_dicts"]) == {"segmenter"}
    assert seg["constants"]["image_size"] == [64, 64]


def test_controlnet_fine_tuning_from_pretrained_weights_keeps_the_base(trained_autoencoder, tmp_path):
    base_dir = trained_autoencoder / "models"
    if not (base_dir / "model.pt").exists():
        _train("train_diffusion.json", trained_autoencoder, **TINY_DIFFUSION, **SMALL_RUN)
    pretrained = torch.load(base_dir / "model.pt", weights_only=True)["state_dicts"]["translator"]
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "autoencoder.pt").write_bytes((base_dir / "autoencoder.pt").read_bytes())
    _train(
        "train_diffusion.json",
        tmp_path,
        pretrained_path=str(base_dir / "model.pt"),
        **{"train#optimizer#params": "$@network.freeze_base()"},
        **TINY_DIFFUSION,
        **SMALL_RUN,
    )
    tuned = torch.load(tmp_path / "models" / "model.pt", weights_only=True)["state_dicts"]["translator"]
    base_keys = [k for k in tuned if k.startswith("unet.") or k.startswith("context_encoder.")]
    control_keys = [k for k in tuned if k.startswith("controlnet.")]
    assert base_keys and control_keys
    assert all(torch.equal(tuned[k], pretrained[k]) for k in base_keys)
    assert any(not torch.equal(tuned[k], pretrained[k]) for k in control_keys)


@pytest.mark.parametrize(
    "name, overrides, metric",
    [
        ("train_autoencoder.json", TINY_AE, "val_l1"),
        ("train_diffusion.json", TINY_DIFFUSION, "val_mse"),
        ("train_mask_prior.json", TINY_PRIOR, "val_mse"),
        ("train_segmenter.json", {"image_size": [64, 64], "segmenter_def#channels": [8, 8, 8, 8]}, "val_mean_dice"),
    ],
)
def test_every_config_validates_each_epoch_on_unseen_images(trained_autoencoder, tmp_path, name, overrides, metric):
    parser = ConfigParser()
    parser.read_config(_files(name))
    parser.update({**overrides, **SMALL_RUN, "num_val_samples_per_preset": 1, "max_epochs": 2,
                   "output_dir": str(tmp_path / "runs"), "ckpt_dir": str(tmp_path / "models"),
                   "autoencoder_path": str(trained_autoencoder / "models" / "autoencoder.pt")})  # fmt: skip
    parser.get_parsed_content("initialize")
    evaluator = parser.get_parsed_content("validate#evaluator")
    epochs = []
    evaluator.add_event_handler("EPOCH_COMPLETED", lambda engine: epochs.append(engine.state.metrics[metric]))
    parser.get_parsed_content("train#trainer").run()
    assert len(epochs) == 2 and all(np.isfinite(v) for v in epochs)
    # losses and errors are lower-is-better, Dice higher-is-better: the best epoch is the right one
    best = max(epochs) if metric == "val_mean_dice" else min(epochs)
    assert evaluator.state.best_metric == pytest.approx(best)
    assert epochs[evaluator.state.best_metric_epoch - 1] == pytest.approx(best)
    # the best epoch's weights are kept beside the rolling checkpoint, as a plain state dict of the network
    best_weights = torch.load(tmp_path / "runs" / "best_weights.pt", weights_only=True)
    parser.get_parsed_content("network_def").load_state_dict(best_weights, strict=True)
    train_images = parser.get_parsed_content("train#dataset")[0]["image"]
    val_images = parser.get_parsed_content("validate#dataset")[0]["image"]
    assert not np.array_equal(np.asarray(train_images), np.asarray(val_images))


def test_weights_without_the_global_context_path_continue_with_it(trained_autoencoder, tmp_path):
    autoencoder = {"autoencoder_path": str(trained_autoencoder / "models" / "autoencoder.pt")}
    _train("train_diffusion.json", tmp_path / "plain", **{"translator_def#global_context": False}, **autoencoder,
           **TINY_DIFFUSION, **SMALL_RUN)  # fmt: skip
    plain = tmp_path / "plain" / "models" / "model.pt"
    with pytest.raises(RuntimeError):  # strict loading names the missing context_to_time weights
        _train("train_diffusion.json", tmp_path / "strict", pretrained_path=str(plain), **autoencoder,
               **TINY_DIFFUSION, **SMALL_RUN)  # fmt: skip
    _train("train_diffusion.json", tmp_path / "global", pretrained_path=str(plain), pretrained_strict=False,
           **autoencoder, **TINY_DIFFUSION, **SMALL_RUN)  # fmt: skip
    tuned = torch.load(tmp_path / "global" / "models" / "model.pt", weights_only=True)["state_dicts"]["translator"]
    assert "context_to_time.weight" in tuned


def test_relative_model_paths_are_taken_from_the_working_folder(tmp_path, monkeypatch):
    # a relative --ckpt_dir means the folder the command runs in, not one inside the run's output_dir
    monkeypatch.chdir(tmp_path)
    bundle_run(
        config_file=_files("train_segmenter.json"),
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        output_dir="runs",
        ckpt_dir="my_models",
        image_size=[64, 64],
        **{"segmenter_def#channels": [8, 8, 8, 8]},
        **SMALL_RUN,
    )
    assert (tmp_path / "my_models" / "segmenter.pt").is_file()
    assert not list((tmp_path / "runs").rglob("segmenter.pt"))


@pytest.mark.parametrize(
    "name", ["train_autoencoder.json", "train_diffusion.json", "train_mask_prior.json", "train_refiner.json",
             "train_segmenter.json"],
)  # fmt: skip
def test_progress_false_turns_the_training_progress_bar_off(name):
    for given, disabled in ((True, False), ("false", True)):  # "false" as a command line gives it
        parser = ConfigParser()
        parser.read_config(_files(name))
        parser["progress"] = given
        handlers = parser.get("train#handlers")
        (index,) = [i for i, h in enumerate(handlers) if isinstance(h, dict) and h["_target_"].endswith("ProgressBar")]
        assert parser.get_parsed_content(f"train#handlers#{index}").tqdm_kwargs["disable"] is disabled
