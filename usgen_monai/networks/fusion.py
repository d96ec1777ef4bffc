"""Inference-time folding of batch norm into the convolution before it."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fuse_conv_batch_norm"]

_CHANNELS_LAST = {4: torch.channels_last, 5: torch.channels_last_3d}  # by weight dimensions

_CONV_NORM_PAIRS = (
    (nn.Conv1d, nn.BatchNorm1d),
    (nn.Conv2d, nn.BatchNorm2d),
    (nn.Conv3d, nn.BatchNorm3d),
)


def fuse_conv_batch_norm(network: nn.Module) -> nn.Module:
    """Fold every batch norm that directly follows a convolution inside an ``nn.Sequential`` into that convolution.

    In eval mode a batch norm is an affine map per channel, so ``BN(conv(x))`` equals one convolution with scaled
    weights and a shifted bias (``torch.nn.utils.fusion.fuse_conv_bn_eval``); the fused network computes the same
    outputs (to float rounding) with one pass less over every feature map. The convolution takes the pair's place and
    the batch norm becomes ``nn.Identity``, so the state dict changes: load weights first, fuse after. A batch norm
    after anything else (e.g. ConvMixer's ``conv -> GELU -> BN``) is kept. Each fused convolution keeps the memory
    format (e.g. ``channels_last``) of the one it replaces.

    Args:
        network: a network in eval mode with its trained weights loaded (e.g. the result of
            :py:func:`usgen_monai.bundle.load_model_weights`); changed in place.

    Returns:
        ``network``, with the foldable pairs fused.

    Raises:
        ValueError: ``network`` is in training mode (a training batch norm uses the batch's statistics, which no
            fixed convolution can reproduce).

    Examples::

        network = fuse_conv_batch_norm(load_model_weights(MGCCNet(...), "models/model.pt"))
    """
    if network.training:
        raise ValueError("fuse_conv_batch_norm needs a network in eval mode (call network.eval() first).")
    for sequential in [m for m in network.modules() if isinstance(m, nn.Sequential)]:
        for index in range(len(sequential) - 1):
            conv, norm = sequential[index], sequential[index + 1]
            if not any(type(conv) is c and type(norm) is n for c, n in _CONV_NORM_PAIRS):
                continue
            if not norm.track_running_stats:  # normalises with the batch's statistics even in eval mode
                continue
            memory_format = _CHANNELS_LAST.get(conv.weight.dim())
            if memory_format is not None and not conv.weight.is_contiguous(memory_format=memory_format):
                memory_format = None
            fused = fuse_conv_bn_eval(conv, norm)
            if memory_format is not None:
                fused.weight.data = fused.weight.data.contiguous(memory_format=memory_format)
            sequential[index] = fused
            sequential[index + 1] = nn.Identity()
    return network
