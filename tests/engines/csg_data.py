"""Tiny simulated data and networks for the engine tests (CPU, 32x32 images, channels (8, 16))."""

from __future__ import annotations

import torch
from monai.data import list_data_collate
from monai.networks.nets import AutoencoderKL, DiffusionModelUNet

from usgen_monai.data.simulator import UNIFIED_CLASSES, UltrasoundSimulator
from usgen_monai.engines import simulator_vocabulary
from usgen_monai.networks import ContextEncoder, ControlNetTranslator, SPADETranslator

SIZE = 32
NUM_CLASSES = len(UNIFIED_CLASSES)
CONTEXT_FIELDS = ("preset", "finding", "probe", "depth_mm", "frequency_mhz", "gain_db", "dynamic_range_db")


def simulated_items(
    num: int = 4, size: int = SIZE, seed: int = 0, presets=("breast", "fetal_head", "msk")
) -> list[dict]:
    """Dict items like a data set's: image (1, H, W) in [0, 1], label (1, H, W) in the unified label space, a flat
    context, and a context image (same preset, another seed)."""
    items = []
    for i in range(num):
        sim = UltrasoundSimulator(preset=presets[i % len(presets)], size=(size, size))
        s = sim.sample(seed=seed + i)
        ctx_img = sim.sample(seed=seed + 1000 + i).image
        items.append(
            {
                "image": torch.as_tensor(s.image)[None].float(),
                "label": torch.as_tensor(sim.to_unified(s.label).astype("int64"))[None],
                "context": {k: s.context[k] for k in CONTEXT_FIELDS},
                "context_image": torch.as_tensor(ctx_img)[None].float(),
            }
        )
    return items


def simulated_batch(num: int = 4, size: int = SIZE, seed: int = 0) -> dict:
    return list_data_collate(simulated_items(num, size, seed))


def tiny_autoencoder(latent_channels: int = 3) -> AutoencoderKL:
    """32x32 -> 16x16 latents."""
    return AutoencoderKL(
        spatial_dims=2,
        in_channels=1,
        out_channels=1,
        channels=(8, 16),
        num_res_blocks=1,
        attention_levels=(False, False),
        latent_channels=latent_channels,
        norm_num_groups=8,
        with_encoder_nonlocal_attn=False,
        with_decoder_nonlocal_attn=False,
    )


def tiny_context_encoder(image_channels: int = 3) -> ContextEncoder:
    vocab = simulator_vocabulary()
    return ContextEncoder(
        embed_dim=16,
        categorical_sizes=vocab.categorical_sizes,
        num_scalars=len(vocab.scalar_fields),
        image_channels=image_channels,
        image_grid_size=2,
        image_hidden_channels=8,
    )


def tiny_translator(mode: str = "controlnet", latent_channels: int = 3, with_context: bool = True):
    common = dict(
        latent_channels=latent_channels,
        num_classes=NUM_CLASSES,
        channels=(8, 16),
        attention_levels=(False, True),
        num_res_blocks=1,
        num_head_channels=8,
        norm_num_groups=8,
        context_encoder=tiny_context_encoder(latent_channels) if with_context else None,
    )
    if mode == "controlnet":
        return ControlNetTranslator(conditioning_embedding_num_channels=(8, 16), **common)
    return SPADETranslator(spade_intermediate_channels=8, **common)


def tiny_mask_prior(num_class_embeds: int) -> DiffusionModelUNet:
    return DiffusionModelUNet(
        spatial_dims=2,
        in_channels=NUM_CLASSES,
        out_channels=NUM_CLASSES,
        channels=(16, 16),
        attention_levels=(False, False),
        num_res_blocks=1,
        norm_num_groups=8,
        num_class_embeds=num_class_embeds,
    )
