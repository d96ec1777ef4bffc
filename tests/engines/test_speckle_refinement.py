"""SpeckleRefinerTrainer on a tiny autoencoder, and its low-pass / texture helpers."""

from __future__ import annotations

import pytest
import torch
from monai.networks.nets import PatchDiscriminator

from tests.engines.csg_data import tiny_autoencoder
from usgen_monai.engines import SpeckleRefinerTrainer, high_frequency_std, low_pass
from usgen_monai.networks import SpeckleRefiner


def test_low_pass_and_high_frequency_std_exact():
    constant = torch.full((2, 1, 9, 9), 0.25)
    torch.testing.assert_close(low_pass(constant, 3), constant)
    assert high_frequency_std(constant, 3).tolist() == [0.0, 0.0]
    impulse = torch.zeros(1, 1, 5, 5)
    impulse[0, 0, 2, 2] = 9.0
    assert float(low_pass(impulse, 3)[0, 0, 2, 2]) == pytest.approx(1.0)  # 9 over the 3x3 box
    assert float(low_pass(impulse, 3)[0, 0, 0, 0]) == pytest.approx(0.0)


def _trainer(**kwargs) -> tuple[SpeckleRefinerTrainer, SpeckleRefiner, torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    autoencoder, refiner = tiny_autoencoder(), SpeckleRefiner(channels=8)
    discriminator = PatchDiscriminator(spatial_dims=2, channels=8, in_channels=1, num_layers_d=2)
    images = torch.rand(8, 1, 32, 32)
    loader = [{"image": images[i : i + 4]} for i in (0, 4)]
    trainer = SpeckleRefinerTrainer(
        device=torch.device("cpu"), max_epochs=2, train_data_loader=loader, network=refiner,
        optimizer=torch.optim.Adam(refiner.parameters(), 1e-3), autoencoder=autoencoder,
        discriminator=discriminator, d_optimizer=torch.optim.Adam(discriminator.parameters(), 1e-3),
        decollate=False, **{"crop_size": 16, **kwargs},
    )  # fmt: skip
    return trainer, refiner, autoencoder, discriminator


def test_training_moves_the_refiner_and_the_discriminator_not_the_autoencoder():
    trainer, refiner, autoencoder, discriminator = _trainer()
    before = {n: {k: v.clone() for k, v in m.state_dict().items()} for n, m in
              (("refiner", refiner), ("autoencoder", autoencoder), ("discriminator", discriminator))}  # fmt: skip
    trainer.run()
    out = trainer.state.output
    assert out["pred"].shape == out["image"].shape == (4, 1, 16, 16)  # trained on crops
    for key in ("structure_loss", "texture_loss", "generator_loss", "feature_loss", "discriminator_loss"):
        assert torch.isfinite(out[key]), key
    changed = {n: any(not torch.equal(v, m.state_dict()[k]) for k, v in before[n].items())
               for n, m in (("refiner", refiner), ("autoencoder", autoencoder), ("discriminator", discriminator))}  # fmt: skip
    assert changed == {"refiner": True, "autoencoder": False, "discriminator": True}


def test_bad_settings():
    with pytest.raises(ValueError, match="loss weights"):
        _trainer(texture_weight=-1)
    with pytest.raises(ValueError, match="low_pass_size"):
        _trainer(low_pass_size=4)
    with pytest.raises(ValueError, match="crop_size"):
        _trainer(crop_size=4)
