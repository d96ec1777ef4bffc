from __future__ import annotations

import unittest

import torch
from monai.networks.blocks.spade_norm import SPADE
from parameterized import parameterized

from usgen_monai.networks import ContextEncoder, ControlNetTranslator, LatentTranslator, SPADETranslator

K, C_LAT, D = 5, 3, 16


def _encoder() -> ContextEncoder:
    return ContextEncoder(embed_dim=D, categorical_sizes=(4, 3), num_scalars=2, image_channels=C_LAT, image_grid_size=2)


def _randomize_zero_init(net, seed: int = 1) -> None:
    """MONAI zero-initialises the output and residual convolutions of its diffusion UNets and ControlNet (so an
    untrained model predicts zeros); give them weights so that conditions visibly change the prediction."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


def _build(
    mode: str,
    with_context: bool = True,
    global_context: bool = False,
    randomize: bool = True,
    use_flash_attention: bool = False,
) -> LatentTranslator:
    common = dict(
        global_context=global_context,
        use_flash_attention=use_flash_attention,
        latent_channels=C_LAT,
        num_classes=K,
        channels=(8, 16),
        attention_levels=(False, True),
        num_res_blocks=1,
        num_head_channels=8,
        norm_num_groups=8,
        context_encoder=_encoder() if with_context else None,
    )
    if mode == "controlnet":
        net = ControlNetTranslator(conditioning_embedding_num_channels=(8, 16), **common)
    else:
        net = SPADETranslator(spade_intermediate_channels=8, **common)
    if randomize:
        _randomize_zero_init(net)
    return net


def _onehot(b: int, size: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, K, (b, 1, size, size), generator=g)
    return torch.zeros(b, K, size, size).scatter_(1, labels, 1.0)


def _raw_context(b: int):
    g = torch.Generator().manual_seed(2)
    return dict(
        categorical=torch.stack([torch.randint(0, 4, (b,), generator=g), torch.randint(0, 3, (b,), generator=g)], 1),
        scalars=torch.rand(b, 2, generator=g),
        context_latents=torch.randn(b, C_LAT, 8, 8, generator=g),
    )


MODES = [["controlnet", 16], ["spade", 8]]  # semantic size for 8x8 latents


class TestTranslator(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)
        self.x = torch.randn(2, C_LAT, 8, 8)
        self.t = torch.tensor([10, 700])

    @parameterized.expand(MODES)
    def test_shape(self, mode, sem_size):
        net = _build(mode).eval()
        with torch.no_grad():
            out = net(self.x, self.t, semantic=_onehot(2, sem_size, 0), **_raw_context(2))
        self.assertEqual(out.shape, self.x.shape)
        self.assertEqual(tuple(net.semantic_shape((8, 8))), (sem_size, sem_size))

    @parameterized.expand(MODES)
    def test_flash_attention_is_the_same_model(self, mode, sem_size):
        """The bundle turns MONAI's fused attention on for speed: same keys, same weights, same prediction."""
        plain = _build(mode).eval()
        fused = _build(mode, use_flash_attention=True).eval()
        fused.load_state_dict(plain.state_dict(), strict=True)
        attention = [m for m in fused.modules() if hasattr(m, "use_flash_attention") and hasattr(m, "to_q")]
        self.assertTrue(attention and all(m.use_flash_attention for m in attention))
        inputs = dict(semantic=_onehot(2, sem_size, 0), **_raw_context(2))
        with torch.no_grad():
            expected = plain(self.x, self.t, **inputs)
            got = fused(self.x, self.t, **inputs)
        self.assertGreater(expected.abs().mean().item(), 1e-3)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)

    @parameterized.expand(MODES)
    def test_semantic_changes_prediction(self, mode, sem_size):
        net = _build(mode).eval()
        with torch.no_grad():
            a = net(self.x, self.t, semantic=_onehot(2, sem_size, 0))
            b = net(self.x, self.t, semantic=_onehot(2, sem_size, 1))
        self.assertFalse(torch.allclose(a, b))

    @parameterized.expand(MODES)
    def test_null_semantic(self, mode, sem_size):
        net = _build(mode).eval()
        sem = _onehot(2, sem_size, 0)
        with torch.no_grad():
            none = net(self.x, self.t, semantic=None)
            zeros = net(self.x, self.t, semantic=torch.zeros_like(sem))
            masked = net(self.x, self.t, semantic=sem, semantic_mask=torch.tensor([False, True]))
            full = net(self.x, self.t, semantic=sem)
        torch.testing.assert_close(none, zeros)
        torch.testing.assert_close(masked[0], zeros[0])
        torch.testing.assert_close(masked[1], full[1])

    @parameterized.expand(MODES)
    def test_tokens_equal_raw_context(self, mode, sem_size):
        net = _build(mode).eval()
        raw = _raw_context(2)
        sem = _onehot(2, sem_size, 0)
        with torch.no_grad():
            tokens = net.encode_context(raw["categorical"], raw["scalars"], raw["context_latents"])
            a = net(self.x, self.t, semantic=sem, context=tokens)
            b = net(self.x, self.t, semantic=sem, **raw)
            null = net(self.x, self.t, semantic=sem, context=net.null_context(2))
            no_context = net(self.x, self.t, semantic=sem)
        torch.testing.assert_close(a, b)
        torch.testing.assert_close(null, no_context)
        self.assertFalse(torch.allclose(a, null))

    @parameterized.expand(MODES)
    def test_null_conditions(self, mode, sem_size):
        net = _build(mode)
        cond = {
            "semantic": _onehot(2, sem_size, 0),
            "context": net.encode_context(**{"categorical": _raw_context(2)["categorical"]}),
        }
        null = net.null_conditions(cond)
        self.assertEqual(null["semantic"].shape, cond["semantic"].shape)
        self.assertEqual(null["semantic"].abs().sum().item(), 0)
        torch.testing.assert_close(null["context"], net.null_context(2))

    @parameterized.expand(MODES)
    def test_freeze_base(self, mode, _):
        net = _build(mode)
        params = net.freeze_base()
        semantic_ids = {id(p) for p in params}
        self.assertGreater(len(params), 0)
        for name, p in net.named_parameters():
            self.assertEqual(p.requires_grad, id(p) in semantic_ids, name)
        n_all = sum(p.numel() for p in net.parameters())
        n_sem = sum(p.numel() for p in net.semantic_parameters())
        n_base = sum(p.numel() for p in net.base_parameters())
        self.assertEqual(n_sem + n_base, n_all)
        if mode == "spade":
            spade_ids = {id(p) for m in net.modules() if isinstance(m, SPADE) for p in m.parameters()}
            self.assertEqual(spade_ids, semantic_ids)
        else:
            self.assertEqual({id(p) for p in net.controlnet.parameters()}, semantic_ids)

    @parameterized.expand(MODES)
    def test_global_context_path(self, mode, sem_size):
        torch.manual_seed(3)
        plain = _build(mode).eval()
        torch.manual_seed(3)
        net = _build(mode, global_context=True, randomize=False).eval()
        net.load_state_dict(plain.state_dict(), strict=False)  # a trained model gains the (zero) path
        self.assertEqual(
            set(net.state_dict()) - set(plain.state_dict()), {"context_to_time.weight", "context_to_time.bias"}
        )
        semantic = _onehot(2, sem_size, 0)
        a, b = _raw_context(2), _raw_context(2)
        b["scalars"] = 1.0 - a["scalars"]
        with torch.no_grad():
            # zero-initialised: the outputs of the model it was loaded from
            torch.testing.assert_close(net(self.x, self.t, semantic, **a), plain(self.x, self.t, semantic, **a))
            net.context_to_time.weight.normal_(0, 0.5)
            out_a, out_b = net(self.x, self.t, semantic, **a), net(self.x, self.t, semantic, **b)
            self.assertGreater((out_a - out_b).abs().mean().item(), 1e-4)
            tokens = net.encode_context(a["categorical"], a["scalars"], a["context_latents"])
            torch.testing.assert_close(net(self.x, self.t, semantic, context=tokens), out_a)
            self.assertIsNone(net._global_bias)  # nothing leaks into the next call
        _build(mode, with_context=False, global_context=True)  # no context encoder: no path, no error

    def test_without_context(self):
        net = _build("controlnet", with_context=False).eval()
        with torch.no_grad():
            out = net(self.x, self.t, semantic=_onehot(2, 16, 0))
        self.assertEqual(out.shape, self.x.shape)
        self.assertIsNone(net.null_context(2))
        with self.assertRaisesRegex(ValueError, "without a context_encoder"):
            net(self.x, self.t, context=torch.zeros(2, 4, D))

    def test_initialize_semantic_from_base(self):
        net = _build("controlnet")
        net.initialize_semantic_from_base()
        torch.testing.assert_close(net.controlnet.conv_in.conv.weight, net.unet.conv_in.conv.weight)

    def test_reset_semantic_branch(self):
        net = _build("controlnet", with_context=False).eval()
        with torch.no_grad():
            for p in net.controlnet.parameters():  # a "trained" ControlNet: every residual non-zero
                p.add_(0.05 * torch.randn_like(p))
            semantic = _onehot(2, 16, 1)
            trained = net(self.x, self.t, semantic=semantic)
            base = net(self.x, self.t, semantic=semantic, semantic_mask=torch.zeros(2, dtype=torch.bool))
            self.assertGreater((trained - base).abs().max().item(), 1e-3)
            net.reset_semantic_branch()
            residual = net.controlnet(
                x=self.x, timesteps=self.t, controlnet_cond=semantic, conditioning_scale=1.0, context=None
            )
            # the zero convolutions are zero again: no residual reaches the base UNet, whatever the mask
            for r in [*residual[0], residual[1]]:
                self.assertEqual(r.abs().max().item(), 0.0)
        torch.testing.assert_close(net.controlnet.conv_in.conv.weight, net.unet.conv_in.conv.weight)

    def test_shape_errors(self):
        net = _build("controlnet")
        with self.assertRaisesRegex(ValueError, r"semantic spatial shape must be \(16, 16\)"):
            net(self.x, self.t, semantic=_onehot(2, 8, 0))
        with self.assertRaisesRegex(ValueError, "num_classes=5"):
            net(self.x, self.t, semantic=torch.zeros(2, K + 1, 16, 16))
        with self.assertRaisesRegex(ValueError, "x must be"):
            net(torch.randn(2, C_LAT + 1, 8, 8), self.t)
        with self.assertRaisesRegex(ValueError, "conditioning_embedding_num_channels"):
            ControlNetTranslator(conditioning_embedding_num_channels=())


if __name__ == "__main__":
    unittest.main()
