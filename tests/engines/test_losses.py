from __future__ import annotations

import pytest
import torch

from usgen_monai.engines import ChannelWeightedMSELoss


def test_equal_weights_are_mse_and_weights_favour_their_channels():
    torch.manual_seed(0)
    pred, target = torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(ChannelWeightedMSELoss([2.0, 2.0, 2.0])(pred, target), torch.nn.MSELoss()(pred, target))
    only_last = target.clone()
    only_last[:, 2] += 1.0  # the same error, once in a weighted channel and once in a plain one
    only_first = target.clone()
    only_first[:, 0] += 1.0
    loss = ChannelWeightedMSELoss([1.0, 1.0, 10.0])
    assert loss(only_last, target) > 5 * loss(only_first, target)
    assert loss.weights.mean().item() == pytest.approx(1.0)


def test_errors():
    with pytest.raises(ValueError, match="non-negative"):
        ChannelWeightedMSELoss([1.0, -1.0])
    with pytest.raises(ValueError, match="non-negative"):
        ChannelWeightedMSELoss([0.0, 0.0])
    with pytest.raises(ValueError, match=r"\(B, 2, \.\.\.\)"):
        ChannelWeightedMSELoss([1.0, 1.0])(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 2, 2))
