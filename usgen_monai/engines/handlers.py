"""Ignite training handlers every bundle's training uses.

* :py:class:`PolynomialLRSchedule`: poly learning-rate decay (MGCC's schedule) as a stateless handler, so a resumed or
  extended run continues the schedule;
* :py:class:`BestWeightsSaver`: writes the network's ``state_dict`` (the MONAI model-zoo ``models/model.pt``) whenever
  the validation key metric improves, and remembers the best value across resumed runs.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn as nn

from usgen_monai.utils import atomic_write

__all__ = ["BestWeightsSaver", "PolynomialLRSchedule"]


class PolynomialLRSchedule:
    """Ignite handler: poly learning-rate decay ``lr = base_lr * (1 - i / N) ** power`` set before every iteration.

    ``i`` is the engine's 0-based iteration and ``N`` its total iterations (``max_iterations``, or ``max_epochs *
    epoch_length`` of the run), both read from the engine at each iteration, so the schedule needs no state of its
    own: a resumed run continues it, and a run extended with a larger ``max_epochs`` stretches it (a torch scheduler
    restored from a checkpoint would keep its old length and sit at zero). ``base_lr`` is each parameter group's
    ``initial_lr`` (stored in the group on first use, so the optimizer's checkpoint carries it), i.e. the optimizer's
    ``lr``. MGCC: SGD with lr 0.01 and ``power = 0.9``.

    Args:
        optimizer: the optimizer whose groups are scheduled.
        power: the decay exponent. Defaults to 0.9.
        max_iterations: total iterations ``N``; ``None`` reads it from the engine. Defaults to None.
        min_lr: floor of the learning rate. Defaults to 0.0.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        power: float = 0.9,
        max_iterations: int | None = None,
        min_lr: float = 0.0,
    ) -> None:
        if not power >= 0:
            raise ValueError(f"power must be >= 0, got power={power}.")
        if max_iterations is not None and max_iterations < 1:
            raise ValueError(f"max_iterations must be >= 1 or None, got max_iterations={max_iterations}.")
        self.optimizer = optimizer
        self.power = float(power)
        self.max_iterations = max_iterations
        self.min_lr = float(min_lr)

    def attach(self, engine: Any) -> None:
        """Set the learning rate on every ``ITERATION_STARTED`` of ``engine``."""
        from ignite.engine import Events

        engine.add_event_handler(Events.ITERATION_STARTED, self)

    def factor(self, iteration: int, total: int) -> float:
        """``(1 - min(iteration, total) / total) ** power``."""
        return (1.0 - min(max(iteration, 0), total) / total) ** self.power if total > 0 else 1.0

    def __call__(self, engine: Any) -> None:
        total = self.max_iterations or (engine.state.max_epochs or 0) * (engine.state.epoch_length or 0)
        factor = self.factor(engine.state.iteration - 1, int(total))
        for group in self.optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
            group["lr"] = max(group["initial_lr"] * factor, self.min_lr)


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


class BestWeightsSaver:
    """Ignite handler on an evaluator: write ``network.state_dict()`` to ``filename`` whenever the metric improves.

    The file is a plain state dict (written atomically, by rank 0 of a distributed run, from the module inside a
    ``DistributedDataParallel``), the layout of the MONAI model zoo's ``models/model.pt``: MONAI's ``CheckpointLoader``,
    ``monai.bundle ckpt_export``, MONAI Label and ``torch.load(..., weights_only=True)`` read it. The first validation
    always writes the file; a NaN metric (e.g. Dice over images without foreground) never counts as better.

    ``state_dict()`` / ``load_state_dict()`` hold the best value and its epoch: list the saver in the training
    checkpoint's ``save_dict`` (:py:class:`usgen_monai.engines.checkpoint.ResumableCheckpoint`) so a resumed run does
    not overwrite the best weights with worse ones.

    Args:
        network: the network being trained (a DDP wrapper is unwrapped).
        filename: where to write the weights (e.g. ``<bundle>/models/model.pt``).
        metric_name: the metric of ``engine.state.metrics`` to compare; ``None``: the evaluator's key metric.
        mode: ``"max"`` (Dice) or ``"min"`` (a loss).
    """

    def __init__(
        self, network: nn.Module, filename: str | os.PathLike, metric_name: str | None = None, mode: str = "max"
    ) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got mode={mode!r}.")
        self.network = network
        self.filename = os.fspath(filename)
        self.metric_name = metric_name
        self.mode = mode
        self.best_metric: float | None = None
        self.best_epoch = 0
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Any) -> None:
        """Compare after every ``EPOCH_COMPLETED`` of the evaluator ``engine`` (one per validation)."""
        from ignite.engine import Events

        engine.add_event_handler(Events.EPOCH_COMPLETED, self)

    def _better(self, value: float) -> bool:
        if self.best_metric is None:
            return True
        if math.isnan(value):
            return False
        if math.isnan(self.best_metric):
            return True
        return value > self.best_metric if self.mode == "max" else value < self.best_metric

    def __call__(self, engine: Any) -> None:
        name = self.metric_name or getattr(engine.state, "key_metric_name", None)
        metrics = engine.state.metrics
        if name not in metrics:
            raise KeyError(f"BestWeightsSaver: metric {name!r} not computed; the evaluator has {sorted(metrics)}.")
        value = float(metrics[name])
        if not self._better(value):
            return
        self.best_metric, self.best_epoch = value, int(engine.state.epoch)
        if _is_main_process():
            module = (
                self.network.module if isinstance(self.network, nn.parallel.DistributedDataParallel) else self.network
            )
            with atomic_write(self.filename, fsync=True) as tmp:
                torch.save(module.state_dict(), tmp)
            self.logger.info(f"{name} {value:.4f} at epoch {self.best_epoch}: weights written to {self.filename}")

    def state_dict(self) -> dict[str, Any]:
        """``{"best_metric": float or None, "best_epoch": int}``."""
        return {"best_metric": self.best_metric, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the best value and epoch of an earlier run."""
        best = state.get("best_metric")
        self.best_metric = None if best is None else float(best)
        self.best_epoch = int(state.get("best_epoch", 0))
