"""Networks (``nn.Module`` only): context encoders and the semantic + context conditioned latent translators.

The mask prior needs no class of its own: it is a MONAI ``DiffusionModelUNet`` over one-hot label maps with
``num_class_embeds = ContextVocabulary.num_class_labels(("preset", "finding"))``.
"""

from __future__ import annotations

from .context_encoder import ContextEncoder, ImageContextTokenizer, TabularContextEncoder
from .fusion import fuse_conv_batch_norm
from .mgcc import MGCCNet
from .translator import ControlNetTranslator, LatentTranslator, SPADETranslator
from .speckle_refiner import SpeckleRefiner
from .sam import SAM_ARCHITECTURES, PromptableSam, build_sam, load_sam_weights, read_sam_state_dict

__all__ = [
    "ContextEncoder",
    "ImageContextTokenizer",
    "TabularContextEncoder",
    "LatentTranslator",
    "ControlNetTranslator",
    "SPADETranslator",
    "MGCCNet",
    "fuse_conv_batch_norm",
    "SpeckleRefiner",
    "SAM_ARCHITECTURES",
    "PromptableSam",
    "build_sam",
    "load_sam_weights",
    "read_sam_state_dict",
]
