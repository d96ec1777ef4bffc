"""Context encoders: acquisition/tabular context and a context image turned into cross-attention tokens.

The translator (:py:mod:`usgen_monai.networks.translator`) attends to a fixed-length token sequence so that a batch can
mix samples with and without each kind of context. The layout of the sequence is::

    [categorical_0, ..., categorical_{k-1}, scalars, image_0, ..., image_{g*g-1}]
     '------------- tabular tokens -------------'   '----- image tokens -----'

with one token per categorical field (preset, finding, probe, ...), one token for all scalar fields (depth, frequency,
gain, dynamic range, ...) and ``g * g`` tokens for the context image (stage-1 latents pooled onto a ``g x g`` grid).
Each group has learned *null* tokens that replace it when that context is absent, so "no context" is a learned
condition (the classifier-free-guidance null) rather than a constant.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks import Convolution

__all__ = ["TabularContextEncoder", "ImageContextTokenizer", "ContextEncoder"]


def _present_mask(mask: torch.Tensor | None, batch_size: int, device: torch.device, name: str) -> torch.Tensor:
    """Return a boolean (B,) presence mask; ``None`` means present for all samples."""
    if mask is None:
        return torch.ones(batch_size, dtype=torch.bool, device=device)
    mask = torch.as_tensor(mask, device=device).reshape(-1).bool()
    if mask.shape[0] != batch_size:
        raise ValueError(
            f"{name} must have one entry per sample: expected {batch_size}, got shape {tuple(mask.shape)}."
        )
    return mask


class TabularContextEncoder(nn.Module):
    """Tabular acquisition context -> tokens: one embedding per categorical field plus one MLP token for scalars.

    Categorical values arrive as indices where ``0`` means "unknown" for that field (see
    :py:class:`usgen_monai.engines.ContextVocabulary`). Scalars arrive normalised (roughly to ``[0, 1]``) with ``NaN``
    for a missing value; the MLP sees the values (missing set to 0) together with their presence flags.

    Args:
        embed_dim: token dimension ``D``.
        categorical_sizes: number of indices of each categorical field, *including* index 0 ("unknown").
        num_scalars: number of scalar fields; 0 disables the scalar token.
        hidden_dim: hidden width of the scalar MLP. Defaults to ``embed_dim``.

    Example::

        enc = TabularContextEncoder(embed_dim=32, categorical_sizes=(4, 6), num_scalars=3)
        tokens = enc(torch.tensor([[1, 2]]), torch.tensor([[0.5, float("nan"), 0.1]]))  # (1, 3, 32)
    """

    def __init__(
        self, embed_dim: int, categorical_sizes: Sequence[int] = (), num_scalars: int = 0, hidden_dim: int | None = None
    ) -> None:
        super().__init__()
        if embed_dim < 1:
            raise ValueError(f"embed_dim must be positive, got embed_dim={embed_dim}.")
        if any(int(s) < 2 for s in categorical_sizes):
            raise ValueError(
                "each categorical size must be >= 2 (index 0 is 'unknown'), "
                f"got categorical_sizes={tuple(categorical_sizes)}."
            )
        if num_scalars < 0:
            raise ValueError(f"num_scalars must be >= 0, got num_scalars={num_scalars}.")
        self.embed_dim = embed_dim
        self.categorical_sizes = tuple(int(s) for s in categorical_sizes)
        self.num_scalars = num_scalars
        self.embeddings = nn.ModuleList(nn.Embedding(s, embed_dim) for s in self.categorical_sizes)
        hidden = embed_dim if hidden_dim is None else hidden_dim
        self.scalar_mlp = (
            nn.Sequential(nn.Linear(2 * num_scalars, hidden), nn.SiLU(), nn.Linear(hidden, embed_dim))
            if num_scalars > 0
            else None
        )

    @property
    def num_tokens(self) -> int:
        return len(self.categorical_sizes) + (1 if self.num_scalars > 0 else 0)

    def forward(
        self,
        categorical: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """
        Args:
            categorical: ``(B, num_categorical)`` long indices; ``None`` means all fields unknown.
            scalars: ``(B, num_scalars)`` float, ``NaN`` where missing; ``None`` means all missing.
            batch_size: needed only when both inputs are ``None``.

        Returns:
            ``(B, num_tokens, embed_dim)`` tokens.
        """
        device = self._device()
        bsz = _batch_size(batch_size, categorical, scalars)
        tokens = []
        if self.categorical_sizes:
            if categorical is None:
                categorical = torch.zeros(bsz, len(self.categorical_sizes), dtype=torch.long, device=device)
            if categorical.ndim != 2 or categorical.shape[1] != len(self.categorical_sizes):
                raise ValueError(
                    f"categorical must be (B, {len(self.categorical_sizes)}), got shape {tuple(categorical.shape)}."
                )
            categorical = categorical.to(device=device, dtype=torch.long)
            for i, emb in enumerate(self.embeddings):
                idx = categorical[:, i]
                if bool(((idx < 0) | (idx >= emb.num_embeddings)).any()):
                    raise ValueError(
                        f"categorical field {i} has indices outside [0, {emb.num_embeddings}): {idx.tolist()}."
                    )
                tokens.append(emb(idx))
        if self.scalar_mlp is not None:
            if scalars is None:
                scalars = torch.full((bsz, self.num_scalars), float("nan"), device=device)
            if scalars.ndim != 2 or scalars.shape[1] != self.num_scalars:
                raise ValueError(f"scalars must be (B, {self.num_scalars}), got shape {tuple(scalars.shape)}.")
            scalars = scalars.to(device=device, dtype=self.scalar_mlp[0].weight.dtype)
            present = ~torch.isnan(scalars)
            values = torch.where(present, scalars, torch.zeros_like(scalars))
            tokens.append(self.scalar_mlp(torch.cat([values, present.to(values.dtype)], dim=1)))
        if not tokens:
            return torch.zeros(bsz, 0, self.embed_dim, device=device)
        return torch.stack(tokens, dim=1)

    def _device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")


def _batch_size(batch_size: int | None, *tensors: torch.Tensor | None) -> int:
    for t in tensors:
        if t is not None:
            if batch_size is not None and t.shape[0] != batch_size:
                raise ValueError(
                    f"inputs disagree on the batch size: batch_size={batch_size}, tensor shape {tuple(t.shape)}."
                )
            return int(t.shape[0])
    if batch_size is None:
        raise ValueError("batch_size is required when no context input is given.")
    return int(batch_size)


class ImageContextTokenizer(nn.Module):
    """Context image latents -> ``grid_size**2`` tokens: two small convolutions, average pooling onto a grid, and a
    learned position embedding per grid cell.

    The input is the stage-1 (``AutoencoderKL``) latent of the context image, already multiplied by the latent scale
    factor, so appearance (speckle texture, brightness, depth fall-off) is read in the same space the translator
    denoises. A coarse grid keeps appearance but little geometry, so the context image steers style, not structure.

    Args:
        in_channels: latent channels ``C_lat``.
        embed_dim: token dimension ``D``.
        grid_size: side ``g`` of the pooling grid; ``g * g`` tokens.
        hidden_channels: channels of the first convolution.
        spatial_dims: 2 or 3.
    """

    def __init__(
        self, in_channels: int, embed_dim: int, grid_size: int = 2, hidden_channels: int = 32, spatial_dims: int = 2
    ) -> None:
        super().__init__()
        if grid_size < 1:
            raise ValueError(f"grid_size must be >= 1, got grid_size={grid_size}.")
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got spatial_dims={spatial_dims}.")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.grid_size = grid_size
        self.spatial_dims = spatial_dims
        self.conv = nn.Sequential(
            Convolution(spatial_dims, in_channels, hidden_channels, kernel_size=3, act="SWISH", norm=None),
            Convolution(spatial_dims, hidden_channels, embed_dim, kernel_size=3, act=None, norm=None, conv_only=True),
        )
        self.position = nn.Parameter(torch.randn(grid_size**spatial_dims, embed_dim) * 0.02)

    @property
    def num_tokens(self) -> int:
        return self.grid_size**self.spatial_dims

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        """
        Args:
            latents: ``(B, in_channels, h, w[, d])``.

        Returns:
            ``(B, grid_size**spatial_dims, embed_dim)`` tokens.
        """
        if latents.ndim != self.spatial_dims + 2 or latents.shape[1] != self.in_channels:
            raise ValueError(
                f"context latents must be (B, {self.in_channels}, *spatial) with {self.spatial_dims} spatial dims, "
                f"got shape {tuple(latents.shape)}."
            )
        h = self.conv(latents)
        pool = F.adaptive_avg_pool2d if self.spatial_dims == 2 else F.adaptive_avg_pool3d
        h = pool(h, self.grid_size)
        return h.flatten(2).transpose(1, 2) + self.position


class ContextEncoder(nn.Module):
    """Tabular context and/or context-image latents -> a fixed-length token sequence for cross-attention.

    Either part may be absent for a whole batch (pass ``None``) or per sample (``tabular_mask``/``image_mask`` False):
    absent parts are replaced by learned null tokens, so :py:meth:`null_tokens` is exactly the encoding of
    "no context at all" and serves as the classifier-free-guidance null.

    Args:
        embed_dim: token dimension ``D`` (the translator's ``cross_attention_dim``).
        categorical_sizes: sizes of the categorical fields, index 0 = unknown (``ContextVocabulary.categorical_sizes``).
        num_scalars: number of scalar fields (``len(ContextVocabulary.scalar_fields)``).
        image_channels: latent channels of the context image; 0 disables the image tokens.
        image_grid_size: pooling grid side of the image tokens.
        image_hidden_channels: hidden channels of the image tokenizer.
        spatial_dims: 2 or 3.

    Example::

        enc = ContextEncoder(embed_dim=32, categorical_sizes=(4, 6, 3), num_scalars=4, image_channels=3)
        tokens = enc(categorical=cat, scalars=sca, image_latents=z)  # (B, 3 + 1 + 4, 32)
        null = enc.null_tokens(batch_size=B)                           # same shape

    See Also:
        :py:class:`usgen_monai.engines.ContextVocabulary` turns context dictionaries into ``categorical``/``scalars``.
    """

    def __init__(
        self,
        embed_dim: int = 64,
        categorical_sizes: Sequence[int] = (),
        num_scalars: int = 0,
        image_channels: int = 0,
        image_grid_size: int = 2,
        image_hidden_channels: int = 32,
        spatial_dims: int = 2,
    ) -> None:
        super().__init__()
        if not categorical_sizes and num_scalars == 0 and image_channels == 0:
            raise ValueError(
                "ContextEncoder needs at least one input: got categorical_sizes=(), num_scalars=0, image_channels=0."
            )
        self.embed_dim = embed_dim
        self.tabular = TabularContextEncoder(embed_dim, categorical_sizes, num_scalars)
        self.image = (
            ImageContextTokenizer(image_channels, embed_dim, image_grid_size, image_hidden_channels, spatial_dims)
            if image_channels > 0
            else None
        )
        self.null_tabular = nn.Parameter(torch.randn(self.tabular.num_tokens, embed_dim) * 0.02)
        self.null_image = nn.Parameter(
            torch.randn(self.image.num_tokens if self.image is not None else 0, embed_dim) * 0.02
        )

    @property
    def num_tokens(self) -> int:
        return self.tabular.num_tokens + (self.image.num_tokens if self.image is not None else 0)

    def null_tokens(self, batch_size: int) -> torch.Tensor:
        """The encoding of absent context: ``(batch_size, num_tokens, embed_dim)``."""
        null = torch.cat([self.null_tabular, self.null_image], dim=0)
        return null.unsqueeze(0).expand(batch_size, -1, -1)

    def forward(
        self,
        categorical: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
        image_latents: torch.Tensor | None = None,
        tabular_mask: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """
        Args:
            categorical: ``(B, num_categorical)`` long, 0 = unknown; ``None`` with ``scalars=None`` = tabular absent.
            scalars: ``(B, num_scalars)`` float, ``NaN`` = missing.
            image_latents: ``(B, image_channels, h, w)`` scaled stage-1 latents of the context image; ``None`` = absent.
            tabular_mask: ``(B,)`` bool, False replaces that sample's tabular tokens by the null tokens.
            image_mask: ``(B,)`` bool, False replaces that sample's image tokens by the null tokens.
            batch_size: needed only when no tensor is given.

        Returns:
            ``(B, num_tokens, embed_dim)``.
        """
        bsz = _batch_size(batch_size, categorical, scalars, image_latents)
        null = self.null_tokens(bsz)
        n_tab = self.tabular.num_tokens
        parts = []
        if n_tab > 0:
            if categorical is None and scalars is None:
                parts.append(null[:, :n_tab])
            else:
                tab = self.tabular(categorical, scalars, batch_size=bsz)
                keep = _present_mask(tabular_mask, bsz, tab.device, "tabular_mask")[:, None, None]
                parts.append(torch.where(keep, tab, null[:, :n_tab]))
        if self.image is not None:
            if image_latents is None:
                parts.append(null[:, n_tab:])
            else:
                img = self.image(image_latents.to(null.dtype))
                keep = _present_mask(image_mask, bsz, img.device, "image_mask")[:, None, None]
                parts.append(torch.where(keep, img, null[:, n_tab:]))
        elif image_latents is not None:
            raise ValueError("image_latents were given but this ContextEncoder was built with image_channels=0.")
        return torch.cat(parts, dim=1)
