"""The weights shipped in bundles/mgcc/models: the plain state dict has the keys of inference.json's
``network_def`` and loads into its ``network`` (batch norm folded into the convolutions) with ``weights_only=True``,
the TorchScript export (unfolded) matches that network, both files stay under 25 MB, and the bundle's own
inference config segments held-out simulated breast lesions.

The accuracy floor: the shipped weights scored the Dice in metadata.json's ``eval_metrics`` on 100 held-out images
(see the bundle docs); the floor here, on 8 other held-out lesion images through the full inference path (PNG in,
PNG mask out on the image's own grid), leaves room for the few-image noise, not for a broken or untrained model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, run
from PIL import Image

from usgen_monai.data.datasets import load_json_datalist
from usgen_monai.data.layouts import simulate_dataset

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "mgcc"
MODELS = BUNDLE / "models"


@pytest.fixture(scope="module")
def network():
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    parser.update({"bundle_root": str(BUNDLE), "device": torch.device("cpu")})
    return parser.get_parsed_content("network")


def test_files_are_small_and_load_with_weights_only(network):
    for name in ("model.pt", "model.ts"):
        assert (MODELS / name).stat().st_size < 25 * 2**20, name
    state = torch.load(MODELS / "model.pt", map_location="cpu", weights_only=True)
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    assert set(state) == set(parser.get_parsed_content("network_def").state_dict())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in network.main_decoder.modules()), "not folded"


def test_torchscript_export_matches_the_eager_model(network):
    scripted = torch.jit.load(str(MODELS / "model.ts"), map_location="cpu").eval()
    x = torch.rand(2, 1, 256, 256, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), network.eval()(x), rtol=1e-4, atol=1e-4)
    extra = {"metadata.json": ""}
    torch.jit.load(str(MODELS / "model.ts"), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == json.loads((BUNDLE / "configs" / "metadata.json").read_text())["version"]


def test_segments_held_out_breast_lesions(tmp_path):
    simulate_dataset(tmp_path / "test", preset="breast", num=14, layout="monai", size=(256, 256), seed=7777,
                     split=(1.0, 0.0, 0.0))  # fmt: skip
    items = [i for i in load_json_datalist(tmp_path / "test") if np.asarray(Image.open(i["label"])).any()][:8]
    (tmp_path / "images").mkdir()
    for item in items:
        (tmp_path / "images" / Path(item["image"]).name).symlink_to(item["image"])
    run(config_file=str(BUNDLE / "configs" / "inference.json"), bundle_root=str(BUNDLE),
        dataset_dir=str(tmp_path / "images"), output_dir=str(tmp_path / "masks"), progress=False)  # fmt: skip
    dice = []
    for item in items:
        truth = np.asarray(Image.open(item["label"])) > 0
        pred = np.asarray(Image.open(tmp_path / "masks" / (Path(item["image"]).stem + "_seg.png"))) > 0
        assert pred.shape == truth.shape
        dice.append(2 * (pred & truth).sum() / (pred.sum() + truth.sum()))
    assert float(np.mean(dice)) > 0.6, dice
