"""Engines: noise schedules, guidance, samplers, training (``monai.engines`` based), checkpoints, and the pair
generator with its mask sources, context sources and provenance."""

from __future__ import annotations

from .bundle_segmenter import BundleSegmenter
from .checkpoint import (
    CHECKPOINT_FORMAT,
    InvalidCheckpointError,
    ResumableCheckpoint,
    load_checkpoint,
    read_checkpoint,
    sampling_constants,
    save_checkpoint,
)
from .context import ContextVocabulary, merge_context, simulator_vocabulary
from .context_sources import (
    CONTEXT_SOURCES,
    BankContextSource,
    ContextImage,
    ContextSource,
    FileContextSource,
    NoContextImageSource,
    select_context_source,
)
from .cross_consistency import (
    ConsistencyRamp,
    CrossConsistencyLoss,
    CrossConsistencyTerms,
    CrossConsistencyTrainer,
    sigmoid_rampup_weight,
)
from .evaluation import DownsamplingFeatures, GeneratorEvaluation
from .generation import ITEMS_DIR, GeneratedPair, GenerationSummary, PairGenerator, resolve_presets
from .guidance import ClassifierFreeGuidance, DualGuidance, combine_guidance
from .handlers import BestWeightsSaver, PolynomialLRSchedule
from .losses import ChannelWeightedMSELoss
from .mask_sources import (
    MASK_SOURCES,
    FileMaskSource,
    LearnedMaskSource,
    MaskSample,
    MaskSource,
    ProceduralMaskSource,
    SimulatorCache,
    select_mask_source,
)
from .prepare_batch import (
    LabelMapPrepareBatch,
    SeededPrepareBatch,
    TranslatorPrepareBatch,
    encode_latents,
    label_to_onehot,
)
from .provenance import (
    SAMPLERS,
    check_request_type,
    check_sampler,
    check_unchanged,
    derived_seeds,
    file_sha256,
    sampling_schedule,
    sampling_steps,
)
from .sampler import DiffusionSampler, LabelMapSample, LabelMapSampler, LatentSample, LatentSampler
from .sam_evaluation import HeadCircumferenceError
from .sam_inference import (
    AutoBoxPromptd,
    CheckPromptItemd,
    FromModelFramed,
    PromptInferer,
    prompt_inputs,
)
from .sam_predictor import CachedEmbedding, PromptPredictor
from .sam_training import RealSyntheticSampler, SamInferer, SamPrepareBatch, TargetMaskd, set_trainable
from .segmentation_inference import (
    INFERENCE_SUFFIXES,
    MASK_OUTPUT_FORMATS,
    InferenceSummary,
    MaskWriter,
    ResizeInferer,
    SegmentationInference,
    inference_inputs,
)
from .speckle_refinement import SpeckleRefinerTrainer, high_frequency_std, low_pass
from .schedulers import SCHEDULES, DDIMSchedule, NoiseSchedule, RFlowSchedule, build_schedule
from .trainers import (
    AutoencoderKLTrainer,
    DenoiserInferer,
    LatentScaleFactorHandler,
    ReconstructionInferer,
    compute_latent_scale_factor,
    discriminator_step,
    kl_divergence,
    perceptual_loss_from_weights,
)

__all__ = [
    "BundleSegmenter",
    "BestWeightsSaver",
    "ConsistencyRamp",
    "CrossConsistencyLoss",
    "CrossConsistencyTerms",
    "CrossConsistencyTrainer",
    "PolynomialLRSchedule",
    "sigmoid_rampup_weight",
    "INFERENCE_SUFFIXES",
    "MASK_OUTPUT_FORMATS",
    "InferenceSummary",
    "MaskWriter",
    "ResizeInferer",
    "SegmentationInference",
    "inference_inputs",
    "SpeckleRefinerTrainer",
    "high_frequency_std",
    "low_pass",
    "CachedEmbedding",
    "PromptPredictor",
    "RealSyntheticSampler",
    "SamInferer",
    "SamPrepareBatch",
    "TargetMaskd",
    "set_trainable",
    "HeadCircumferenceError",
    "AutoBoxPromptd",
    "CheckPromptItemd",
    "FromModelFramed",
    "PromptInferer",
    "prompt_inputs",
    "CONTEXT_SOURCES",
    "BankContextSource",
    "ContextImage",
    "ContextSource",
    "FileContextSource",
    "NoContextImageSource",
    "select_context_source",
    "merge_context",
    "DownsamplingFeatures",
    "GeneratorEvaluation",
    "ChannelWeightedMSELoss",
    "ITEMS_DIR",
    "GeneratedPair",
    "GenerationSummary",
    "PairGenerator",
    "resolve_presets",
    "MASK_SOURCES",
    "FileMaskSource",
    "LearnedMaskSource",
    "MaskSample",
    "MaskSource",
    "ProceduralMaskSource",
    "SimulatorCache",
    "select_mask_source",
    "SAMPLERS",
    "check_request_type",
    "check_sampler",
    "check_unchanged",
    "derived_seeds",
    "file_sha256",
    "sampling_schedule",
    "sampling_steps",
    "CHECKPOINT_FORMAT",
    "InvalidCheckpointError",
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
    "discriminator_step",
    "kl_divergence",
    "perceptual_loss_from_weights",
]
