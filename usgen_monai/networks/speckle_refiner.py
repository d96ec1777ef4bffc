"""A pixel-space speckle refiner: the stage after the stage-1 decoder that restores the texture it smooths away."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

__all__ = ["SpeckleRefiner"]


class SpeckleRefiner(nn.Module):
    """Adds speckle to a decoded ultrasound image: ``clip(x + f(x, z), 0, 1)``, where ``f`` is a small fully
    convolutional network of dilated convolutions and ``z`` a Gaussian noise field that supplies the randomness of
    the texture.

    Speckle is not content that an autoencoder should encode but a texture distribution to reproduce: a stage-1
    decoder trained to reconstruct regresses to the local mean and loses it (its reconstructions of simulated B-mode
    images keep about 40 % of the high-frequency energy). The refiner is trained adversarially on the training
    images (:py:class:`usgen_monai.engines.SpeckleRefinerTrainer`: low-pass structure kept, texture statistics and a
    patch discriminator matched), so it learns the texture of whatever data it is trained on, a user's scanner
    included, rather than the simulator's physics. The output convolution starts at zero, so an untrained refiner
    is the identity.

    Args:
        spatial_dims: 2 (images) or 3.
        in_channels: image channels (1 for B-mode).
        noise_channels: channels of the noise field ``z``.
        channels: feature channels of every hidden convolution.
        dilations: dilation of each hidden 3x3 convolution; the receptive field is ``1 + 2 * sum(dilations)``
            pixels (21 by default), wide enough for the speckle grain and its depth-dependent size.
        norm_num_groups: groups of the ``GroupNorm`` after each hidden convolution.

    Example::

        refiner = SpeckleRefiner()
        noise = torch.randn((1, refiner.noise_channels, 128, 128), generator=torch.Generator().manual_seed(0))
        speckled = refiner(decoded, noise)   # (1, 1, 128, 128) in [0, 1]
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        in_channels: int = 1,
        noise_channels: int = 4,
        channels: int = 32,
        dilations: Sequence[int] = (1, 2, 4, 2, 1),
        norm_num_groups: int = 8,
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got spatial_dims={spatial_dims}.")
        if in_channels < 1 or noise_channels < 1 or channels < 1:
            raise ValueError(
                f"channel counts must be >= 1, got in_channels={in_channels}, noise_channels={noise_channels}, "
                f"channels={channels}."
            )
        if channels % norm_num_groups:
            raise ValueError(f"channels={channels} must be divisible by norm_num_groups={norm_num_groups}.")
        if not dilations or min(dilations) < 1:
            raise ValueError(f"dilations must be positive integers, got dilations={list(dilations)}.")
        conv = nn.Conv2d if spatial_dims == 2 else nn.Conv3d
        self.spatial_dims = spatial_dims
        self.in_channels = in_channels
        self.noise_channels = noise_channels
        layers: list[nn.Module] = []
        previous = in_channels + noise_channels
        for dilation in dilations:
            layers += [
                conv(previous, channels, 3, padding=int(dilation), dilation=int(dilation)),
                nn.GroupNorm(norm_num_groups, channels),
                nn.SiLU(),
            ]
            previous = channels
        self.body = nn.Sequential(*layers)
        self.out = conv(channels, in_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def noise_shape(self, images: torch.Tensor) -> tuple[int, ...]:
        """The shape of the noise field for ``images``: ``(B, noise_channels, *spatial)``."""
        return (images.shape[0], self.noise_channels, *images.shape[2:])

    def forward(self, images: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """
        Args:
            images: ``(B, in_channels, H, W[, D])`` decoded images in ``[0, 1]``.
            noise: ``(B, noise_channels, H, W[, D])`` standard normal noise (draw it with a seeded
                ``torch.Generator`` for reproducible texture).

        Returns:
            ``(B, in_channels, H, W[, D])`` refined images in ``[0, 1]``.
        """
        if tuple(noise.shape) != self.noise_shape(images):
            raise ValueError(f"noise must have shape {self.noise_shape(images)}, got {tuple(noise.shape)}.")
        residual = self.out(self.body(torch.cat([images, noise.to(images.dtype)], dim=1)))
        return (images + residual).clamp(0.0, 1.0)
