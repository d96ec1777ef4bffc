"""Noise schedules behind one small protocol, so samplers and trainers never inspect a scheduler's type.

MONAI's ``DDIMScheduler.step(model_output, t, sample, eta, generator)`` and
``RFlowScheduler.step(model_output, t, sample, next_t)`` differ, as do their training targets (noise or velocity
``v = sqrt(a) * eps - sqrt(1 - a) * x0`` for DDIM, ``x0 - noise`` for rectified flow). Each adapter below owns one
MONAI scheduler, built from plain keyword settings, and exposes the same methods:

* sampling: :py:meth:`set_timesteps`, :py:attr:`timesteps`, :py:meth:`step`;
* training: :py:meth:`sample_timesteps`, :py:meth:`add_noise`, :py:meth:`training_target`;
* checkpoints: :py:meth:`config` returns ``{"name": ..., **settings}`` and :py:func:`build_schedule` rebuilds it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import torch
from monai.networks.schedulers import DDIMScheduler, RFlowScheduler

__all__ = ["NoiseSchedule", "DDIMSchedule", "RFlowSchedule", "build_schedule", "SCHEDULES"]


@runtime_checkable
class NoiseSchedule(Protocol):
    """What the samplers and trainers need from a noise schedule."""

    name: str
    num_train_timesteps: int

    @property
    def timesteps(self) -> torch.Tensor:
        """The sampling timesteps set by :py:meth:`set_timesteps`, from the noisiest to the cleanest.

        Returns:
            a 1-D tensor of ``num_inference_steps`` timesteps; empty before :py:meth:`set_timesteps`.
        """
        ...

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose the timesteps of sampling; call it before :py:attr:`timesteps` and :py:meth:`step`.

        Args:
            num_inference_steps: number of reverse steps, >= 1.
            device: device of the timesteps tensor.
        """
        ...

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor,
        sample: torch.Tensor,
        next_timestep: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse (denoising) step from ``timestep`` towards the next timestep of :py:attr:`timesteps`.

        Args:
            model_output: the network's prediction at ``timestep`` (noise, velocity or ``x0`` as the schedule was
                trained), same shape as ``sample``.
            timestep: the current timestep (a 0-d tensor from :py:attr:`timesteps`).
            sample: the current noisy sample, ``(B, C, H, W)``.
            next_timestep: the timestep after this one (``None`` after the last); schedules whose spacing implies it
                ignore it.
            generator: source of the noise of stochastic steps; deterministic schedules ignore it.

        Returns:
            ``(next_sample, predicted_x0)``, both shaped like ``sample``.

        Raises:
            RuntimeError: :py:meth:`set_timesteps` was not called.
        """
        ...

    def sample_timesteps(self, x0: torch.Tensor) -> torch.Tensor:
        """Draw one training timestep per sample of the batch ``x0`` (``(B, ...)``).

        Returns:
            a ``(B,)`` tensor on ``x0``'s device.
        """
        ...

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The noisy training input ``x_t`` of clean samples ``x0`` at ``timesteps`` (forward process).

        Args:
            x0: clean samples, ``(B, C, H, W)``.
            noise: Gaussian noise shaped like ``x0``.
            timesteps: ``(B,)`` timesteps, e.g. from :py:meth:`sample_timesteps`.

        Returns:
            ``x_t``, shaped like ``x0``.
        """
        ...

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """What the network learns to predict from :py:meth:`add_noise`'s ``x_t`` (noise, velocity or ``x0``).

        Args:
            x0: clean samples, ``(B, C, H, W)``.
            noise: the noise given to :py:meth:`add_noise`.
            timesteps: the ``(B,)`` timesteps given to :py:meth:`add_noise`.

        Returns:
            the regression target, shaped like ``x0``.
        """
        ...

    def config(self) -> dict[str, Any]:
        """The schedule as plain values, ``{"name": ..., **settings}``, for checkpoints; :py:func:`build_schedule`
        rebuilds an equal schedule from it.

        Returns:
            a JSON-safe dict.
        """
        ...


class DDIMSchedule:
    """DDIM (Song et al., https://arxiv.org/abs/2010.02502) on MONAI's ``DDIMScheduler``, trained as DDPM.

    MONAI's ``DDIMScheduler.step`` goes from ``t`` to ``t - num_train_timesteps // num_inference_steps`` whatever
    ``set_timesteps`` produced, while its ``set_timesteps`` spaces steps with ``linspace(T - 1, 0, n)``; at a few steps
    the two disagree (two steps evaluate the model at t=999 and t=0 although the sample after the first step is at
    t=499). With ``timestep_spacing="trailing"`` (default) the timesteps are ``T - 1, T - 1 - T//n, ...``, which both
    start from pure noise and match the step, as recommended by Lin et al. (https://arxiv.org/abs/2305.08891);
    ``"linspace"`` keeps MONAI's spacing.

    Args:
        num_train_timesteps: diffusion steps of training.
        schedule: MONAI noise schedule name (``"linear_beta"``, ``"scaled_linear_beta"``, ``"sigmoid_beta"``,
            ``"cosine"``).
        beta_start: first beta (linear-type schedules).
        beta_end: last beta (linear-type schedules).
        prediction_type: ``"epsilon"``, ``"v_prediction"`` or ``"sample"``; sets the training target.
        clip_sample: clip the predicted ``x0`` to ``clip_sample_range``; keep False for latents (unit variance,
            not bounded), True for data in ``[-1, 1]`` such as label maps.
        clip_sample_range: ``(min, max)`` for ``clip_sample``.
        eta: DDIM stochasticity (0 = deterministic); noise then comes from the sampler's ``generator``.
        timestep_spacing: ``"trailing"`` or ``"linspace"`` (see above).
    """

    name = "ddim"

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        schedule: str = "scaled_linear_beta",
        beta_start: float = 0.0015,
        beta_end: float = 0.0195,
        prediction_type: str = "epsilon",
        clip_sample: bool = False,
        clip_sample_range: tuple[float, float] = (-1.0, 1.0),
        eta: float = 0.0,
        timestep_spacing: str = "trailing",
    ) -> None:
        if timestep_spacing not in ("trailing", "linspace"):
            raise ValueError(
                f"timestep_spacing must be 'trailing' or 'linspace', got timestep_spacing={timestep_spacing!r}."
            )
        if eta < 0:
            raise ValueError(f"eta must be >= 0, got eta={eta}.")
        schedule_args = {} if schedule == "cosine" else {"beta_start": beta_start, "beta_end": beta_end}
        self.scheduler = DDIMScheduler(
            num_train_timesteps=num_train_timesteps,
            schedule=schedule,
            clip_sample=clip_sample,
            prediction_type=prediction_type,
            clip_sample_min=float(clip_sample_range[0]),
            clip_sample_max=float(clip_sample_range[1]),
            **schedule_args,
        )
        self.num_train_timesteps = num_train_timesteps
        self.num_inference_steps: int | None = None
        self.eta = float(eta)
        self.timestep_spacing = timestep_spacing
        self._settings = {
            "num_train_timesteps": num_train_timesteps,
            "schedule": schedule,
            "beta_start": float(beta_start),
            "beta_end": float(beta_end),
            "prediction_type": str(prediction_type),
            "clip_sample": bool(clip_sample),
            "clip_sample_range": [float(clip_sample_range[0]), float(clip_sample_range[1])],
            "eta": float(eta),
            "timestep_spacing": timestep_spacing,
        }

    @property
    def timesteps(self) -> torch.Tensor:
        """Sampling timesteps, from noisy to clean; empty before :py:meth:`set_timesteps`."""
        if self.num_inference_steps is None:
            return torch.empty(0, dtype=torch.long)
        return self.scheduler.timesteps

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device | None = None) -> None:
        """Choose ``num_inference_steps`` sampling timesteps with the ``timestep_spacing`` of the constructor
        (``"trailing"``: ``T - 1, T - 1 - T // n, ...``).

        Args:
            num_inference_steps: number of reverse steps, >= 1.
            device: device of the timesteps tensor.

        Raises:
            ValueError: ``num_inference_steps < 1``.
        """
        if num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got num_inference_steps={num_inference_steps}.")
        self.scheduler.set_timesteps(num_inference_steps, device=device)
        self.num_inference_steps = int(num_inference_steps)
        if self.timestep_spacing == "trailing":
            stride = self.num_train_timesteps // num_inference_steps
            steps = (self.num_train_timesteps - 1) - stride * torch.arange(num_inference_steps, device=device)
            self.scheduler.timesteps = steps.long()

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor,
        sample: torch.Tensor,
        next_timestep: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One reverse step; returns ``(previous_sample, predicted_x0)``. ``next_timestep`` is implied by the
        spacing (see the class docstring) and not needed."""
        if self.num_inference_steps is None:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step().")
        return self.scheduler.step(model_output, int(timestep), sample, eta=self.eta, generator=generator)

    def sample_timesteps(self, x0: torch.Tensor) -> torch.Tensor:
        """Uniform integer timesteps in ``[0, num_train_timesteps)``, one per sample of ``x0`` (``(B, ...)``).

        Returns:
            a ``(B,)`` long tensor on ``x0``'s device (drawn from torch's global generator).
        """
        return torch.randint(0, self.num_train_timesteps, (x0.shape[0],), device=x0.device).long()

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """DDPM forward process ``x_t = sqrt(a_t) x0 + sqrt(1 - a_t) noise`` (``a_t``: cumulative product of alphas).

        Args:
            x0: clean samples, ``(B, C, H, W)``.
            noise: Gaussian noise shaped like ``x0``.
            timesteps: ``(B,)`` integer timesteps.

        Returns:
            ``x_t``, shaped like ``x0``.
        """
        return self.scheduler.add_noise(original_samples=x0, noise=noise, timesteps=timesteps)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The target of ``prediction_type``: ``noise`` (``"epsilon"``), the velocity
        ``sqrt(a_t) noise - sqrt(1 - a_t) x0`` (``"v_prediction"``) or ``x0`` (``"sample"``).

        Args:
            x0: clean samples, ``(B, C, H, W)``.
            noise: the noise given to :py:meth:`add_noise`.
            timesteps: the ``(B,)`` timesteps given to :py:meth:`add_noise`.

        Returns:
            the target, shaped like ``x0``.
        """
        if self.scheduler.prediction_type == "epsilon":
            return noise
        if self.scheduler.prediction_type == "v_prediction":
            return self.scheduler.get_velocity(x0, noise, timesteps)
        return x0

    def config(self) -> dict[str, Any]:
        """``{"name": "ddim", **constructor settings}``; :py:func:`build_schedule` rebuilds the schedule from it."""
        return {"name": self.name, **self._settings}


class RFlowSchedule:
    """Rectified flow (Liu et al., https://arxiv.org/abs/2209.03003) on MONAI's ``RFlowScheduler``: straight paths
    ``x_t = (1 - t/T) x0 + (t/T) noise``, velocity target ``x0 - noise``, Euler steps; good at a few steps.

    Args:
        num_train_timesteps: time discretisation of training.
        use_discrete_timesteps: integer timesteps.
        sample_method: training time distribution, ``"uniform"`` or ``"logit-normal"``.
        loc: logit-normal location.
        scale: logit-normal scale.
        use_timestep_transform: shift sampling steps towards the noisy end for larger inputs.
        transform_scale: strength of that shift.
        base_img_size_numel: reference number of latent pixels of the shift.
        spatial_dims: 2 or 3.
    """

    name = "rflow"

    def __init__(
        self,
        num_train_timesteps: int = 1000,
        use_discrete_timesteps: bool = True,
        sample_method: str = "uniform",
        loc: float = 0.0,
        scale: float = 1.0,
        use_timestep_transform: bool = False,
        transform_scale: float = 1.0,
        base_img_size_numel: int = 32 * 32,
        spatial_dims: int = 2,
    ) -> None:
        self.scheduler = RFlowScheduler(
            num_train_timesteps=num_train_timesteps,
            use_discrete_timesteps=use_discrete_timesteps,
            sample_method=sample_method,
            loc=loc,
            scale=scale,
            use_timestep_transform=use_timestep_transform,
            transform_scale=transform_scale,
            base_img_size_numel=base_img_size_numel,
            spatial_dim=spatial_dims,
        )
        self.num_train_timesteps = num_train_timesteps
        self.num_inference_steps: int | None = None
        self._settings = {
            "num_train_timesteps": num_train_timesteps,
            "use_discrete_timesteps": bool(use_discrete_timesteps),
            "sample_method": sample_method,
            "loc": float(loc),
            "scale": float(scale),
            "use_timestep_transform": bool(use_timestep_transform),
            "transform_scale": float(transform_scale),
            "base_img_size_numel": int(base_img_size_numel),
            "spatial_dims": int(spatial_dims),
        }

    @property
    def timesteps(self) -> torch.Tensor:
        """Sampling timesteps, from noisy to clean; empty before :py:meth:`set_timesteps`."""
        if self.num_inference_steps is None:
            return torch.empty(0, dtype=torch.long)
        return self.scheduler.timesteps

    def set_timesteps(
        self,
        num_inference_steps: int,
        device: str | torch.device | None = None,
        input_img_size_numel: int | None = None,
    ) -> None:
        """Choose ``num_inference_steps`` sampling timesteps from ``num_train_timesteps`` down (MONAI's
        ``RFlowScheduler.set_timesteps``), shifted towards the noisy end if ``use_timestep_transform``.

        Args:
            num_inference_steps: number of Euler steps, >= 1.
            device: device of the timesteps tensor.
            input_img_size_numel: pixels of one latent (``H * W``) for the timestep shift; defaults to
                ``base_img_size_numel`` (no shift).
        """
        numel = input_img_size_numel if input_img_size_numel is not None else self._settings["base_img_size_numel"]
        self.scheduler.set_timesteps(num_inference_steps, device=device, input_img_size_numel=numel)
        self.num_inference_steps = int(num_inference_steps)

    def step(
        self,
        model_output: torch.Tensor,
        timestep: torch.Tensor,
        sample: torch.Tensor,
        next_timestep: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One Euler step from ``timestep`` to ``next_timestep`` (0 after the last); returns
        ``(next_sample, predicted_x0)``. Deterministic, so ``generator`` is unused."""
        if self.num_inference_steps is None:
            raise RuntimeError("call set_timesteps(num_inference_steps) before step().")
        nxt = None if next_timestep is None else float(next_timestep)
        return self.scheduler.step(model_output, float(timestep), sample, nxt)

    def sample_timesteps(self, x0: torch.Tensor) -> torch.Tensor:
        """Training timesteps in ``[0, num_train_timesteps)`` from ``sample_method`` (uniform or logit-normal), one
        per sample of ``x0`` (``(B, C, H, W)``), rounded down to integers if ``use_discrete_timesteps``, then shifted
        towards the noisy end for ``x0``'s size if ``use_timestep_transform``.

        Returns:
            a ``(B,)`` tensor on ``x0``'s device (drawn from torch's global generator).
        """
        return self.scheduler.sample_timesteps(x0)

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The straight path ``x_t = (1 - t/T) x0 + (t/T) noise``.

        Args:
            x0: clean samples, ``(B, C, H, W)``.
            noise: Gaussian noise shaped like ``x0``.
            timesteps: ``(B,)`` timesteps in ``[0, T]``.

        Returns:
            ``x_t``, shaped like ``x0``.
        """
        return self.scheduler.add_noise(original_samples=x0, noise=noise, timesteps=timesteps)

    def training_target(self, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """The velocity ``x0 - noise`` of the straight path (the same at every timestep, so ``timesteps`` is unused).

        Returns:
            the target, shaped like ``x0``.
        """
        return x0 - noise

    def config(self) -> dict[str, Any]:
        """``{"name": "rflow", **constructor settings}``; :py:func:`build_schedule` rebuilds the schedule from it."""
        return {"name": self.name, **self._settings}


SCHEDULES: dict[str, type] = {DDIMSchedule.name: DDIMSchedule, RFlowSchedule.name: RFlowSchedule}


def build_schedule(config: Mapping[str, Any]) -> DDIMSchedule | RFlowSchedule:
    """Rebuild a schedule from :py:meth:`config` output (as stored in a checkpoint's constants).

    Args:
        config: ``{"name": "ddim" | "rflow", **settings}``.
    """
    settings = dict(config)
    name = settings.pop("name", None)
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule name {name!r} in {dict(config)}; expected one of {sorted(SCHEDULES)}.")
    if "clip_sample_range" in settings:
        settings["clip_sample_range"] = tuple(settings["clip_sample_range"])
    return SCHEDULES[name](**settings)
