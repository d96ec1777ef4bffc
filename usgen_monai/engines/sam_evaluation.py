"""Evaluator metrics for the promptable segmentation bundle beyond MONAI's Dice: head-circumference error as HC18
scores it (:py:func:`usgen_monai.metrics.head_circumference_error`), on ``monai.engines`` evaluators.

Example (``bundles/sam/configs/evaluate.json`` adds it to ``validate#additional_metrics``)::

    "test_hc_abs_error_mm": {
        "_target_": "usgen_monai.engines.sam_evaluation.HeadCircumferenceError",
        "pred_key": "pred", "label_key": "label", "spacing_key": "pixel_spacing_mm"
    }
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from ignite.metrics import Metric

from usgen_monai.metrics.head_circumference import head_circumference_error

__all__ = ["HeadCircumferenceError"]


class HeadCircumferenceError(Metric):
    """Mean (or median) head-circumference error of an evaluator's predictions, in mm.

    Every item of ``engine.state.output`` (a list of dicts, as ``monai.engines`` evaluators decollate their batches)
    is scored by :py:func:`usgen_monai.metrics.head_circumference_error` from its binary ``pred_key`` and
    ``label_key`` masks (MONAI axis order) and its ``spacing_key`` (row, column) pixel spacing in mm (pixels when an
    item has none). Items whose reference has no measurable ellipse are left out. In a distributed run every rank's
    errors are gathered before reducing. :py:attr:`errors` holds the last computation's per-item errors.

    Args:
        pred_key: the binary prediction.
        label_key: the reference mask.
        spacing_key: the item's pixel spacing.
        statistic: ``"abs_error_mm"`` (HC18's score) or ``"rel_error"`` (relative to the reference).
        reduction: ``"mean"`` or ``"median"``.
        output_transform: ignite's transform of ``engine.state.output``.
    """

    def __init__(
        self,
        pred_key: str = "pred",
        label_key: str = "label",
        spacing_key: str = "pixel_spacing_mm",
        statistic: str = "abs_error_mm",
        reduction: str = "mean",
        output_transform: Callable = lambda x: x,
        device: str | torch.device = "cpu",
    ) -> None:
        if statistic not in ("abs_error_mm", "rel_error"):
            raise ValueError(f"statistic must be 'abs_error_mm' or 'rel_error', got statistic={statistic!r}.")
        if reduction not in ("mean", "median"):
            raise ValueError(f"reduction must be 'mean' or 'median', got reduction={reduction!r}.")
        self.pred_key, self.label_key, self.spacing_key = pred_key, label_key, spacing_key
        self.statistic, self.reduction = statistic, reduction
        self.errors: list[float] = []
        super().__init__(output_transform=output_transform, device=device)

    def reset(self) -> None:
        self._values: list[float] = []

    @staticmethod
    def _spacing(value: Any) -> Sequence[float]:
        if value is None:
            return (1.0, 1.0)
        spacing = value.tolist() if hasattr(value, "tolist") else list(value)
        return [float(s) for s in np.asarray(spacing, dtype=np.float64).reshape(-1)[:2]]

    def update(self, output: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> None:
        items = [output] if isinstance(output, Mapping) else list(output)
        for item in items:
            if self.pred_key not in item or self.label_key not in item:
                raise KeyError(
                    f"HeadCircumferenceError needs {self.pred_key!r} and {self.label_key!r} in the evaluator output, "
                    f"got keys {sorted(map(str, item))}."
                )
            score = head_circumference_error(
                item[self.pred_key], item[self.label_key], self._spacing(item.get(self.spacing_key)),
                reverse_indexing=True,
            )  # fmt: skip
            if not math.isnan(score[self.statistic]):
                self._values.append(float(score[self.statistic]))

    def compute(self) -> float:
        values = list(self._values)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, values)
            values = [v for rank in gathered for v in rank]
        self.errors = values
        if not self.errors:
            return math.nan
        return float(np.mean(self.errors) if self.reduction == "mean" else np.median(self.errors))
