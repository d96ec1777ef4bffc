"""Classifier-free guidance (Ho and Salimans, https://arxiv.org/abs/2207.12598), one formula for all variants.

A guidance object tells the sampler which condition sets to evaluate (``num_conditions`` of them, built from the
conditions and the null conditions that the caller passes in) and combines the predictions with
:py:func:`combine_guidance`. Outside its ``[start, stop)`` window, or when its scales make it the identity, a
guidance object is inactive and the sampler evaluates only the full condition.

:py:class:`DualGuidance` steers structure and appearance separately, as in InstructPix2Pix
(Brooks et al., https://arxiv.org/abs/2211.09800)::

    eps = eps(0, 0) + s_sem * (eps(sem, 0) - eps(0, 0)) + s_ctx * (eps(sem, ctx) - eps(sem, 0))

so ``s_sem`` scales the effect of the mask and ``s_ctx`` the effect of the context given the mask.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

__all__ = ["combine_guidance", "ClassifierFreeGuidance", "DualGuidance"]


def combine_guidance(predictions: Sequence[torch.Tensor], scales: Sequence[float]) -> torch.Tensor:
    """The guidance formula: a chain of conditions, each adding one condition to the previous set,

    ``out = p[0] + sum_i scales[i] * (p[i + 1] - p[i])``.

    With ``predictions = [uncond, cond]`` this is plain CFG, ``uncond + s * (cond - uncond)``; with
    ``[uncond, semantic_only, semantic_and_context]`` and two scales it is :py:class:`DualGuidance`.

    Args:
        predictions: ``n + 1`` predictions of equal shape, from the least to the most conditioned.
        scales: ``n`` guidance scales.
    """
    if len(predictions) != len(scales) + 1:
        raise ValueError(
            f"combine_guidance needs one more prediction than scales, got {len(predictions)} predictions and "
            f"{len(scales)} scales."
        )
    out = predictions[0]
    for scale, lower, higher in zip(scales, predictions[:-1], predictions[1:], strict=True):
        out = out + float(scale) * (higher - lower)
    return out


def _check_window(start: float, stop: float) -> None:
    if not (0.0 <= start < stop <= 1.0):
        raise ValueError(f"guidance window needs 0 <= start < stop <= 1, got start={start}, stop={stop}.")


def _check_scale(name: str, value: float) -> None:
    if not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite number, got {name}={value}.")


class _Guidance:
    """Shared window logic: active for steps ``i`` of ``n`` with ``start <= i / n < stop``."""

    num_conditions: int = 1

    def __init__(self, start: float, stop: float) -> None:
        _check_window(start, stop)
        self.start = float(start)
        self.stop = float(stop)

    @property
    def is_identity(self) -> bool:
        return False

    def is_active(self, step_index: int, num_steps: int) -> bool:
        """Whether guidance applies at ``step_index`` (0-based) of ``num_steps``."""
        if self.is_identity:
            return False
        fraction = step_index / max(num_steps, 1)
        return self.start <= fraction < self.stop

    def condition_sets(
        self, conditions: Mapping[str, torch.Tensor], null_conditions: Mapping[str, torch.Tensor]
    ) -> list[dict[str, torch.Tensor]]:
        raise NotImplementedError

    def __call__(self, predictions: Sequence[torch.Tensor]) -> torch.Tensor:
        raise NotImplementedError


def _nulled(
    conditions: Mapping[str, torch.Tensor], null_conditions: Mapping[str, torch.Tensor], keys: Sequence[str]
) -> dict[str, torch.Tensor]:
    out = dict(conditions)
    for key in keys:
        if key not in conditions:
            continue
        if key not in null_conditions:
            raise ValueError(f"null_conditions has no entry for condition {key!r}; got keys {sorted(null_conditions)}.")
        out[key] = null_conditions[key]
    return out


class ClassifierFreeGuidance(_Guidance):
    """Plain classifier-free guidance: ``uncond + scale * (cond - uncond)``.

    Args:
        scale: guidance scale; 1 returns the conditional prediction (and skips the unconditional pass), 0 the
            unconditional one.
        start: first fraction of the sampling steps with guidance.
        stop: fraction of the sampling steps where guidance ends.
        keys: the condition names that are replaced by their nulls for the unconditional pass; ``None`` = all.

    Example::

        guidance = ClassifierFreeGuidance(scale=3.0)
        sets = guidance.condition_sets({"class_labels": y}, {"class_labels": torch.zeros_like(y)})
        eps = guidance([model(x, t, **s) for s in sets])
    """

    num_conditions = 2

    def __init__(self, scale: float = 1.0, start: float = 0.0, stop: float = 1.0, keys: Sequence[str] | None = None):
        super().__init__(start, stop)
        _check_scale("scale", scale)
        self.scale = float(scale)
        self.keys = None if keys is None else tuple(keys)

    @property
    def is_identity(self) -> bool:
        return self.scale == 1.0

    def condition_sets(
        self, conditions: Mapping[str, torch.Tensor], null_conditions: Mapping[str, torch.Tensor]
    ) -> list[dict[str, torch.Tensor]]:
        """``[unconditional, conditional]`` keyword sets for the denoiser."""
        keys = tuple(conditions) if self.keys is None else self.keys
        return [_nulled(conditions, null_conditions, keys), dict(conditions)]

    def __call__(self, predictions: Sequence[torch.Tensor]) -> torch.Tensor:
        return combine_guidance(predictions, [self.scale])


class DualGuidance(_Guidance):
    """Two-scale guidance: one scale for the semantic (mask) condition, one for the context condition.

    Args:
        semantic_scale: ``s_sem``; 0 ignores the mask, 1 follows it as trained, > 1 enforces it.
        context_scale: ``s_ctx``; the same for the context, given the mask.
        start: first fraction of the sampling steps with guidance.
        stop: fraction of the sampling steps where guidance ends.
        semantic_key: condition name of the semantic map.
        context_key: condition name of the context tokens.

    ``(1, 1)`` is the fully conditional prediction (inactive, one pass), ``(0, 0)`` the unconditional one, ``(1, 0)``
    the semantic-only one, and ``(s, s)`` equals :py:class:`ClassifierFreeGuidance` with scale ``s``.
    """

    num_conditions = 3

    def __init__(
        self,
        semantic_scale: float = 1.0,
        context_scale: float = 1.0,
        start: float = 0.0,
        stop: float = 1.0,
        semantic_key: str = "semantic",
        context_key: str = "context",
    ) -> None:
        super().__init__(start, stop)
        _check_scale("semantic_scale", semantic_scale)
        _check_scale("context_scale", context_scale)
        if semantic_key == context_key:
            raise ValueError(f"semantic_key and context_key must differ, got {semantic_key!r} for both.")
        self.semantic_scale = float(semantic_scale)
        self.context_scale = float(context_scale)
        self.semantic_key = semantic_key
        self.context_key = context_key

    @property
    def is_identity(self) -> bool:
        return self.semantic_scale == 1.0 and self.context_scale == 1.0

    def condition_sets(
        self, conditions: Mapping[str, torch.Tensor], null_conditions: Mapping[str, torch.Tensor]
    ) -> list[dict[str, torch.Tensor]]:
        """``[neither, semantic only, semantic and context]`` keyword sets for the denoiser."""
        for key in (self.semantic_key, self.context_key):
            if key not in conditions:
                raise ValueError(f"DualGuidance needs condition {key!r}; got keys {sorted(conditions)}.")
        both_null = _nulled(conditions, null_conditions, (self.semantic_key, self.context_key))
        semantic_only = _nulled(conditions, null_conditions, (self.context_key,))
        return [both_null, semantic_only, dict(conditions)]

    def __call__(self, predictions: Sequence[torch.Tensor]) -> torch.Tensor:
        return combine_guidance(predictions, [self.semantic_scale, self.context_scale])
