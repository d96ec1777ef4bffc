from __future__ import annotations

import os
import tempfile
import unittest
import warnings

import torch
from parameterized import parameterized

from usgen_monai.networks import MGCCNet
from usgen_monai.networks.mgcc import Dropout, FeatureDropout, FeatureNoise, MGCCDecoder

# Parameters of the authors' ``MGCC()`` (FengheTan9/Multi-Level-Global-Context-Cross-Consistency,
# src/network/MGCC.py: img_ch=3, dim_mult=4, length=(3, 3, 3), k=7, one output channel), counted on a scratch rebuild
# of their architecture (not part of this repository) and by hand: encoder 18,851,136 + three ConvMixer stages
# 9,944,064 + four decoders of 23,346,945 each. ``_expected_parameters`` below is the same count as a formula.
AUTHORS_MGCC_PARAMETERS = 122_182_980
# The same scratch rebuild with img_ch=1, dim_mult=1.
AUTHORS_MGCC_K1_GRAY_PARAMETERS = 7_748_916

TINY = (2, 4, 4, 8, 8)
# (kwargs, input shape, expected output shape)
TEST_CASES = [
    [dict(channels=TINY), (2, 1, 32, 32), (2, 1, 32, 32)],
    [dict(channels=TINY, in_channels=3, out_channels=4), (1, 3, 16, 48), (1, 4, 16, 48)],
    [
        dict(channels=(4, 8, 16, 32, 64), in_channels=2, out_channels=2, mixer_kernel_size=3),
        (2, 2, 64, 32),
        (2, 2, 64, 32),
    ],
    [dict(width_multiplier=1, mixer_depth=1), (1, 1, 32, 32), (1, 1, 32, 32)],
    [dict(channels=TINY, num_mixer_stages=2, perturbations=("none", "dropout")), (2, 1, 16, 16), (2, 1, 16, 16)],
    [dict(spatial_dims=3, channels=TINY, out_channels=2, mixer_kernel_size=3), (1, 1, 16, 16, 32), (1, 2, 16, 16, 32)],
]


def _expected_parameters(channels, in_channels, out_channels, stages=3, depth=3, kernel=7, dims=2):
    """Closed-form count of the authors' architecture (3x3 convs with bias, BN with affine)."""
    kk = 3**dims

    def conv_block(i, o):
        return kk * i * o + o + 2 * o + kk * o * o + o + 2 * o

    def gate(c):
        return (c * c + 3 * c) + (kk * c * c + 3 * c) + (kk * c * c + 3 * c) + (3 * c * c + 3 * c)

    c = list(channels)
    encoder = sum(conv_block(i, o) for i, o in zip([in_channels] + c[:-1], c))
    d = c[-1]
    mixers = stages * depth * (kernel**dims * d + 3 * d + d * d + 3 * d)
    decoder = sum(kk * c[i + 1] * c[i] + 3 * c[i] + conv_block(2 * c[i], c[i]) + gate(c[i]) for i in range(4))
    decoder += c[0] * out_channels + out_channels
    return encoder + mixers + (stages + 1) * decoder


def _count(net: torch.nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


class TestMGCCNet(unittest.TestCase):
    @parameterized.expand(TEST_CASES)
    def test_shapes(self, kwargs, input_shape, expected_shape):
        net = MGCCNet(**kwargs)
        x = torch.rand(input_shape)
        outputs = net.train()(x)
        self.assertIsInstance(outputs, list)
        self.assertEqual(len(outputs), 1 + kwargs.get("num_mixer_stages", 3))
        for out in outputs:
            self.assertEqual(tuple(out.shape), expected_shape)
        with torch.no_grad():
            logits = net.eval()(x)
        self.assertIsInstance(logits, torch.Tensor)
        self.assertEqual(tuple(logits.shape), expected_shape)
        # the formula holds for every configuration built on the same layers
        if kwargs.get("num_mixer_stages", 3) == 3:
            self.assertEqual(
                _count(net),
                _expected_parameters(
                    net.channels,
                    net.in_channels,
                    net.out_channels,
                    depth=kwargs.get("mixer_depth", 3),
                    kernel=kwargs.get("mixer_kernel_size", 7),
                    dims=net.spatial_dims,
                ),
            )

    def test_parameter_count_matches_authors(self):
        with torch.device("meta"):
            net = MGCCNet(in_channels=3, width_multiplier=4)
            gray = MGCCNet(in_channels=1, width_multiplier=1)
        self.assertEqual(net.channels, (64, 128, 256, 512, 1024))
        self.assertEqual(_count(net), AUTHORS_MGCC_PARAMETERS)
        self.assertEqual(_expected_parameters(net.channels, 3, 1), AUTHORS_MGCC_PARAMETERS)
        self.assertEqual(_count(gray), AUTHORS_MGCC_K1_GRAY_PARAMETERS)

    def test_eval_runs_main_decoder_only(self):
        net = MGCCNet(channels=TINY).eval()
        calls = []
        for decoder in net.aux_decoders:
            decoder.register_forward_hook(lambda *_: calls.append(1))
        x = torch.rand(2, 1, 16, 16)
        with torch.no_grad():
            first, second = net(x), net(x)
        self.assertEqual(calls, [])
        torch.testing.assert_close(first, second, rtol=0, atol=0)

    def test_perturbations_only_in_training_and_reproducible(self):
        net = MGCCNet(channels=TINY).train()
        x = torch.rand(2, 1, 32, 32)
        torch.manual_seed(1)
        a = net(x)
        torch.manual_seed(1)
        b = net(x)
        torch.manual_seed(2)
        c = net(x)
        for u, v in zip(a, b):
            torch.testing.assert_close(u, v, rtol=0, atol=0)
        torch.testing.assert_close(a[0], c[0])  # the main path is never perturbed
        for i in range(1, 4):
            self.assertFalse(torch.allclose(a[i], c[i]), f"aux output {i} ignores the seed")
        g = net(x, torch.Generator().manual_seed(5))
        h = net(x, torch.Generator().manual_seed(5))
        for u, v in zip(g, h):
            torch.testing.assert_close(u, v, rtol=0, atol=0)
        for module in (FeatureNoise(), Dropout(), FeatureDropout()):
            y = torch.rand(2, 3, 8, 8)
            self.assertIs(module.eval()(y), y)
            self.assertFalse(torch.equal(module.train()(y), y), type(module).__name__)

    def test_perturbation_semantics(self):
        gen = torch.Generator().manual_seed(0)
        x = torch.rand(4, 3, 16, 16) + 0.5
        rel = (FeatureNoise(0.3).train()(x, gen) - x) / x
        self.assertLessEqual(rel.abs().max().item(), 0.3 + 1e-6)
        torch.testing.assert_close(rel[0], rel[3])  # one noise map for the batch
        y = Dropout(0.3).train()(x, gen)
        kept = y != 0
        self.assertAlmostEqual(1 - kept.float().mean().item(), 0.3, delta=0.05)
        torch.testing.assert_close(y[kept], x[kept] / 0.7)
        z = FeatureDropout((0.8, 0.8)).train()(x, gen)
        attention = x.mean(1, keepdim=True)
        high = attention >= 0.8 * attention.amax(dim=(1, 2, 3), keepdim=True)
        self.assertTrue(torch.all(z[high.expand_as(x)] == 0))
        torch.testing.assert_close(z[~high.expand_as(x)], x[~high.expand_as(x)])

    def test_torchscript_and_trace_round_trip(self):
        net = MGCCNet(channels=TINY, in_channels=2, out_channels=3).eval()
        x = torch.rand(2, 2, 32, 48)
        with torch.no_grad():
            expected = net(x)
        with warnings.catch_warnings(), tempfile.TemporaryDirectory() as tmp, torch.jit.optimized_execution(False):
            warnings.simplefilter("ignore", FutureWarning)
            for name, module in (
                ("script", torch.jit.script(net)),
                ("trace", torch.jit.trace(net, torch.rand(1, 2, 32, 32), check_trace=False)),
            ):
                path = os.path.join(tmp, f"{name}.ts")
                torch.jit.save(module, path)
                loaded = torch.jit.load(path)
                with torch.no_grad():
                    torch.testing.assert_close(loaded(x), expected, msg=name)
                if name == "script":
                    with self.assertRaisesRegex(Exception, "divisible by 16"):
                        loaded(torch.rand(1, 2, 24, 32))

    @parameterized.expand(
        [
            [dict(spatial_dims=1), "spatial_dims=1"],
            [dict(in_channels=0), "in_channels=0"],
            [dict(out_channels=-1), "out_channels=-1"],
            [dict(width_multiplier=0), "width_multiplier=0"],
            [dict(channels=(8, 16, 32, 64)), r"channels=\(8, 16, 32, 64\)"],
            [dict(channels=(8, 16, 0, 64, 128)), r"channels\[2\]=0"],
            [dict(channels=TINY, width_multiplier=2), "width_multiplier=2"],
            [dict(mixer_kernel_size=4), "kernel_size=4"],
            [dict(mixer_depth=0), "mixer_depth=0"],
            [dict(num_mixer_stages=2), "num_mixer_stages=2"],
            [dict(perturbations=("dropout", "dropout", "gauss")), "gauss"],
            [dict(dropout_prob=1.0), "prob=1.0"],
            [dict(noise_range=-0.1), "noise_range=-0.1"],
            [dict(feature_dropout_range=(0.9, 0.7)), r"threshold_range=\(0.9, 0.7\)"],
        ]
    )
    def test_bad_arguments(self, kwargs, message):
        with self.assertRaisesRegex(ValueError, message):
            MGCCNet(**kwargs)

    def test_bad_inputs(self):
        net = MGCCNet(channels=TINY)
        with self.assertRaisesRegex(ValueError, r"divisible by 16, got shape \[1, 1, 24, 32\]"):
            net(torch.rand(1, 1, 24, 32))
        with self.assertRaisesRegex(ValueError, r"got shape \[1, 3, 16, 16\]"):
            net(torch.rand(1, 3, 16, 16))
        with self.assertRaisesRegex(ValueError, "channels=\\(1, 2\\)"):
            MGCCDecoder(2, (1, 2))


if __name__ == "__main__":
    unittest.main()
