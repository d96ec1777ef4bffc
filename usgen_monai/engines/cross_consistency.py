"""Semi-supervised training by cross-consistency between decoders (MGCC) on ``monai.engines``.

Tang et al., "Multi-Level Global Context Cross Consistency Model for Semi-Supervised Ultrasound Image Segmentation
with Diffusion Model", https://arxiv.org/abs/2305.09447. Each iteration takes a labeled and an unlabeled batch
(4 + 4 in the paper) through a network that, in training mode, returns ``[main, aux_1, ..., aux_n]`` logits
(:py:class:`usgen_monai.networks.MGCCNet`):

* supervised term: a segmentation loss (BCE + Dice for binary, CE + Dice for multi-class) of every output on the
  labeled images, averaged over the outputs;
* consistency term: ``mean((p_main - p_aux_i) ** 2)`` between the sigmoid (softmax) probabilities of the main and each
  auxiliary output on the unlabeled images, averaged over the auxiliary outputs;
* ``loss = supervised + w(t) * consistency`` with the sigmoid ramp-up ``w(t) = w_max * exp(-5 (1 - t) ** 2)``
  (Laine and Aila, https://arxiv.org/abs/1610.02242), ``t`` ramped from 0 to 1 over the first iterations.

The pieces:

* :py:func:`sigmoid_rampup_weight` and :py:class:`ConsistencyRamp`: the weight ``w`` at a ramp phase and at an
  iteration;
* :py:class:`CrossConsistencyLoss`: both terms from the network's outputs;
* :py:class:`CrossConsistencyTrainer`: a ``monai.engines.SupervisedTrainer`` that cycles the unlabeled loader
  alongside the labeled one and logs every term;

The paper's poly learning-rate decay and the best-weights file are the training handlers of
:py:mod:`usgen_monai.engines.handlers` (every bundle uses them).

Example::

    trainer = CrossConsistencyTrainer(
        device=device, max_epochs=100, train_data_loader=labeled_loader, unlabeled_data_loader=unlabeled_loader,
        network=MGCCNet(channels=(8, 16, 32, 64, 128)).to(device),
        optimizer=torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4),
        loss_function=CrossConsistencyLoss(DiceCELoss(sigmoid=True, lambda_ce=0.5)),
        consistency_weight=ConsistencyRamp(max_weight=7.0, ramp_fraction=1.5),
        train_handlers=[PolynomialLRSchedule(optimizer, power=0.9), ResumableCheckpoint(...), ...],
    )
    trainer.run()
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
from monai.engines import SupervisedTrainer
from monai.engines.utils import IterationEvents
from monai.utils import CommonKeys as Keys


__all__ = [
    "ConsistencyRamp",
    "CrossConsistencyLoss",
    "CrossConsistencyTerms",
    "CrossConsistencyTrainer",
    "sigmoid_rampup_weight",
]

_ACTIVATIONS = ("sigmoid", "softmax")


def sigmoid_rampup_weight(phase: float, max_weight: float = 7.0) -> float:
    """The consistency weight ``max_weight * exp(-5 * (1 - t) ** 2)`` at ramp phase ``t`` (clipped to ``[0, 1]``).

    ``w(0) = max_weight * e^-5`` and ``w(1) = max_weight``; MGCC uses ``max_weight = 7``.

    Args:
        phase: the ramp phase ``t``; values outside ``[0, 1]`` are clipped.
        max_weight: the weight at the end of the ramp. Defaults to 7.0.
    """
    t = min(max(float(phase), 0.0), 1.0)
    return float(max_weight) * math.exp(-5.0 * (1.0 - t) ** 2)


class ConsistencyRamp:
    """The consistency weight at an iteration: :py:func:`sigmoid_rampup_weight` of the phase
    ``t = floor(iteration * num_steps / ramp_length) / num_steps`` (clipped to 1).

    The MGCC code ramps in 200 steps of 150 iterations (``t = (iteration // 150) / 200``, i.e. ``ramp_length=30000,
    num_steps=200``) over a run of 20000 iterations. ``ramp_length=None`` takes the ramp as ``ramp_fraction`` times the
    run's total iterations (the paper's ratio is 1.5), so the ramp follows ``max_epochs`` wherever it is set.

    Args:
        max_weight: the weight at the end of the ramp (``>= 0``). Defaults to 7.0.
        ramp_length: iterations from ``t = 0`` to ``t = 1`` (``0``: the full weight from the start); ``None`` uses
            ``ramp_fraction``. Defaults to None.
        ramp_fraction: ramp length as a fraction of the run's total iterations, when ``ramp_length`` is None.
            Defaults to 1.5.
        num_steps: the number of constant steps of the ramp; ``None`` or ``0`` ramps smoothly. Defaults to 200.

    Examples::

        ramp = ConsistencyRamp(max_weight=7.0, ramp_length=30000, num_steps=200)
        ramp(0), ramp(149), ramp(150), ramp(30000)  # 7e^-5, 7e^-5, w(1/200), 7.0
        ConsistencyRamp(ramp_length=None, ramp_fraction=1.5)(1000, total_iterations=2000)  # w(1/3)
    """

    def __init__(
        self,
        max_weight: float = 7.0,
        ramp_length: int | None = None,
        ramp_fraction: float = 1.5,
        num_steps: int | None = 200,
    ) -> None:
        if not max_weight >= 0:
            raise ValueError(f"max_weight must be >= 0, got max_weight={max_weight}.")
        if ramp_length is not None and (int(ramp_length) != ramp_length or ramp_length < 0):
            raise ValueError(f"ramp_length must be a non-negative integer or None, got ramp_length={ramp_length}.")
        if ramp_length is None and not ramp_fraction >= 0:
            raise ValueError(f"ramp_fraction must be >= 0, got ramp_fraction={ramp_fraction}.")
        if num_steps is not None and (int(num_steps) != num_steps or num_steps < 0):
            raise ValueError(f"num_steps must be a non-negative integer or None, got num_steps={num_steps}.")
        self.max_weight = float(max_weight)
        self.ramp_length = None if ramp_length is None else int(ramp_length)
        self.ramp_fraction = float(ramp_fraction)
        self.num_steps = int(num_steps) if num_steps else 0

    def length(self, total_iterations: int | None = None) -> float:
        """The ramp length in iterations (``ramp_length``, or ``ramp_fraction * total_iterations``).

        Raises:
            ValueError: ``ramp_length`` is None and ``total_iterations`` is not given.
        """
        if self.ramp_length is not None:
            return float(self.ramp_length)
        if total_iterations is None:
            raise ValueError("ConsistencyRamp(ramp_length=None) needs total_iterations to size its ramp.")
        return self.ramp_fraction * float(total_iterations)

    def phase(self, iteration: int, total_iterations: int | None = None) -> float:
        """The ramp phase ``t`` in ``[0, 1]`` at the 0-based ``iteration``."""
        length = self.length(total_iterations)
        if length <= 0:
            return 1.0
        if self.num_steps:
            t = math.floor(iteration * self.num_steps / length) / self.num_steps
        else:
            t = iteration / length
        return min(max(t, 0.0), 1.0)

    def __call__(self, iteration: int, total_iterations: int | None = None) -> float:
        """The weight at the 0-based ``iteration`` of a run of ``total_iterations``."""
        return sigmoid_rampup_weight(self.phase(iteration, total_iterations), self.max_weight)


class CrossConsistencyTerms(NamedTuple):
    """The terms of :py:class:`CrossConsistencyLoss`: ``total = supervised + weight * consistency``."""

    total: torch.Tensor
    supervised: torch.Tensor
    consistency: torch.Tensor


class CrossConsistencyLoss(nn.Module):
    """Supervised loss averaged over all decoder outputs plus the weighted main-vs-auxiliary consistency.

    ``supervised = mean_i supervised_loss(out_i[labeled], target)`` over all outputs (main first);
    ``consistency = mean_{i >= 1} mean((act(out_0[unlabeled]) - act(out_i[unlabeled])) ** 2)`` with ``act`` the
    sigmoid (binary, one channel per class) or the softmax over channels (multi-class); gradients flow into both
    sides, as in the MGCC code.

    Args:
        supervised_loss: ``loss(logits, target)`` on the labeled images, e.g. ``monai.losses.DiceCELoss(sigmoid=True,
            lambda_ce=0.5)`` (the MGCC code's ``0.5 * BCE + Dice``) or ``DiceCELoss(softmax=True, to_onehot_y=True)``
            for multi-class; default ``DiceCELoss(sigmoid=True, lambda_ce=0.5, smooth_nr=1e-5, smooth_dr=1e-5)``.
        activation: ``"sigmoid"`` or ``"softmax"``, the probabilities the consistency compares. Defaults to sigmoid.

    Examples::

        loss = CrossConsistencyLoss()
        outputs = net.train()(torch.cat([labeled, unlabeled]))  # [main, aux1, aux2, aux3]
        n = len(labeled)
        terms = loss([o[:n] for o in outputs], target, [o[n:] for o in outputs], weight=ramp(iteration))
        terms.total.backward()
    """

    def __init__(self, supervised_loss: Callable[..., torch.Tensor] | None = None, activation: str = "sigmoid"):
        super().__init__()
        if activation not in _ACTIVATIONS:
            raise ValueError(f"activation must be one of {_ACTIVATIONS}, got activation={activation!r}.")
        if supervised_loss is None:
            from monai.losses import DiceCELoss

            supervised_loss = DiceCELoss(sigmoid=True, lambda_ce=0.5, smooth_nr=1e-5, smooth_dr=1e-5)
        self.supervised_loss = supervised_loss
        self.activation = activation

    @staticmethod
    def _check(outputs: Sequence[torch.Tensor], what: str) -> list[torch.Tensor]:
        if isinstance(outputs, torch.Tensor) or len(outputs) < 2:
            found = "one tensor" if isinstance(outputs, torch.Tensor) else f"{len(outputs)} output(s)"
            raise ValueError(
                f"CrossConsistencyLoss needs the {what} outputs [main, aux_1, ...] of a network in training mode "
                f"(at least two), got {found}."
            )
        return list(outputs)

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """The sigmoid, or the softmax over the channel axis, of ``logits`` ``(B, C, *spatial)``."""
        return torch.sigmoid(logits) if self.activation == "sigmoid" else torch.softmax(logits, dim=1)

    def supervised(self, outputs: Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """``mean_i supervised_loss(outputs[i], target)`` over all outputs."""
        outputs = self._check(outputs, "labeled")
        return torch.stack([torch.as_tensor(self.supervised_loss(o, target)).mean() for o in outputs]).mean()

    def consistency(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``mean_{i >= 1} mean((p_0 - p_i) ** 2)`` over the auxiliary outputs; zero for an empty batch."""
        outputs = self._check(outputs, "unlabeled")
        if outputs[0].shape[0] == 0:
            return outputs[0].sum() * 0.0
        main = self.probabilities(outputs[0])
        return torch.stack([torch.mean((main - self.probabilities(o)) ** 2) for o in outputs[1:]]).mean()

    def forward(
        self,
        labeled_outputs: Sequence[torch.Tensor],
        target: torch.Tensor,
        unlabeled_outputs: Sequence[torch.Tensor],
        weight: float = 1.0,
    ) -> CrossConsistencyTerms:
        """
        Args:
            labeled_outputs: ``[main, aux_1, ...]`` logits ``(B_l, C, *spatial)`` of the labeled images.
            target: their labels, as ``supervised_loss`` expects them (``(B_l, C or 1, *spatial)``).
            unlabeled_outputs: ``[main, aux_1, ...]`` logits ``(B_u, C, *spatial)`` of the unlabeled images.
            weight: the consistency weight (e.g. :py:class:`ConsistencyRamp` at this iteration).

        Returns:
            :py:class:`CrossConsistencyTerms` ``(total, supervised, consistency)``.
        """
        supervised = self.supervised(labeled_outputs, target)
        consistency = self.consistency(unlabeled_outputs)
        return CrossConsistencyTerms(supervised + float(weight) * consistency, supervised, consistency)


def _images(batch: Any, image_key: str, device: torch.device, non_blocking: bool) -> torch.Tensor:
    """The images of an unlabeled batch (a dict with ``image_key``, a tensor, or a sequence starting with one)."""
    if isinstance(batch, Mapping):
        if image_key not in batch:
            raise ValueError(f"unlabeled batch has no {image_key!r} entry; its keys are {sorted(batch)}.")
        images = batch[image_key]
    elif isinstance(batch, Sequence) and batch and isinstance(batch[0], torch.Tensor):
        images = batch[0]
    else:
        images = batch
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"unlabeled batch images must be a tensor, got {type(images).__name__}.")
    return torch.as_tensor(images).to(device, non_blocking=non_blocking)


class CrossConsistencyTrainer(SupervisedTrainer):
    """``monai.engines.SupervisedTrainer`` for cross-consistency training: each iteration one labeled batch (from
    ``train_data_loader``, which defines the epoch) and one unlabeled batch (from ``unlabeled_data_loader``, cycled:
    a new pass starts whenever it runs out, with ``set_epoch`` on a distributed sampler).

    Both batches go through the network in one forward (batch norm sees both, as in the MGCC code); the network must
    return ``[main, aux_1, ...]`` logits in training mode (:py:class:`usgen_monai.networks.MGCCNet`). The loss is a
    :py:class:`CrossConsistencyLoss`; the consistency weight is a number or a callable ``(iteration, total_iterations)
    -> weight`` such as :py:class:`ConsistencyRamp`, evaluated at the 0-based iteration (restored on resume, so the
    ramp continues). Without unlabeled data (``unlabeled_data_loader=None``) the consistency term is computed on the
    labeled images.

    ``engine.state.output`` holds ``image``/``label`` (labeled batch), ``pred`` (main logits of the labeled images),
    ``loss`` (total), ``supervised_loss``, ``consistency_loss`` and ``consistency_weight`` (decollated by MONAI into
    one dict per labeled image unless ``decollate=False``), e.g. for
    ``StatsHandler(output_transform=from_engine(["consistency_loss"], first=True))``.

    Validation and checkpoints are the usual handlers: ``ValidationHandler`` with a ``SupervisedEvaluator`` (the
    network returns the main logits in eval mode) and :py:class:`usgen_monai.engines.checkpoint.ResumableCheckpoint`.
    A resumed run restarts the unlabeled pass as ignite restarts the labeled one.

    Args:
        device: the device.
        max_epochs: epochs (passes over the labeled loader).
        train_data_loader: labeled batches (dicts with ``image`` and ``label``).
        unlabeled_data_loader: unlabeled batches (dicts with ``image_key``), or ``None``.
        network: returns a list of logits in training mode.
        optimizer: the optimizer.
        loss_function: a :py:class:`CrossConsistencyLoss`.
        consistency_weight: a float or a callable ``(iteration, total_iterations) -> float``. Defaults to
            ``ConsistencyRamp()`` (7 * the sigmoid ramp over 1.5 x the run).
        image_key: image key of the unlabeled batches. Defaults to ``"image"``.
        kwargs: further ``SupervisedTrainer`` arguments (``train_handlers``, ``prepare_batch``, ``inferer``, ``amp``,
            ...).

    Raises:
        ValueError: an empty unlabeled loader, a network that does not return several outputs in training mode, or
            labeled and unlabeled images of different sizes.
    """

    def __init__(
        self,
        device: str | torch.device,
        max_epochs: int,
        train_data_loader: Iterable,
        unlabeled_data_loader: Iterable | None,
        network: nn.Module,
        optimizer: torch.optim.Optimizer,
        loss_function: CrossConsistencyLoss,
        consistency_weight: float | Callable[..., float] | None = None,
        image_key: str = Keys.IMAGE,
        **kwargs: Any,
    ) -> None:
        if hasattr(unlabeled_data_loader, "__len__") and len(unlabeled_data_loader) == 0:  # type: ignore[arg-type]
            raise ValueError(
                "the unlabeled data loader is empty; give unlabeled images or unlabeled_data_loader=None "
                "(consistency on the labeled images)."
            )
        super().__init__(device, max_epochs, train_data_loader, network, optimizer, loss_function, **kwargs)
        self.unlabeled_data_loader = unlabeled_data_loader
        self.consistency_weight = ConsistencyRamp() if consistency_weight is None else consistency_weight
        self.image_key = image_key
        self._unlabeled_iterator: Iterator | None = None
        self._unlabeled_pass = 0

    def current_consistency_weight(self) -> float:
        """The consistency weight at the current (0-based) iteration."""
        weight = self.consistency_weight
        if not callable(weight):
            return float(weight)
        total = (self.state.max_epochs or 0) * (self.state.epoch_length or 0)
        return float(weight(max(self.state.iteration - 1, 0), total))

    def next_unlabeled_batch(self) -> Any:
        """The next unlabeled batch, starting a new pass over ``unlabeled_data_loader`` when one ends."""
        if self.unlabeled_data_loader is None:
            return None
        for attempt in range(2):
            if self._unlabeled_iterator is None:
                sampler = getattr(self.unlabeled_data_loader, "sampler", None)
                if hasattr(sampler, "set_epoch"):
                    sampler.set_epoch(self._unlabeled_pass)
                self._unlabeled_pass += 1
                self._unlabeled_iterator = iter(self.unlabeled_data_loader)
            try:
                return next(self._unlabeled_iterator)
            except StopIteration:
                self._unlabeled_iterator = None
        raise ValueError("the unlabeled data loader yields no batches.")

    def _iteration(self, engine: CrossConsistencyTrainer, batchdata: dict[str, torch.Tensor]) -> dict:  # type: ignore[override]
        if batchdata is None:
            raise ValueError("Must provide batch data for current iteration.")
        batch = engine.prepare_batch(batchdata, engine.state.device, engine.non_blocking, **engine.to_kwargs)
        if len(batch) == 2:
            inputs, targets = batch
            args: tuple = ()
            kwargs: dict = {}
        else:
            inputs, targets, args, kwargs = batch
        weight = engine.current_consistency_weight()
        # without a consistency term (a supervised baseline) the unlabelled batch would only cost time and shift the
        # batch-norm statistics
        unlabeled = engine.next_unlabeled_batch() if weight != 0.0 else None
        num_labeled = int(inputs.shape[0])
        if unlabeled is not None:
            extra = _images(unlabeled, engine.image_key, engine.state.device, engine.non_blocking)
            if tuple(extra.shape[1:]) != tuple(inputs.shape[1:]):
                raise ValueError(
                    f"labeled images {tuple(inputs.shape[1:])} and unlabeled images {tuple(extra.shape[1:])} differ "
                    "in channels or size; resize both to the network's input size."
                )
            inputs = torch.cat([inputs, extra.to(inputs.dtype)])
        engine.state.output = {Keys.IMAGE: inputs[:num_labeled], Keys.LABEL: targets}

        def _compute_pred_loss() -> None:
            outputs = engine.inferer(inputs, engine.network, *args, **kwargs)
            if isinstance(outputs, torch.Tensor) or len(outputs) < 2:
                raise ValueError(
                    "CrossConsistencyTrainer needs a network that returns [main, aux_1, ...] logits in training mode "
                    f"(e.g. MGCCNet); got {'one tensor' if isinstance(outputs, torch.Tensor) else len(outputs)}."
                )
            labeled = [o[:num_labeled] for o in outputs]
            rest = [o[num_labeled:] for o in outputs] if unlabeled is not None else labeled
            engine.state.output[Keys.PRED] = labeled[0]
            engine.fire_event(IterationEvents.FORWARD_COMPLETED)
            terms = engine.loss_function(labeled, targets, rest, weight)
            engine.state.output[Keys.LOSS] = terms.total
            engine.state.output["supervised_loss"] = terms.supervised.detach()
            engine.state.output["consistency_loss"] = terms.consistency.detach()
            engine.state.output["consistency_weight"] = weight
            engine.fire_event(IterationEvents.LOSS_COMPLETED)

        engine.network.train()
        engine.optimizer.zero_grad(set_to_none=engine.optim_set_to_none)
        if engine.amp and engine.scaler is not None:
            with torch.autocast("cuda", **engine.amp_kwargs):
                _compute_pred_loss()
            engine.scaler.scale(engine.state.output[Keys.LOSS]).backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.scaler.step(engine.optimizer)
            engine.scaler.update()
        else:
            _compute_pred_loss()
            engine.state.output[Keys.LOSS].backward()
            engine.fire_event(IterationEvents.BACKWARD_COMPLETED)
            engine.optimizer.step()
        engine.fire_event(IterationEvents.MODEL_COMPLETED)
        return engine.state.output
