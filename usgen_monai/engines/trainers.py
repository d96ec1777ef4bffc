"""Training pieces on ``monai.engines``: the stage-1 ``AutoencoderKL`` trainer (L1 + KL + patch adversarial loss,
optional perceptual loss), the latent scale factor, and the inferer used by ``SupervisedTrainer`` for every
diffusion model here (translator, ControlNet-only fine-tuning, mask prior).

Stage-2 training needs no trainer subclass::

    trainer = SupervisedTrainer(
        device=device, max_epochs=n, train_data_loader=loader, network=translator,
        optimizer=torch.optim.AdamW(translator.parameters(), 1e-4),        # or translator.freeze_base() to fine-tune
        loss_function=torch.nn.MSELoss(),
        prepare_batch=TranslatorPrepareBatch(schedule, num_classes, autoencoder, scale_factor, vocabulary),
        inferer=DenoiserInferer(schedule),
        train_handlers=[ResumableCheckpoint(...), StatsHandler(...)],
    )
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.inferers import Inferer
from monai.losses import PatchAdversarialLoss, PerceptualLoss
from monai.utils import CommonKeys as Keys

from usgen_monai.engines.prepare_batch import encode_latents
from usgen_monai.engines.schedulers import NoiseSchedule

__all__ = [
    "DenoiserInferer",
    "ReconstructionInferer",
    "AutoencoderKLTrainer",
    "compute_latent_scale_factor",
    "LatentScaleFactorHandler",
    "kl_divergence",
    "perceptual_loss_from_weights",
    "discriminator_step",
]


class DenoiserInferer(Inferer):
    """Training forward of a denoiser: noise ``inputs`` to ``timesteps`` with the schedule and predict.

    ``SupervisedTrainer`` calls ``inferer(inputs, network, *args, **kwargs)`` with the output of a
    :py:mod:`usgen_monai.engines.prepare_batch` callable; every keyword except ``noise`` and ``timesteps`` is passed
    on to ``network(noisy, timesteps, **conditions)``.

    Args:
        schedule: the noise schedule shared with the ``prepare_batch`` callable.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__()
        self.schedule = schedule

    def __call__(  # type: ignore[override]
        self,
        inputs: torch.Tensor,
        network: Callable[..., torch.Tensor],
        noise: torch.Tensor,
        timesteps: torch.Tensor,
        **conditions: Any,
    ) -> torch.Tensor:
        noisy = self.schedule.add_noise(inputs, noise, timesteps)
        return network(noisy, timesteps, **conditions)


class ReconstructionInferer(Inferer):
    """Validation forward of an autoencoder: ``network.reconstruct(inputs)`` (MONAI ``AutoencoderKL`` decodes the
    posterior mean, so the reconstruction is deterministic), instead of the ``(reconstruction, z_mu, z_sigma)`` tuple
    its ``forward`` returns. Output shape = input shape ``(B, C, H, W)``."""

    def __call__(self, inputs: torch.Tensor, network: nn.Module, *args: Any, **kwargs: Any) -> torch.Tensor:  # type: ignore[override]
        return network.reconstruct(inputs)


def kl_divergence(z_mu: torch.Tensor, z_sigma: torch.Tensor) -> torch.Tensor:
    """KL divergence of ``N(z_mu, z_sigma^2)`` from ``N(0, 1)``: summed over latent elements, batch-averaged."""
    dims = list(range(1, z_mu.ndim))
    kl = 0.5 * torch.sum(z_mu.pow(2) + z_sigma.pow(2) - torch.log(z_sigma.pow(2) + 1e-12) - 1.0, dim=dims)
    return kl.mean()


class AutoencoderKLTrainer(SupervisedTrainer):
    """``SupervisedTrainer`` for a MONAI ``AutoencoderKL`` with reconstruction + KL + patch adversarial loss.

    Per iteration: the generator (autoencoder) minimises
    ``loss_function(recon, x) + kl_weight * KL + perceptual_weight * perceptual(recon, x) + adversarial_weight * G``,
    then the discriminator minimises ``adversarial_weight * (D(real) + D(fake)) / 2`` with MONAI's
    ``PatchAdversarialLoss``. Adversarial terms start after ``adversarial_start_iteration`` iterations (the usual
    warm-up). ``engine.state.output`` holds ``image``, ``pred`` (reconstruction), ``loss`` (generator total) and
    ``recon_loss``, ``kl_loss``, ``perceptual_loss``, ``generator_loss``, ``discriminator_loss``.

    Args:
        device: training device.
        max_epochs: epochs to train.
        train_data_loader: batches with ``"image"`` (``(B, C, H, W)`` in ``[0, 1]``).
        network: the ``AutoencoderKL``.
        optimizer: optimizer of the autoencoder.
        discriminator: e.g. ``PatchDiscriminator(spatial_dims=2, channels=32, in_channels=1, num_layers_d=3)``;
            ``None`` trains without the adversarial loss.
        d_optimizer: optimizer of the discriminator (required with a discriminator).
        loss_function: reconstruction loss, default L1.
        kl_weight: weight of the KL term.
        adversarial_weight: weight of the adversarial terms.
        adversarial_start_iteration: iterations before the adversarial terms start.
        adversarial_loss: a ``PatchAdversarialLoss``; default least squares.
        perceptual_loss: optional callable ``(recon, x) -> loss``; see :py:func:`perceptual_loss_from_weights`
            (off by default: it needs local pretrained weights).
        perceptual_weight: weight of the perceptual term.
        kwargs: passed to ``SupervisedTrainer`` (``epoch_length``, ``prepare_batch``, ``train_handlers``, ...).
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        discriminator: nn.Module | None = None,
        d_optimizer: torch.optim.Optimizer | None = None,
        loss_function: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        kl_weight: float = 1e-6,
        adversarial_weight: float = 0.01,
        adversarial_start_iteration: int = 0,
        adversarial_loss: PatchAdversarialLoss | None = None,
        perceptual_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
        perceptual_weight: float = 0.001,
        **kwargs: Any,
    ) -> None:
        if kwargs.get("amp", False):
            raise ValueError("AutoencoderKLTrainer does not support amp=True (two optimizers without grad scalers).")
        if discriminator is not None and d_optimizer is None:
            raise ValueError("a discriminator needs d_optimizer, got d_optimizer=None.")
        if kl_weight < 0 or adversarial_weight < 0 or perceptual_weight < 0:
            raise ValueError(
                f"loss weights must be >= 0, got kl_weight={kl_weight}, adversarial_weight={adversarial_weight}, "
                f"perceptual_weight={perceptual_weight}."
            )
        super().__init__(
            device=device,
            max_epochs=max_epochs,
            train_data_loader=train_data_loader,
            network=network,
            optimizer=optimizer,
            loss_function=loss_function if loss_function is not None else nn.L1Loss(),
            **kwargs,
        )
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer
        self.kl_weight = float(kl_weight)
        self.adversarial_weight = float(adversarial_weight)
        self.adversarial_start_iteration = int(adversarial_start_iteration)
        self.adversarial_loss = (
            adversarial_loss if adversarial_loss is not None else PatchAdversarialLoss(criterion="least_squares")
        )
        self.perceptual_loss = perceptual_loss
        self.perceptual_weight = float(perceptual_weight)

    def _adversarial_active(self, engine: AutoencoderKLTrainer) -> bool:
        return (
            engine.discriminator is not None
            and engine.adversarial_weight > 0
            and engine.state.iteration > engine.adversarial_start_iteration
        )

    def _iteration(self, engine: AutoencoderKLTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        engine.state.output = {Keys.IMAGE: images, Keys.LABEL: images}
        adversarial = self._adversarial_active(engine)

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        recon, z_mu, z_sigma = engine.network(images)
        engine.state.output[Keys.PRED] = recon
        engine.fire_event(IterationEvents.FORWARD_COMPLETED)
        recon_loss = engine.loss_function(recon.float(), images.float()).mean()
        kl = kl_divergence(z_mu.float(), z_sigma.float())
        total = recon_loss + engine.kl_weight * kl
        perceptual = torch.zeros((), device=recon.device)
        if engine.perceptual_loss is not None and engine.perceptual_weight > 0:
            perceptual = engine.perceptual_loss(recon.float(), images.float()).mean()
            total = total + engine.perceptual_weight * perceptual
        g_adv = torch.zeros((), device=recon.device)
        if adversarial:
            logits_fake = engine.discriminator(recon.contiguous().float())[-1]
            g_adv = engine.adversarial_loss(logits_fake, target_is_real=True, for_discriminator=False)
            total = total + engine.adversarial_weight * g_adv
        engine.state.output[Keys.LOSS] = total
        engine.fire_event(IterationEvents.LOSS_COMPLETED)
        total.backward()
        engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
        engine.optimizer.step()

        d_loss = torch.zeros((), device=recon.device)
        if adversarial:
            d_loss = discriminator_step(engine, recon.float(), images.float(), engine.adversarial_weight)

        engine.state.output.update(
            {
                "recon_loss": recon_loss.detach(),
                "kl_loss": kl.detach(),
                "perceptual_loss": perceptual.detach(),
                "generator_loss": g_adv.detach(),
                "discriminator_loss": d_loss.detach(),
            }
        )
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output


def discriminator_step(engine: Any, fake: torch.Tensor, real: torch.Tensor, weight: float = 1.0) -> torch.Tensor:
    """One optimiser step of a patch discriminator: ``weight * (D(fake) -> fake + D(real) -> real) / 2`` with the
    engine's ``adversarial_loss``, on detached inputs; returns the (weighted) loss.

    ``engine`` is a trainer with ``discriminator``, ``d_optimizer``, ``adversarial_loss`` and ``optim_set_to_none``
    (:py:class:`AutoencoderKLTrainer`, :py:class:`usgen_monai.engines.SpeckleRefinerTrainer`).
    """
    engine.discriminator.train()
    engine.d_optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
    logits_fake = engine.discriminator(fake.detach().contiguous())[-1]
    logits_real = engine.discriminator(real.detach().contiguous())[-1]
    loss_fake = engine.adversarial_loss(logits_fake, target_is_real=False, for_discriminator=True)
    loss_real = engine.adversarial_loss(logits_real, target_is_real=True, for_discriminator=True)
    loss = weight * 0.5 * (loss_fake + loss_real)
    loss.backward()
    engine.d_optimizer.step()
    return loss


def _images_of(batch: Any, image_key: str) -> torch.Tensor:
    if isinstance(batch, Mapping):
        if image_key not in batch:
            raise ValueError(f"batch has no {image_key!r} entry; keys are {sorted(batch)}.")
        return batch[image_key]
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, Sequence) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]
    raise ValueError(f"cannot find images in a batch of type {type(batch).__name__}.")


@torch.no_grad()
def compute_latent_scale_factor(
    autoencoder: nn.Module,
    data_loader: Iterable,
    image_key: str = "image",
    device: str | torch.device | None = None,
    max_batches: int | None = None,
) -> float:
    """The latent scale factor ``1 / std`` of the stage-1 latents (posterior means) over training data, as in
    Rombach et al. (https://arxiv.org/abs/2112.10752), so that the diffusion model sees unit-variance latents.
    Store it with the checkpoint constants (``latent_scale_factor``).

    Args:
        autoencoder: trained ``AutoencoderKL``.
        data_loader: yields dict batches with ``image_key`` (or tensors).
        image_key: image key.
        device: device for encoding; defaults to the autoencoder's.
        max_batches: stop after this many batches (``None`` = the whole loader).
    """
    if device is None:
        device = next(autoencoder.parameters()).device
    was_training = autoencoder.training
    autoencoder.eval()
    count, mean, m2 = 0, 0.0, 0.0
    try:
        for i, batch in enumerate(data_loader):
            if max_batches is not None and i >= max_batches:
                break
            z = encode_latents(autoencoder, _images_of(batch, image_key).to(device).float()).double()
            n = z.numel()
            batch_mean = z.mean().item()
            batch_m2 = ((z - batch_mean) ** 2).sum().item()
            delta = batch_mean - mean
            total = count + n
            mean += delta * n / total
            m2 += batch_m2 + delta**2 * count * n / total
            count = total
    finally:
        autoencoder.train(was_training)
    if count < 2:
        raise ValueError("compute_latent_scale_factor needs at least two latent values; the data loader was empty.")
    std = (m2 / (count - 1)) ** 0.5
    if std <= 0:
        raise ValueError(f"latents have zero standard deviation over {count} values; is the autoencoder trained?")
    return float(1.0 / std)


class LatentScaleFactorHandler:
    """Ignite handler: when training completes, compute :py:func:`compute_latent_scale_factor` and store it as
    ``constants[key]``; if a checkpoint handler is given, save it again so the final checkpoint carries the value
    (whatever the order in which the two handlers were attached).

    Args:
        autoencoder: the autoencoder being trained.
        data_loader: training data.
        constants: the mutable dict of checkpoint constants (shared with the checkpoint handler).
        checkpoint: a :py:class:`~usgen_monai.engines.ResumableCheckpoint` to save after updating, or ``None``.
        key: constants key.
        image_key: image key of the batches.
        max_batches: batches used for the estimate.
    """

    def __init__(
        self,
        autoencoder: nn.Module,
        data_loader: Iterable,
        constants: dict[str, Any],
        checkpoint: Any | None = None,
        key: str = "latent_scale_factor",
        image_key: str = "image",
        max_batches: int | None = None,
    ) -> None:
        self.autoencoder = autoencoder
        self.data_loader = data_loader
        self.constants = constants
        self.checkpoint = checkpoint
        self.key = key
        self.image_key = image_key
        self.max_batches = max_batches
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Any) -> None:
        from ignite.engine import Events

        engine.add_event_handler(Events.COMPLETED, self)

    def __call__(self, engine: Any) -> None:
        value = compute_latent_scale_factor(
            self.autoencoder, self.data_loader, self.image_key, max_batches=self.max_batches
        )
        self.constants[self.key] = value
        self.logger.info(f"latent scale factor: {value:.6f}")
        if self.checkpoint is not None:
            # rewrite the rolling and the final files: the checkpoint's own completion may have run already
            self.checkpoint.complete(engine)


def perceptual_loss_from_weights(
    weights_path: str | None,
    spatial_dims: int = 2,
    state_dict_key: str | None = None,
) -> PerceptualLoss | None:
    """A MONAI ``PerceptualLoss`` (torchvision ResNet-50 features) built from a *local* weights file, or ``None``
    when no path is given, so configs can pass ``"$usgen_monai.engines.perceptual_loss_from_weights(@path)"``
    and stay offline. Nothing is downloaded.

    Args:
        weights_path: a ResNet-50 ``state_dict`` file, or ``None``/``""`` for no perceptual loss.
        spatial_dims: 2 (or 3, applied slice-wise).
        state_dict_key: key of the state dict inside the file, if nested.
    """
    if not weights_path:
        return None
    import os

    if not os.path.isfile(weights_path):
        raise FileNotFoundError(f"perceptual loss weights not found: {weights_path} (expected a ResNet-50 state_dict).")
    return PerceptualLoss(
        spatial_dims=spatial_dims,
        network_type="resnet50",
        pretrained=True,
        pretrained_path=weights_path,
        pretrained_state_dict_key=state_dict_key,
    )
