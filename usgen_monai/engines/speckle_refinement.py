"""Training of the speckle refiner (:py:class:`usgen_monai.networks.SpeckleRefiner`), the stage after the stage-1
decoder that restores the speckle a reconstruction-trained decoder smooths away.

Per iteration, real images ``x`` are reconstructed by the frozen autoencoder (``r = decode(encode(x))``), and the same
random crop of both is taken (the refiner is fully convolutional, so it trains on crops and runs on whole images).
The refiner maps ``r`` and a noise field to ``y`` and minimises::

    structure_weight   * L1(lowpass(y), lowpass(x))          # keep what the decoder got right: layout, echogenicity
  + texture_weight     * |hf_std(y) - hf_std(x)|  per image   # as much fine-texture energy as the real image
  + adversarial_weight * LSGAN(D(y), real)                    # the texture's distribution (patch discriminator)
  + feature_weight     * sum_l L1(D_l(y), D_l(x))             # discriminator feature matching, for stability

while the patch discriminator ``D`` learns to tell ``y`` from ``x``. ``lowpass`` is a box mean of
``low_pass_size`` pixels and ``hf_std`` the standard deviation of an image minus its ``texture_box_size`` box mean
(:py:func:`usgen_monai.metrics.high_frequency_energy`). The losses compare distributions and low-pass structure,
never speckle pixel by pixel: the speckle of ``x`` is one random draw, which no refiner can or should reproduce.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.losses import PatchAdversarialLoss
from monai.utils import CommonKeys as Keys

from usgen_monai.engines.trainers import discriminator_step

__all__ = ["SpeckleRefinerTrainer", "high_frequency_std", "low_pass"]


def low_pass(images: torch.Tensor, size: int) -> torch.Tensor:
    """Box mean of ``size`` pixels (same shape; borders averaged over the pixels inside)."""
    pool = F.avg_pool2d if images.ndim == 4 else F.avg_pool3d
    return pool(images, size, stride=1, padding=size // 2, count_include_pad=False)


def high_frequency_std(images: torch.Tensor, size: int) -> torch.Tensor:
    """Per image, the standard deviation of ``images - low_pass(images, size)``: ``(B,)``."""
    return (images - low_pass(images, size)).flatten(1).std(dim=1)


class SpeckleRefinerTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` of a :py:class:`~usgen_monai.networks.SpeckleRefiner` against a frozen autoencoder (see
    the module docstring for the losses). ``engine.state.output`` holds ``image`` (the real crop), ``pred`` (the
    refined crop), ``loss`` and ``structure_loss``, ``texture_loss``, ``generator_loss``, ``feature_loss``,
    ``discriminator_loss``.

    Args:
        device: training device.
        max_epochs: epochs to train.
        train_data_loader: batches with ``"image"`` (``(B, 1, H, W)`` in ``[0, 1]``).
        network: the refiner.
        optimizer: its optimizer.
        autoencoder: the stage-1 ``AutoencoderKL`` whose reconstructions are refined (weights loaded; frozen here).
        discriminator: e.g. MONAI ``PatchDiscriminator(spatial_dims=2, channels=32, in_channels=1, num_layers_d=3)``.
        d_optimizer: the discriminator's optimizer.
        crop_size: side of the random square crop trained on (``None``: whole images).
        structure_weight, texture_weight, adversarial_weight, feature_weight: loss weights.
        low_pass_size: box size of the structure term.
        texture_box_size: box size of the texture term.
        seed: seeds the crops and the noise (resumed runs continue with fresh draws; the weights are what resumes).
        kwargs: passed to ``SupervisedTrainer`` (``train_handlers``, ``epoch_length``, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        autoencoder: nn.Module,
        discriminator: nn.Module,
        d_optimizer: torch.optim.Optimizer,
        crop_size: int | None = 64,
        structure_weight: float = 10.0,
        texture_weight: float = 5.0,
        adversarial_weight: float = 0.5,
        feature_weight: float = 1.0,
        low_pass_size: int = 7,
        texture_box_size: int = 5,
        seed: int = 0,
        **kwargs: Any,
    ) -> None:
        weights = {"structure_weight": structure_weight, "texture_weight": texture_weight,
                   "adversarial_weight": adversarial_weight, "feature_weight": feature_weight}  # fmt: skip
        if any(w < 0 for w in weights.values()):
            raise ValueError(f"loss weights must be >= 0, got {weights}.")
        for name, size in (("low_pass_size", low_pass_size), ("texture_box_size", texture_box_size)):
            if size < 3 or size % 2 == 0:
                raise ValueError(f"{name} must be an odd integer >= 3, got {name}={size}.")
        if crop_size is not None and crop_size < 8:
            raise ValueError(f"crop_size must be >= 8 or None, got crop_size={crop_size}.")
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=nn.L1Loss(),
            **kwargs,
        )
        self.autoencoder = autoencoder.eval()
        for p in self.autoencoder.parameters():
            p.requires_grad_(False)
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.crop_size = crop_size
        self.structure_weight = float(structure_weight)
        self.texture_weight = float(texture_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.feature_weight = float(feature_weight)
        self.low_pass_size = int(low_pass_size)
        self.texture_box_size = int(texture_box_size)
        self.random = torch.Generator().manual_seed(int(seed))
        self.adversarial_loss = PatchAdversarialLoss(criterion="least_squares")

    def _crop(self, *images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        size = self.crop_size
        h, w = images[0].shape[-2:]
        if size is None or (size >= h and size >= w):
            return images
        i = int(torch.randint(0, max(h - size, 0) + 1, (1,), generator=self.random))
        j = int(torch.randint(0, max(w - size, 0) + 1, (1,), generator=self.random))
        return tuple(x[..., i : i + size, j : j + size] for x in images)

    def _iteration(self, engine: SpeckleRefinerTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        images = (batch[0] if isinstance(batch, (tuple, list)) else batch).float()
        with torch.no_grad():
            reconstructed = engine.autoencoder.reconstruct(images).clamp(0.0, 1.0).float()
        real, reconstructed = engine._crop(images, reconstructed)
        noise_shape = (real.shape[0], engine.network.noise_channels, *real.shape[2:])
        noise = torch.randn(noise_shape, generator=engine.random).to(real.device)

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        refined = engine.network(reconstructed, noise)
        engine.state.output = {Keys.IMAGE: real, Keys.LABEL: real, Keys.PRED: refined}
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        structure = F.l1_loss(low_pass(refined, engine.low_pass_size), low_pass(real, engine.low_pass_size))
        texture = (
            high_frequency_std(refined, engine.texture_box_size) - high_frequency_std(real, engine.texture_box_size)
        ).abs().mean()
        fake_features = engine.discriminator(refined.contiguous())
        with torch.no_grad():
            real_features = engine.discriminator(real.contiguous())
        generator_loss = engine.adversarial_loss(fake_features[-1], target_is_real=True, for_discriminator=False)
        feature_loss = sum(F.l1_loss(a, b) for a, b in zip(fake_features[:-1], real_features[:-1]))
        total = (
            engine.structure_weight * structure
            + engine.texture_weight * texture
            + engine.adversarial_weight * generator_loss
            + engine.feature_weight * feature_loss
        )
        engine.state.output[Keys.LOSS] = total
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        total.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()

        discriminator_loss = discriminator_step(engine, refined, real)
        engine.state.output.update(
            {
                "structure_loss": structure.detach(),
                "texture_loss": texture.detach(),
                "generator_loss": generator_loss.detach(),
                "feature_loss": feature_loss.detach(),
                "discriminator_loss": discriminator_loss.detach(),
            }
        )
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
