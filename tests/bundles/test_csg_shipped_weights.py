"""The weights shipped in bundles/csg/models load strictly into the configs' own networks and make pairs that are
not degenerate: a broken, mismatched or retrained-for-the-worse checkpoint fails here, not at a user's desk.

The quality floor is measured on a few few-step samples against the shipped segmenter (an independent U-Net trained
on simulated images): when the 0.3 weights (256x256) were shipped it found the conditioning lesion in these two
generated breast images with Dice 0.82; the floor of 0.6 leaves room for sampling noise on two images, not for a
generator that ignores its mask."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser

from usgen_monai.data.simulator import UNIFIED_CLASSES
from usgen_monai.engines import read_checkpoint
from usgen_monai.engines.evaluation import unified_target
from usgen_monai.metrics import segmentation_dice

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "csg"
CONFIGS = BUNDLE / "configs"
FILES = [str(CONFIGS / n) for n in ("common.json", "inference.json", "evaluate.json")]


@pytest.fixture(scope="module")
def parser() -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(FILES)
    parser.update({"bundle_root": str(BUNDLE), "device": torch.device("cpu"), "sampling": "few_step",
                   "few_step_steps": 4, "bank_size": 4, "progress": False})  # fmt: skip
    return parser


@pytest.mark.parametrize(
    "path_id, network_id, name",
    [
        ("model_path", "translator_def", "translator"),
        ("autoencoder_path", "autoencoder_def", "autoencoder"),
        ("mask_prior_path", "mask_prior_def", "mask_prior"),
        ("segmenter_path", "segmenter_def", "segmenter"),
        ("refiner_path", "refiner_def", "refiner"),
    ],
)
def test_shipped_weights_load_strictly(parser, path_id, network_id, name):
    path = Path(parser.get_parsed_content(path_id))
    states = read_checkpoint(path)["state_dicts"]
    assert list(states) == [name], f"{path.name} holds {list(states)}"
    network = parser.get_parsed_content(network_id, instantiate=True, lazy=False)
    result = network.load_state_dict(states[name], strict=True)  # raises, naming missing/unexpected keys
    assert not result.missing_keys and not result.unexpected_keys


def test_shipped_constants_agree_with_the_configs(parser):
    translator = read_checkpoint(parser.get_parsed_content("model_path"))["constants"]
    autoencoder = read_checkpoint(parser.get_parsed_content("autoencoder_path"))["constants"]
    assert translator["class_names"] == list(UNIFIED_CLASSES) == parser.get_parsed_content("class_names")
    # the translator is trained at the bundle's size; the (convolutional) autoencoder may have been trained at
    # another one (0.3: translator at 256, autoencoder at 128), its downsampling is what the latent grid follows
    assert translator["image_size"] == parser.get_parsed_content("image_size") == [256, 256]
    assert translator["latent_shape"] == parser.get_parsed_content("latent_shape")  # common.json's sizes
    assert translator["latent_scale_factor"] == pytest.approx(autoencoder["latent_scale_factor"])
    assert translator["context_vocabulary"] == parser.get_parsed_content("context_vocabulary").to_dict()


def test_shipped_weights_make_non_degenerate_pairs(parser):
    parser.update({"preset": "breast", "finding": "malignant"})
    generator = parser.get_parsed_content("generator")
    segmenter = parser.get_parsed_content("segmenter")
    pairs = [generator.generate(generator.plan(i, 0)) for i in range(2)]
    images = torch.stack([p.image[None] for p in pairs])
    labels = torch.stack([p.label[None] for p in pairs])
    assert torch.isfinite(images).all()
    for image in images:
        assert 0.05 < float(image.mean()) < 0.8 and float(image.std()) > 0.05  # neither blank nor saturated
    assert not torch.equal(images[0], images[1])
    target = unified_target(labels, ["breast"] * len(pairs))
    assert float(target.mean()) > 0.005  # the procedural masks hold the malignant lesion
    assert segmentation_dice(segmenter, images, target) > 0.6


def test_shipped_mask_prior_draws_anatomy_and_the_finding(parser):
    parser.update({"mask_source": "prior", "preset": "breast", "finding": "malignant"})
    source = parser.get_parsed_content("selected_mask_source")
    mask = source.draw(source.plan(0, 3, ("breast",), "malignant"))
    classes = {UNIFIED_CLASSES[int(v)] for v in np.unique(mask.label.numpy())}
    assert len(classes - {"background"}) >= 3, classes  # several tissues, not noise or a single class
