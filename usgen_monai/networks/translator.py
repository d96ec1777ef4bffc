"""Semantic + context conditioned latent denoisers ("translators") for mask-to-ultrasound latent diffusion.

Two ways of injecting the semantic (one-hot label map) condition sit behind one interface,
:py:class:`LatentTranslator`, so that they can be trained, sampled and compared with the same engines:

* :py:class:`ControlNetTranslator`: MONAI ``DiffusionModelUNet`` + MONAI ``ControlNet`` on the one-hot map
  (Zhang and Agrawala, https://arxiv.org/abs/2302.05543). The ControlNet's conditioning embedding downsamples the map
  itself (strided convolutions), so the map is fed at **image** resolution and thin structures (tendon fibres, a small
  tear) are not lost to a nearest-neighbour resize. This is why the engines do not use MONAI's
  ``ControlNetLatentDiffusionInferer``, which resizes the map to the latent size with nearest interpolation.
* :py:class:`SPADETranslator`: MONAI ``SPADEDiffusionModelUNet`` (Park et al., https://arxiv.org/abs/1903.07291),
  where the map modulates the decoder's normalisation layers. The map is area-averaged to the latent size first (soft
  class fractions instead of a nearest pick), then MONAI resizes it to each decoder level.

Context (tabular acquisition context and/or a context image) enters both by cross-attention on the tokens of a
:py:class:`~usgen_monai.networks.ContextEncoder` owned by the translator, so one ``state_dict`` holds everything.

Null conditions (classifier-free guidance and condition dropout): the null semantic map is all zeros (no class at
any pixel, distinct from background, which is channel 0 set to one); the null context is the encoder's learned null
tokens. Both come from :py:meth:`LatentTranslator.null_conditions`, and training drops conditions with the
``semantic_mask``/``tabular_mask``/``image_mask`` flags of :py:meth:`LatentTranslator.forward`, so the two agree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.blocks.spade_norm import SPADE
from monai.networks.nets import ControlNet, DiffusionModelUNet, SPADEDiffusionModelUNet
from monai.networks.utils import copy_model_state

from usgen_monai.networks.context_encoder import ContextEncoder

__all__ = ["LatentTranslator", "ControlNetTranslator", "SPADETranslator"]


class LatentTranslator(nn.Module):
    """Common interface of the semantic + context conditioned latent denoisers.

    Subclasses implement :py:meth:`_denoise` and :py:meth:`semantic_modules` and set
    ``semantic_resolution_multiple`` (how many times larger than the latent the semantic map is expected to be, or
    ``None`` for "any size"; not to be confused with the semantic guidance scale of
    :py:class:`usgen_monai.engines.DualGuidance`).

    Args:
        spatial_dims: 2 or 3.
        latent_channels: channels ``C_lat`` of the stage-1 latents (input and output of the denoiser).
        num_classes: channels ``K`` of the one-hot semantic map (the unified label space, background included).
        context_encoder: tokens for cross-attention; ``None`` builds a denoiser without context.
    """

    semantic_resolution_multiple: int | None = None

    def __init__(
        self, spatial_dims: int, latent_channels: int, num_classes: int, context_encoder: ContextEncoder | None
    ) -> None:
        super().__init__()
        if spatial_dims not in (2, 3):
            raise ValueError(f"spatial_dims must be 2 or 3, got spatial_dims={spatial_dims}.")
        if latent_channels < 1 or num_classes < 1:
            raise ValueError(
                f"latent_channels and num_classes must be positive, got latent_channels={latent_channels}, "
                f"num_classes={num_classes}."
            )
        self.spatial_dims = spatial_dims
        self.latent_channels = latent_channels
        self.num_classes = num_classes
        self.context_encoder = context_encoder

    # ---- conditions -------------------------------------------------------------------------------------------------
    def semantic_shape(self, latent_spatial_shape: Sequence[int]) -> tuple[int, ...]:
        """Expected spatial shape of the semantic map for latents of ``latent_spatial_shape``."""
        scale = 1 if self.semantic_resolution_multiple is None else self.semantic_resolution_multiple
        return tuple(int(s) * scale for s in latent_spatial_shape)

    def null_semantic(self, batch_size: int, latent_spatial_shape: Sequence[int], device=None) -> torch.Tensor:
        """The null semantic map: zeros of ``(batch_size, num_classes, *semantic_shape)``."""
        return torch.zeros(batch_size, self.num_classes, *self.semantic_shape(latent_spatial_shape), device=device)

    def null_context(self, batch_size: int) -> torch.Tensor | None:
        """The null context tokens ``(batch_size, N, D)``, or ``None`` when the translator has no context."""
        return None if self.context_encoder is None else self.context_encoder.null_tokens(batch_size)

    def encode_context(
        self,
        categorical: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
        image_latents: torch.Tensor | None = None,
        tabular_mask: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor | None:
        """Context tokens ``(B, N, D)`` (see :py:meth:`ContextEncoder.forward`); ``None`` without a context encoder."""
        if self.context_encoder is None:
            if categorical is not None or scalars is not None or image_latents is not None:
                raise ValueError("context inputs were given but this translator was built without a context_encoder.")
            return None
        return self.context_encoder(categorical, scalars, image_latents, tabular_mask, image_mask, batch_size)

    def null_conditions(self, conditions: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Null counterparts of ``conditions`` (keys ``semantic`` and/or ``context``) with the same shapes."""
        null: dict[str, torch.Tensor] = {}
        if conditions.get("semantic") is not None:
            null["semantic"] = torch.zeros_like(conditions["semantic"])
        if conditions.get("context") is not None:
            ctx = conditions["context"]
            tokens = self.null_context(ctx.shape[0])
            if tokens is None:
                raise ValueError("a context was given but this translator was built without a context_encoder.")
            null["context"] = tokens.to(device=ctx.device, dtype=ctx.dtype)
        return null

    # ---- global context ---------------------------------------------------------------------------------------------
    def _init_global_context(self, enabled: bool) -> None:
        """With ``enabled`` (and a context encoder), a zero-initialised linear map from the mean context token to the
        denoiser's timestep embedding, added where MONAI adds class embeddings: a direct, position-independent path
        for global appearance fields (gain, dynamic range) besides cross-attention. Zero initialisation leaves a
        trained model's outputs unchanged until fine-tuning teaches the path."""
        self._global_bias: torch.Tensor | None = None
        self.context_to_time: nn.Linear | None = None
        if not enabled or self.context_encoder is None:
            return
        time_embed = self.unet.time_embed
        self.context_to_time = nn.Linear(self.context_encoder.embed_dim, time_embed[-1].out_features)
        nn.init.zeros_(self.context_to_time.weight)
        nn.init.zeros_(self.context_to_time.bias)
        time_embed.register_forward_hook(self._add_global_context)

    def _add_global_context(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        return output if self._global_bias is None else output + self._global_bias.to(output.dtype)

    def _denoise_with_global_context(
        self, x: torch.Tensor, timesteps: torch.Tensor, semantic: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        if self.context_to_time is None or context is None:
            return self._denoise(x, timesteps, semantic, context)
        self._global_bias = self.context_to_time(context.mean(dim=1))
        try:
            return self._denoise(x, timesteps, semantic, context)
        finally:
            self._global_bias = None

    # ---- forward ----------------------------------------------------------------------------------------------------
    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        semantic: torch.Tensor | None = None,
        context: torch.Tensor | None = None,
        semantic_mask: torch.Tensor | None = None,
        categorical: torch.Tensor | None = None,
        scalars: torch.Tensor | None = None,
        context_latents: torch.Tensor | None = None,
        tabular_mask: torch.Tensor | None = None,
        image_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """
        Args:
            x: noisy latents ``(B, latent_channels, h, w[, d])``.
            timesteps: ``(B,)`` diffusion timesteps.
            semantic: one-hot map ``(B, num_classes, *semantic_shape(x.shape[2:]))``; ``None`` = null semantic.
            context: precomputed context tokens ``(B, N, D)`` (sampling computes them once). When ``None`` and the
                translator has a context encoder, tokens are encoded from the raw inputs below (training path);
                with no raw inputs either, the null tokens are used.
            semantic_mask: ``(B,)`` bool, False replaces that sample's semantic map by the null map (condition dropout).
            categorical, scalars, context_latents, tabular_mask, image_mask: raw context, see
                :py:meth:`ContextEncoder.forward`.

        Returns:
            the prediction (noise, velocity or sample, per the training objective), shape of ``x``.
        """
        if x.ndim != self.spatial_dims + 2 or x.shape[1] != self.latent_channels:
            raise ValueError(
                f"x must be (B, {self.latent_channels}, *spatial) with {self.spatial_dims} spatial dims, "
                f"got shape {tuple(x.shape)}."
            )
        bsz = x.shape[0]
        if context is None and self.context_encoder is not None:
            context = self.encode_context(
                categorical, scalars, context_latents, tabular_mask, image_mask, batch_size=bsz
            ).to(x.dtype)
        elif context is not None and self.context_encoder is None:
            raise ValueError("context tokens were given but this translator was built without a context_encoder.")
        semantic = self._resolve_semantic(semantic, semantic_mask, x)
        return self._denoise_with_global_context(x, timesteps, semantic, context)

    def _resolve_semantic(
        self, semantic: torch.Tensor | None, semantic_mask: torch.Tensor | None, x: torch.Tensor
    ) -> torch.Tensor:
        expected = self.semantic_shape(x.shape[2:])
        if semantic is None:
            return self.null_semantic(x.shape[0], x.shape[2:], device=x.device).to(x.dtype)
        if semantic.shape[0] != x.shape[0] or semantic.shape[1] != self.num_classes:
            raise ValueError(
                f"semantic must be (B={x.shape[0]}, num_classes={self.num_classes}, ...), "
                f"got shape {tuple(semantic.shape)}."
            )
        if self.semantic_resolution_multiple is not None and tuple(semantic.shape[2:]) != expected:
            raise ValueError(
                f"semantic spatial shape must be {expected} ({self.semantic_resolution_multiple}x the latent shape "
                f"{tuple(x.shape[2:])}), got {tuple(semantic.shape[2:])}."
            )
        semantic = semantic.to(x.dtype)
        if semantic_mask is not None:
            keep = torch.as_tensor(semantic_mask, device=x.device).reshape(-1).bool()
            if keep.shape[0] != x.shape[0]:
                raise ValueError(f"semantic_mask must have {x.shape[0]} entries, got shape {tuple(keep.shape)}.")
            keep = keep.reshape(-1, *([1] * (semantic.ndim - 1)))
            semantic = torch.where(keep, semantic, torch.zeros_like(semantic))
        return semantic

    def _denoise(
        self, x: torch.Tensor, timesteps: torch.Tensor, semantic: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        raise NotImplementedError(f"Subclass {self.__class__.__name__} must implement _denoise.")

    # ---- fine-tuning ------------------------------------------------------------------------------------------------
    def semantic_modules(self) -> list[nn.Module]:
        """The modules of the semantic branch (ControlNet, or the SPADE modulation layers)."""
        raise NotImplementedError(f"Subclass {self.__class__.__name__} must implement semantic_modules.")

    def semantic_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters of the semantic branch."""
        for module in self.semantic_modules():
            yield from module.parameters()

    def base_parameters(self) -> Iterator[nn.Parameter]:
        """All parameters outside the semantic branch (denoiser and context encoder)."""
        semantic_ids = {id(p) for p in self.semantic_parameters()}
        for p in self.parameters():
            if id(p) not in semantic_ids:
                yield p

    def freeze_base(self) -> list[nn.Parameter]:
        """Stop gradients to everything but the semantic branch; returns the trainable (semantic) parameters, ready to
        hand to an optimizer for semantic-only fine-tuning on a new data set."""
        for p in self.base_parameters():
            p.requires_grad_(False)
        params = list(self.semantic_parameters())
        for p in params:
            p.requires_grad_(True)
        return params


class ControlNetTranslator(LatentTranslator):
    """``DiffusionModelUNet`` with cross-attention on context tokens plus a ``ControlNet`` on the one-hot label map.

    The semantic map is expected at ``2 ** (len(conditioning_embedding_num_channels) - 1)`` times the latent size:
    for an ``AutoencoderKL`` with ``n`` levels (downsampling ``2 ** (n - 1)``) give ``n`` embedding channels and pass
    the map at image resolution.

    Args:
        spatial_dims: 2 or 3.
        latent_channels: latent channels ``C_lat``.
        num_classes: one-hot channels ``K``.
        channels: UNet (and ControlNet) channels per level.
        attention_levels: levels with (cross-)attention.
        num_res_blocks: residual blocks per level.
        num_head_channels: channels per attention head (int or one per level).
        norm_num_groups: group-norm groups; every entry of ``channels`` must be divisible by it.
        transformer_num_layers: transformer layers per attention block.
        context_encoder: context tokens for cross-attention, ``None`` for a semantic-only translator.
        conditioning_embedding_num_channels: channels of the ControlNet's conditioning embedding; its length sets
            the downsampling of the semantic map (see above).
        conditioning_scale: multiplier of the ControlNet residuals.
        resblock_updown: use residual blocks for up/downsampling.
        global_context: also add a projection of the mean context token to the UNet's timestep embedding
            (zero-initialised; see :py:meth:`LatentTranslator._init_global_context`).
        use_flash_attention: compute attention with ``torch.nn.functional.scaled_dot_product_attention`` (MONAI's
            option of the same name): the same weights and outputs, about twice as fast at a 64 x 64 latent on a CPU
            (``benchmarks/csg_sampling.py``).

    Example::

        enc = ContextEncoder(embed_dim=32, categorical_sizes=(4, 6), num_scalars=2, image_channels=3)
        net = ControlNetTranslator(latent_channels=3, num_classes=5, channels=(32, 64), attention_levels=(False, True),
                                   context_encoder=enc, conditioning_embedding_num_channels=(16, 32, 64))
        pred = net(z_t, t, semantic=onehot_128, categorical=cat, scalars=sca)  # z_t: (B, 3, 32, 32)
    """

    def __init__(
        self,
        spatial_dims: int = 2,
        latent_channels: int = 3,
        num_classes: int = 2,
        channels: Sequence[int] = (32, 64, 64),
        attention_levels: Sequence[bool] = (False, True, True),
        num_res_blocks: int | Sequence[int] = 1,
        num_head_channels: int | Sequence[int] = 16,
        norm_num_groups: int = 16,
        transformer_num_layers: int = 1,
        context_encoder: ContextEncoder | None = None,
        conditioning_embedding_num_channels: Sequence[int] = (16, 32, 64),
        conditioning_scale: float = 1.0,
        resblock_updown: bool = False,
        global_context: bool = False,
        use_flash_attention: bool = False,
    ) -> None:
        super().__init__(spatial_dims, latent_channels, num_classes, context_encoder)
        if len(conditioning_embedding_num_channels) < 1:
            raise ValueError(
                "conditioning_embedding_num_channels needs at least one entry, got "
                f"conditioning_embedding_num_channels={tuple(conditioning_embedding_num_channels)}."
            )
        with_conditioning = context_encoder is not None
        cross_dim = context_encoder.embed_dim if context_encoder is not None else None
        common = dict(
            spatial_dims=spatial_dims,
            num_res_blocks=num_res_blocks,
            channels=tuple(channels),
            attention_levels=tuple(attention_levels),
            norm_num_groups=norm_num_groups,
            num_head_channels=num_head_channels,
            with_conditioning=with_conditioning,
            transformer_num_layers=transformer_num_layers,
            cross_attention_dim=cross_dim,
            resblock_updown=resblock_updown,
            use_flash_attention=use_flash_attention,
        )
        self.unet = DiffusionModelUNet(in_channels=latent_channels, out_channels=latent_channels, **common)
        self.controlnet = ControlNet(
            in_channels=latent_channels,
            conditioning_embedding_in_channels=num_classes,
            conditioning_embedding_num_channels=tuple(conditioning_embedding_num_channels),
            **common,
        )
        self.semantic_resolution_multiple = 2 ** (len(conditioning_embedding_num_channels) - 1)
        self.conditioning_scale = conditioning_scale
        self._init_global_context(global_context)

    def initialize_semantic_from_base(self) -> None:
        """Copy the base UNet's encoder weights into the ControlNet (its zero convolutions stay zero), the usual start
        of ControlNet training on a trained base model."""
        copy_model_state(self.controlnet, self.unet, inplace=True)

    def reset_semantic_branch(self) -> None:
        """Forget what the ControlNet learned: re-initialise it as a new one (zero convolutions zero, so its residuals
        vanish and the translator predicts what the base alone does) and copy the base UNet's encoder into it.

        The start of ControlNet training on new labelled data over a kept base model, when the pretrained ControlNet
        must not contribute what it learned from other masks (e.g. a study whose generator may see only its own
        labelled pairs).
        """
        for module in self.controlnet.modules():
            if module is not self.controlnet and hasattr(module, "reset_parameters"):
                module.reset_parameters()
        zero_convolutions = [self.controlnet.controlnet_cond_embedding.conv_out, self.controlnet.controlnet_mid_block]
        zero_convolutions += list(self.controlnet.controlnet_down_blocks)
        with torch.no_grad():
            for module in zero_convolutions:
                for p in module.parameters():
                    p.zero_()
        self.initialize_semantic_from_base()

    def semantic_modules(self) -> list[nn.Module]:
        return [self.controlnet]

    def _denoise(
        self, x: torch.Tensor, timesteps: torch.Tensor, semantic: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        down_res, mid_res = self.controlnet(
            x=x,
            timesteps=timesteps,
            controlnet_cond=semantic,
            conditioning_scale=self.conditioning_scale,
            context=context,
        )
        return self.unet(
            x=x,
            timesteps=timesteps,
            context=context,
            down_block_additional_residuals=down_res,
            mid_block_additional_residual=mid_res,
        )


class SPADETranslator(LatentTranslator):
    """``SPADEDiffusionModelUNet`` with cross-attention on context tokens; the one-hot map modulates the decoder.

    The map may come at any resolution: it is area-averaged to the latent size (class fractions per latent pixel).

    Args:
        spatial_dims: 2 or 3.
        latent_channels: latent channels ``C_lat``.
        num_classes: one-hot channels ``K``.
        channels: UNet channels per level.
        attention_levels: levels with (cross-)attention.
        num_res_blocks: residual blocks per level.
        num_head_channels: channels per attention head (int or one per level).
        norm_num_groups: group-norm groups.
        transformer_num_layers: transformer layers per attention block.
        context_encoder: context tokens for cross-attention, ``None`` for a semantic-only translator.
        spade_intermediate_channels: hidden channels of each SPADE block.
        resblock_updown: use residual blocks for up/downsampling.
        global_context: also add a projection of the mean context token to the UNet's timestep embedding
            (zero-initialised; see :py:meth:`LatentTranslator._init_global_context`).
        use_flash_attention: compute attention with ``torch.nn.functional.scaled_dot_product_attention`` (MONAI's
            option of the same name): the same weights and outputs, about twice as fast at a 64 x 64 latent on a CPU
            (``benchmarks/csg_sampling.py``).
    """

    semantic_resolution_multiple = None

    def __init__(
        self,
        spatial_dims: int = 2,
        latent_channels: int = 3,
        num_classes: int = 2,
        channels: Sequence[int] = (32, 64, 64),
        attention_levels: Sequence[bool] = (False, True, True),
        num_res_blocks: int | Sequence[int] = 1,
        num_head_channels: int | Sequence[int] = 16,
        norm_num_groups: int = 16,
        transformer_num_layers: int = 1,
        context_encoder: ContextEncoder | None = None,
        spade_intermediate_channels: int = 32,
        resblock_updown: bool = False,
        global_context: bool = False,
        use_flash_attention: bool = False,
    ) -> None:
        super().__init__(spatial_dims, latent_channels, num_classes, context_encoder)
        self.unet = SPADEDiffusionModelUNet(
            spatial_dims=spatial_dims,
            in_channels=latent_channels,
            out_channels=latent_channels,
            label_nc=num_classes,
            num_res_blocks=num_res_blocks,
            channels=tuple(channels),
            attention_levels=tuple(attention_levels),
            norm_num_groups=norm_num_groups,
            num_head_channels=num_head_channels,
            with_conditioning=context_encoder is not None,
            transformer_num_layers=transformer_num_layers,
            cross_attention_dim=context_encoder.embed_dim if context_encoder is not None else None,
            spade_intermediate_channels=spade_intermediate_channels,
            resblock_updown=resblock_updown,
            use_flash_attention=use_flash_attention,
        )
        self._init_global_context(global_context)

    def semantic_modules(self) -> list[nn.Module]:
        return [m for m in self.unet.modules() if isinstance(m, SPADE)]

    def _denoise(
        self, x: torch.Tensor, timesteps: torch.Tensor, semantic: torch.Tensor, context: torch.Tensor | None
    ) -> torch.Tensor:
        if tuple(semantic.shape[2:]) != tuple(x.shape[2:]):
            semantic = F.interpolate(semantic, size=x.shape[2:], mode="area")
        return self.unet(x=x, timesteps=timesteps, seg=semantic, context=context)
