from __future__ import annotations

import unittest

import torch
from parameterized import parameterized
from torch import nn

from usgen_monai.networks import MGCCNet, fuse_conv_batch_norm


def _randomise_batch_norms(network: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters far from the identity, so that a wrong fold shows."""
    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            size = module.num_features
            module.running_mean.copy_(torch.rand(size, generator=generator) - 0.5)
            module.running_var.copy_(torch.rand(size, generator=generator) * 1.5 + 0.5)
            module.weight.data.copy_(torch.rand(size, generator=generator) + 0.5)
            module.bias.data.copy_(torch.rand(size, generator=generator) - 0.5)


def _count(network: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in network.modules())


class TestFuseConvBatchNorm(unittest.TestCase):
    @parameterized.expand([[2, (2, 1, 64, 48)], [3, (1, 1, 16, 16, 16)]])
    def test_mgcc_outputs_unchanged(self, spatial_dims, shape):
        torch.manual_seed(0)
        network = MGCCNet(spatial_dims=spatial_dims, in_channels=1, out_channels=2, channels=(2, 4, 4, 8, 8))
        _randomise_batch_norms(network)
        network.eval()
        x = torch.rand(shape)
        with torch.no_grad():
            expected = network(x)
            norms_before = _count(network, nn.modules.batchnorm._BatchNorm)
            fused = fuse_conv_batch_norm(network)
            actual = fused(x)
        self.assertIs(fused, network)
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
        # ConvMixer's batch norms follow a GELU, not a convolution: kept; every conv -> BN pair is gone
        mixer_norms = 2 * 3 * 3
        self.assertEqual(_count(fused, nn.modules.batchnorm._BatchNorm), mixer_norms)
        self.assertGreater(norms_before, mixer_norms)
        for sequential in (m for m in fused.modules() if isinstance(m, nn.Sequential)):
            pairs = zip(list(sequential)[:-1], list(sequential)[1:])
            self.assertFalse(
                any(
                    isinstance(a, nn.modules.conv._ConvNd) and isinstance(b, nn.modules.batchnorm._BatchNorm)
                    for a, b in pairs
                )
            )

    @parameterized.expand(
        [
            [nn.Conv2d, nn.BatchNorm2d, (2, 3, 20, 20), torch.channels_last],
            [nn.Conv3d, nn.BatchNorm3d, (1, 3, 8, 10, 12), torch.channels_last_3d],
        ]
    )
    def test_channels_last_kept(self, conv, norm, shape, memory_format):
        network = nn.Sequential(conv(3, 8, 3, padding=1), norm(8), nn.ReLU())
        _randomise_batch_norms(network)
        network = network.eval().to(memory_format=memory_format)
        x = torch.rand(shape).contiguous(memory_format=memory_format)
        with torch.no_grad():
            expected = network(x)
            fuse_conv_batch_norm(network)
            actual = network(x)
        self.assertIsInstance(network[1], nn.Identity)
        self.assertTrue(network[0].weight.is_contiguous(memory_format=memory_format))
        torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)

    def test_norm_without_running_stats_kept(self):
        network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, track_running_stats=False)).eval()
        fuse_conv_batch_norm(network)
        self.assertIsInstance(network[1], nn.BatchNorm2d)

    def test_training_mode_refused(self):
        network = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4)).train()
        with self.assertRaisesRegex(ValueError, "eval mode"):
            fuse_conv_batch_norm(network)
        self.assertIsInstance(network[1], nn.BatchNorm2d)


if __name__ == "__main__":
    unittest.main()
