"""Losses of the diffusion engines."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ChannelWeightedMSELoss"]


class ChannelWeightedMSELoss(nn.Module):
    """Mean squared error with one weight per channel: ``mean(w[c] * (input - target) ** 2)``, the weights normalised
    to mean 1 so the loss keeps the scale of ``torch.nn.MSELoss``.

    The label-map prior denoises one-hot maps whose findings (a lesion, an effusion, a tendon tear) cover a few
    percent of the pixels; with plain MSE their channels barely count and the prior learns the layers of anatomy but
    not the finding it is conditioned on. Weighting those channels up makes the finding worth learning.

    Args:
        weights: one non-negative weight per channel (dimension 1 of the inputs), not all zero.

    Shapes:
        input, target: ``(B, C, *spatial)`` with ``C = len(weights)``.
    """

    def __init__(self, weights: Sequence[float]) -> None:
        super().__init__()
        w = torch.as_tensor([float(v) for v in weights], dtype=torch.float32)
        if w.ndim != 1 or w.numel() == 0 or bool((w < 0).any()) or float(w.sum()) == 0.0:
            raise ValueError(f"weights must be non-negative, one per channel, not all zero; got {list(weights)}.")
        self.register_buffer("weights", w / w.mean())

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        if input.shape != target.shape or input.ndim < 2 or input.shape[1] != self.weights.numel():
            raise ValueError(
                f"input and target must both be (B, {self.weights.numel()}, ...), got {tuple(input.shape)} and "
                f"{tuple(target.shape)}."
            )
        w = self.weights.to(input.dtype).reshape(1, -1, *([1] * (input.ndim - 2)))
        return (w * (input - target) ** 2).mean()
