"""Samplers composed of separate parts: a noise schedule, a denoiser, a guidance object and (for latents) a decoder.

The loop is the same for every schedule (:py:class:`~usgen_monai.engines.schedulers.NoiseSchedule` protocol) and
every guidance (:py:mod:`usgen_monai.engines.guidance`)::

    schedule.set_timesteps(n)
    for i, (t, t_next) in enumerate(steps):
        sets = guidance.condition_sets(conditions, null_conditions) if guidance.is_active(i, n) else [conditions]
        preds = denoiser(cat([x] * len(sets)), t, **cat(sets)).chunk(len(sets))   # one batched pass
        x, _ = schedule.step(guidance(preds) if len(sets) > 1 else preds[0], t, x, t_next, generator)

Randomness comes only from the ``torch.Generator`` passed to the call (initial noise, and DDIM's noise when
``eta > 0``), so a seed reproduces a sample exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn as nn

from usgen_monai.engines.schedulers import NoiseSchedule
from usgen_monai.utils import module_device

__all__ = ["DiffusionSampler", "LatentSampler", "LabelMapSampler", "LatentSample", "LabelMapSample"]


@dataclass
class LatentSample:
    """Output of :py:class:`LatentSampler`.

    Attributes:
        images: ``(B, C, H, W)`` decoded images clipped to ``[0, 1]`` (``None`` without a decoder).
        latents: ``(B, C_lat, h, w)`` denoised latents, in the denoiser's (scaled) latent space.
    """

    images: torch.Tensor | None
    latents: torch.Tensor


@dataclass
class LabelMapSample:
    """Output of :py:class:`LabelMapSampler`.

    Attributes:
        labels: ``(B, 1, H, W)`` long label maps (argmax over the classes).
        onehot: ``(B, K, H, W)`` float one-hot encoding of ``labels``.
        logits: ``(B, K, H, W)`` the denoised continuous maps (in ``[-1, 1]`` when trained that way).
    """

    labels: torch.Tensor
    onehot: torch.Tensor
    logits: torch.Tensor


def _batch_size_of(conditions: Mapping[str, Any]) -> int | None:
    for value in conditions.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return None


def _concat_sets(sets: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    keys = list(sets[0])
    out: dict[str, Any] = {}
    for key in keys:
        values = [s[key] for s in sets]
        if all(v is None for v in values):
            out[key] = None
            continue
        if any(not isinstance(v, torch.Tensor) for v in values):
            raise ValueError(
                f"condition {key!r} must be a tensor in every condition set, got {[type(v) for v in values]}."
            )
        shapes = {tuple(v.shape) for v in values}
        if len(shapes) != 1:
            raise ValueError(f"condition {key!r} and its null must have the same shape, got shapes {sorted(shapes)}.")
        out[key] = torch.cat(values, dim=0)
    return out


class DiffusionSampler:
    """The reverse-diffusion loop shared by the samplers.

    Args:
        scheduler: a :py:class:`~usgen_monai.engines.schedulers.NoiseSchedule` (``DDIMSchedule``, ``RFlowSchedule``).
        denoiser: network called as ``denoiser(x, timesteps, **conditions)``.
        guidance: ``ClassifierFreeGuidance``, ``DualGuidance`` or ``None`` (conditional prediction only).
        num_inference_steps: sampling steps.
        progress: show a tqdm bar.
    """

    def __init__(
        self,
        scheduler: NoiseSchedule,
        denoiser: nn.Module | Callable[..., torch.Tensor],
        guidance: Any | None = None,
        num_inference_steps: int = 50,
        progress: bool = False,
    ) -> None:
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got num_inference_steps={num_inference_steps}.")
        self.scheduler = scheduler
        self.denoiser = denoiser
        self.guidance = guidance
        self.num_inference_steps = int(num_inference_steps)
        self.progress = progress

    @property
    def device(self) -> torch.device:
        return module_device(self.denoiser) if isinstance(self.denoiser, nn.Module) else torch.device("cpu")

    def initial_noise(
        self, shape: Sequence[int], generator: torch.Generator | None = None, device: torch.device | None = None
    ) -> torch.Tensor:
        """Standard normal noise of ``shape``, drawn from ``generator`` (on the generator's device)."""
        gen_device = generator.device if generator is not None else (device or self.device)
        noise = torch.randn(tuple(shape), generator=generator, device=gen_device)
        return noise.to(device or self.device)

    @torch.no_grad()
    def denoise(
        self,
        noise: torch.Tensor,
        conditions: Mapping[str, Any] | None = None,
        null_conditions: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Run the reverse process from ``noise``; returns the final sample, shape of ``noise``.

        Args:
            noise: the starting sample ``x_T``.
            conditions: keyword conditions for the denoiser (e.g. ``{"semantic": ..., "context": ...}``).
            null_conditions: their null counterparts (same keys and shapes); required when guidance is active.
            generator: randomness of stochastic steps.
        """
        conditions = dict(conditions or {})
        null_conditions = dict(null_conditions or {})
        x = noise
        self.scheduler.set_timesteps(self.num_inference_steps, device=x.device)
        timesteps = self.scheduler.timesteps
        next_timesteps = torch.cat([timesteps[1:], torch.zeros_like(timesteps[:1])])
        steps = list(zip(timesteps, next_timesteps))
        if self.progress:
            from tqdm.auto import tqdm

            steps = tqdm(steps, desc="sampling", leave=False)
        num_steps = len(timesteps)
        for i, (t, t_next) in enumerate(steps):
            guided = self.guidance is not None and self.guidance.is_active(i, num_steps)
            if guided:
                if not null_conditions:
                    raise ValueError("guidance is active but no null_conditions were given.")
                sets = self.guidance.condition_sets(conditions, null_conditions)
            else:
                sets = [conditions]
            n = len(sets)
            batch = _concat_sets(sets) if n > 1 else conditions
            x_in = torch.cat([x] * n, dim=0) if n > 1 else x
            t_in = torch.full((x_in.shape[0],), t.item(), device=x.device, dtype=timesteps.dtype)
            pred = self.denoiser(x_in, t_in, **batch)
            pred = self.guidance(list(pred.chunk(n, dim=0))) if guided else pred
            x, _ = self.scheduler.step(pred, t, x, t_next, generator)
        return x


class LatentSampler(DiffusionSampler):
    """Latent diffusion sampler: denoise latents, then decode them with the stage-1 autoencoder.

    Args:
        scheduler: the noise schedule.
        denoiser: e.g. a :py:class:`~usgen_monai.networks.LatentTranslator`, called as
            ``denoiser(z, t, semantic=..., context=...)``.
        guidance: ``DualGuidance``, ``ClassifierFreeGuidance`` or ``None``.
        decoder: the stage-1 model (``AutoencoderKL``; anything with ``decode_stage_2_outputs``) or ``None`` to return
            latents only.
        scale_factor: the latent scale factor the denoiser was trained with (from the checkpoint); latents are divided
            by it before decoding.
        latent_shape: ``(C_lat, h, w)`` of one latent.
        num_inference_steps: sampling steps.
        output_range: images are clipped to this range (``[0, 1]`` for decoders trained on ``[0, 1]`` images).
        progress: show a tqdm bar.

    Example::

        sampler = LatentSampler(DDIMSchedule(), translator, DualGuidance(2.0, 1.5), decoder=autoencoder,
                                scale_factor=constants["latent_scale_factor"], latent_shape=(3, 32, 32),
                                num_inference_steps=20)
        cond = {"semantic": onehot, "context": translator.encode_context(categorical, scalars)}
        out = sampler(conditions=cond, null_conditions=translator.null_conditions(cond),
                      generator=torch.Generator().manual_seed(0))
        out.images  # (B, 1, 128, 128) in [0, 1]
    """

    def __init__(
        self,
        scheduler: NoiseSchedule,
        denoiser: nn.Module | Callable[..., torch.Tensor],
        guidance: Any | None = None,
        decoder: nn.Module | None = None,
        scale_factor: float = 1.0,
        latent_shape: Sequence[int] | None = None,
        num_inference_steps: int = 50,
        output_range: tuple[float, float] = (0.0, 1.0),
        progress: bool = False,
    ) -> None:
        super().__init__(scheduler, denoiser, guidance, num_inference_steps, progress)
        if not scale_factor or scale_factor <= 0:
            raise ValueError(f"scale_factor must be positive, got scale_factor={scale_factor}.")
        self.decoder = decoder
        self.scale_factor = float(scale_factor)
        self.latent_shape = None if latent_shape is None else tuple(int(s) for s in latent_shape)
        self.output_range = (float(output_range[0]), float(output_range[1]))

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Decode scaled latents to images clipped to ``output_range``."""
        if self.decoder is None:
            raise ValueError("this LatentSampler has no decoder.")
        images = self.decoder.decode_stage_2_outputs(latents / self.scale_factor)
        return images.clamp(*self.output_range)

    def __call__(
        self,
        batch_size: int | None = None,
        conditions: Mapping[str, Any] | None = None,
        null_conditions: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> LatentSample:
        """
        Args:
            batch_size: number of samples; defaults to the batch size of ``conditions`` (or ``noise``).
            conditions: denoiser keyword conditions, batch first.
            null_conditions: their nulls (e.g. ``translator.null_conditions(conditions)``).
            generator: source of the initial noise.
            noise: explicit initial latents ``(B, *latent_shape)`` instead of drawing them.
        """
        conditions = dict(conditions or {})
        if noise is None:
            bsz = batch_size if batch_size is not None else _batch_size_of(conditions)
            if bsz is None:
                raise ValueError("batch_size is required when there are no conditions and no noise.")
            if self.latent_shape is None:
                raise ValueError("latent_shape is required to draw the initial noise.")
            noise = self.initial_noise((bsz, *self.latent_shape), generator)
        latents = self.denoise(noise, conditions, null_conditions, generator)
        images = self.decode(latents) if self.decoder is not None else None
        return LatentSample(images=images, latents=latents)


class LabelMapSampler(DiffusionSampler):
    """Sampler of label maps from a diffusion model over one-hot maps scaled to ``[-1, 1]`` (the mask prior).

    Args:
        scheduler: the noise schedule (DDIM with ``clip_sample=True`` suits maps in ``[-1, 1]``).
        denoiser: e.g. MONAI ``DiffusionModelUNet(in_channels=K, out_channels=K, num_class_embeds=...)`` called as
            ``denoiser(x, t, class_labels=...)``.
        num_classes: ``K``.
        spatial_shape: ``(H, W)`` of the maps.
        guidance: ``ClassifierFreeGuidance`` or ``None``.
        num_inference_steps: sampling steps.
        progress: show a tqdm bar.

    Example::

        sampler = LabelMapSampler(DDIMSchedule(clip_sample=True), prior, num_classes=6, spatial_shape=(64, 64),
                                  guidance=ClassifierFreeGuidance(2.0), num_inference_steps=20)
        y = vocabulary.class_labels({"preset": ["msk"], "finding": ["tendon_tear"]}, ("preset", "finding"))
        out = sampler(conditions={"class_labels": y}, null_conditions={"class_labels": torch.zeros_like(y)},
                      generator=torch.Generator().manual_seed(0))
        out.labels  # (1, 1, 64, 64)
    """

    def __init__(
        self,
        scheduler: NoiseSchedule,
        denoiser: nn.Module | Callable[..., torch.Tensor],
        num_classes: int,
        spatial_shape: Sequence[int],
        guidance: Any | None = None,
        num_inference_steps: int = 50,
        progress: bool = False,
    ) -> None:
        super().__init__(scheduler, denoiser, guidance, num_inference_steps, progress)
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got num_classes={num_classes}.")
        self.num_classes = int(num_classes)
        self.spatial_shape = tuple(int(s) for s in spatial_shape)

    def __call__(
        self,
        batch_size: int | None = None,
        conditions: Mapping[str, Any] | None = None,
        null_conditions: Mapping[str, Any] | None = None,
        generator: torch.Generator | None = None,
        noise: torch.Tensor | None = None,
    ) -> LabelMapSample:
        conditions = dict(conditions or {})
        if noise is None:
            bsz = batch_size if batch_size is not None else _batch_size_of(conditions)
            if bsz is None:
                raise ValueError("batch_size is required when there are no conditions and no noise.")
            noise = self.initial_noise((bsz, self.num_classes, *self.spatial_shape), generator)
        logits = self.denoise(noise, conditions, null_conditions, generator)
        labels = logits.argmax(dim=1, keepdim=True)
        onehot = torch.zeros_like(logits).scatter_(1, labels, 1.0)
        return LabelMapSample(labels=labels, onehot=onehot, logits=logits)
