"""Callables the bundle configs reference, so that the JSON wires objects and sets scalars and every branch, loop
or file parsing sits here, documented and tested. One module per bundle (:py:mod:`.csg`, :py:mod:`.segmentation`
for MGCC and the SAM bundle's real pairs, :py:mod:`.sam`; :py:mod:`.common` for all); configs name them all as
``usgen_monai.bundle.<name>``.

Example (``bundles/csg/configs/inference.json``)::

    "bundle_version": {"_target_": "usgen_monai.bundle.read_bundle_version", "bundle_root": "@bundle_root"},
    "network": {
        "_target_": "usgen_monai.bundle.load_network_weights",
        "network": "$@network_def.to(@device, memory_format=torch.channels_last)",
        "path": "@model_path", "name": "translator", "map_location": "@device"
    }
"""

from __future__ import annotations

from .common import read_bundle_version
from .csg import (
    checkpoint_constants,
    class_weights,
    latent_shape,
    load_network_weights,
    load_pretrained,
)
from .sam import (
    load_sam_bundle_weights,
    sam_eval_prompt,
    sam_evaluation_metrics,
    sam_for_training,
    sam_learning_rate,
    sam_train_parts,
    synthetic_pairs,
    synthetic_share,
    with_pixel_spacing,
)
from .segmentation import (
    labeled_split,
    load_initial_weights,
    load_model_weights,
    resolve_layout,
    unlabeled_items,
    write_metrics_json,
)

__all__ = [
    "checkpoint_constants",
    "class_weights",
    "labeled_split",
    "latent_shape",
    "load_initial_weights",
    "load_model_weights",
    "load_network_weights",
    "load_pretrained",
    "load_sam_bundle_weights",
    "read_bundle_version",
    "resolve_layout",
    "sam_eval_prompt",
    "sam_evaluation_metrics",
    "sam_for_training",
    "sam_learning_rate",
    "sam_train_parts",
    "synthetic_pairs",
    "synthetic_share",
    "unlabeled_items",
    "with_pixel_spacing",
    "write_metrics_json",
]
