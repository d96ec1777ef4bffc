"""Callables the bundle configs reference, so that the JSON wires objects and sets scalars and every branch, loop
or file parsing sits here, documented and tested.

Example (``bundles/csg/configs/inference.json``)::

    "bundle_version": {"_target_": "usgen_monai.bundle.read_bundle_version", "bundle_root": "@bundle_root"},
    "network": {
        "_target_": "usgen_monai.bundle.load_network_weights",
        "network": "$@network_def.to(@device, memory_format=torch.channels_last)",
        "path": "@model_path", "name": "translator", "map_location": "@device"
    }
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "checkpoint_constants",
    "class_weights",
    "latent_shape",
    "load_network_weights",
    "load_pretrained",
    "read_bundle_version",
]


def read_bundle_version(bundle_root: str | os.PathLike) -> str:
    """The ``version`` of ``<bundle_root>/configs/metadata.json``.

    Raises:
        ValueError: the file is missing, not JSON, or has no version, naming it.
    """
    path = Path(bundle_root) / "configs" / "metadata.json"
    try:
        version = json.loads(path.read_text(encoding="utf-8"))["version"]
    except FileNotFoundError:
        raise ValueError(f"bundle metadata {path} does not exist; is bundle_root={str(bundle_root)!r} right?") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"bundle metadata {path} has no readable version ({type(e).__name__}: {e}).") from None
    return str(version)


def load_network_weights(
    network: Any, path: str | os.PathLike, name: str, map_location: Any = "cpu", strict: bool = True
) -> Any:
    """Load the state ``name`` of the checkpoint ``path`` into ``network`` (strictly by default) and return it in
    eval mode: the bundle's ``network`` id is then the network with its shipped weights, whatever uses it first.

    Args:
        network: the ``nn.Module`` (e.g. ``@network_def`` moved to ``@device``).
        path: the checkpoint (``models/model.pt``).
        name: the state's name in the checkpoint (``"translator"``, ``"autoencoder"``, ...).
        map_location: ``torch.load`` map location (GPU-saved checkpoints load on a CPU-only machine).
        strict: ``nn.Module.load_state_dict``'s ``strict``.

    Raises:
        FileNotFoundError, ValueError, KeyError: see :py:func:`usgen_monai.engines.load_checkpoint`.
    """
    from usgen_monai.engines.checkpoint import load_checkpoint

    load_checkpoint(path, {name: network}, map_location=map_location, strict=strict)
    return network.eval()


def checkpoint_constants(path: str | os.PathLike) -> dict[str, Any]:
    """The constants stored with a checkpoint (latent scale factor, schedule, class names, image size, ...)."""
    from usgen_monai.engines.checkpoint import read_checkpoint

    return dict(read_checkpoint(path)["constants"])


def load_pretrained(
    path: str | os.PathLike | None, networks: Mapping[str, Any], strict: bool = True, map_location: Any = "cpu"
) -> dict[str, Any] | None:
    """Fine-tuning start: load ``networks`` from the checkpoint ``path`` when one is given; an empty ``path`` (train
    from scratch) does nothing.

    Returns:
        the checkpoint's constants, or ``None`` without a path.
    """
    if not path:
        return None
    from usgen_monai.engines.checkpoint import load_checkpoint

    return load_checkpoint(path, dict(networks), map_location=map_location, strict=strict)


def class_weights(class_names: Sequence[str], weights: Mapping[str, float], default: float = 1.0) -> list[float]:
    """Per-class loss weights in the order of ``class_names``: ``weights[name]`` where given, else ``default``.

    Raises:
        ValueError: a weighted name that is not a class (a typo would silently weigh nothing).
    """
    unknown = sorted(set(weights) - set(class_names))
    if unknown:
        raise ValueError(f"class weights for {unknown}, which are not classes; classes are {list(class_names)}.")
    return [float(weights.get(name, default)) for name in class_names]


def latent_shape(image_size: Sequence[int], latent_channels: int, autoencoder_channels: Sequence[int]) -> list[int]:
    """``[latent_channels, H / f, W / f]`` of a MONAI ``AutoencoderKL`` with ``autoencoder_channels`` levels, which
    downsamples by ``f = 2 ** (levels - 1)``.

    Raises:
        ValueError: an image size that ``f`` does not divide.
    """
    factor = 2 ** (len(autoencoder_channels) - 1)
    size = [int(s) for s in image_size]
    if any(s % factor for s in size):
        raise ValueError(f"image_size {size} must be divisible by {factor}, the autoencoder's downsampling factor.")
    return [int(latent_channels)] + [s // factor for s in size]
