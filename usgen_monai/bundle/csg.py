"""The CSG bundle's weights and settings: checkpoint loading (translator, autoencoder, refiner), pretrained
weights for fine-tuning, class weights of the loss and the latent shape of an image size."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "checkpoint_constants",
    "class_weights",
    "latent_shape",
    "load_network_weights",
    "load_pretrained",
]


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
    path: str | os.PathLike | None,
    networks: Mapping[str, Any],
    strict: bool = True,
    map_location: Any = "cpu",
    reset_semantic_branch: bool = False,
) -> dict[str, Any] | None:
    """Fine-tuning start: load ``networks`` from the checkpoint ``path`` when one is given; an empty ``path`` (train
    from scratch) does nothing.

    Args:
        path: the checkpoint, or ``""``/``None``.
        networks: ``{state name: network}``.
        strict: ``nn.Module.load_state_dict``'s ``strict``.
        map_location: ``torch.load`` map location.
        reset_semantic_branch: after loading, give each translator a new ControlNet initialised from its base
            (:py:meth:`usgen_monai.networks.ControlNetTranslator.reset_semantic_branch`): keep the pretrained base
            and context encoder, learn the mask branch from the new labelled data alone.

    Returns:
        the checkpoint's constants, or ``None`` without a path.

    Raises:
        ValueError: ``reset_semantic_branch`` for a network without a ControlNet branch.
    """
    if not path:
        return None
    from usgen_monai.engines.checkpoint import load_checkpoint
    from usgen_monai.utils import as_flag

    constants = load_checkpoint(path, dict(networks), map_location=map_location, strict=strict)
    if as_flag(reset_semantic_branch):
        for name, network in networks.items():
            if not hasattr(network, "reset_semantic_branch"):
                raise ValueError(
                    f"reset_semantic_branch: network {name!r} ({type(network).__name__}) has no ControlNet branch to "
                    "reset; use semantic_mode controlnet."
                )
            network.reset_semantic_branch()
    return constants


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
