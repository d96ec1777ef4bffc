"""Engines: noise schedules, guidance, samplers, training (``monai.engines`` based) and checkpoints."""

from __future__ import annotations

from .checkpoint import (
    CHECKPOINT_FORMAT,
    ResumableCheckpoint,
    load_checkpoint,
    read_checkpoint,
    sampling_constants,
    save_checkpoint,
)
from .context import ContextVocabulary, simulator_vocabulary
from .evaluation import GeneratorEvaluation
from .generation import PairGenerator, PairWriter
from .guidance import ClassifierFreeGuidance, DualGuidance, combine_guidance
from .losses import ChannelWeightedMSELoss
from .prepare_batch import (
    LabelMapPrepareBatch,
    SeededPrepareBatch,
    TranslatorPrepareBatch,
    encode_latents,
    label_to_onehot,
)
from .sampler import DiffusionSampler, LabelMapSample, LabelMapSampler, LatentSample, LatentSampler
from .schedulers import SCHEDULES, DDIMSchedule, NoiseSchedule, RFlowSchedule, build_schedule
from .trainers import (
    AutoencoderKLTrainer,
    DenoiserInferer,
    LatentScaleFactorHandler,
    ReconstructionInferer,
    compute_latent_scale_factor,
    kl_divergence,
    perceptual_loss_from_weights,
)

__all__ = [
    "GeneratorEvaluation",
    "ChannelWeightedMSELoss",
    "PairGenerator",
    "PairWriter",
    "CHECKPOINT_FORMAT",
    "ResumableCheckpoint",
    "load_checkpoint",
    "read_checkpoint",
    "sampling_constants",
    "save_checkpoint",
    "ContextVocabulary",
    "simulator_vocabulary",
    "ClassifierFreeGuidance",
    "DualGuidance",
    "combine_guidance",
    "LabelMapPrepareBatch",
    "SeededPrepareBatch",
    "TranslatorPrepareBatch",
    "encode_latents",
    "label_to_onehot",
    "DiffusionSampler",
    "LabelMapSample",
    "LabelMapSampler",
    "LatentSample",
    "LatentSampler",
    "SCHEDULES",
    "DDIMSchedule",
    "NoiseSchedule",
    "RFlowSchedule",
    "build_schedule",
    "AutoencoderKLTrainer",
    "DenoiserInferer",
    "ReconstructionInferer",
    "LatentScaleFactorHandler",
    "compute_latent_scale_factor",
    "kl_divergence",
    "perceptual_loss_from_weights",
]
