from __future__ import annotations

import pytest
import torch
from monai.networks.nets import UNet

from usgen_monai.data.simulator import UNIFIED_CLASSES
from usgen_monai.engines.evaluation import DownsamplingFeatures, unified_target


def test_unified_target_picks_each_presets_target_classes():
    maps = torch.zeros(2, 1, 4, 4, dtype=torch.long)
    maps[0, 0, 0, 0] = UNIFIED_CLASSES.index("lesion")
    maps[0, 0, 1, 1] = UNIFIED_CLASSES.index("tendon")  # not a breast target
    maps[1, 0, 2, 2] = UNIFIED_CLASSES.index("tendon")
    maps[1, 0, 3, 3] = UNIFIED_CLASSES.index("tear")
    t = unified_target(maps, ["breast", "msk"])
    assert t[0].sum() == 1 and t[0, 0, 0, 0] == 1
    assert t[1].sum() == 2 and t[1, 0, 2, 2] == 1 and t[1, 0, 3, 3] == 1


def test_downsampling_features_are_multiscale_and_need_strided_convs():
    net = UNet(2, 1, 1, channels=(4, 8, 16), strides=(2, 2), num_res_units=0)
    f = DownsamplingFeatures(net)(torch.rand(3, 1, 32, 32))
    assert f.shape == (3, 4 + 8)  # the two strided convolutions of the encoder
    with pytest.raises(ValueError, match="no strided convolution"):
        DownsamplingFeatures(torch.nn.Conv2d(1, 1, 3))
