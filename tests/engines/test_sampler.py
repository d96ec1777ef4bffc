from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from tests.engines.csg_data import NUM_CLASSES, simulated_batch, tiny_autoencoder, tiny_mask_prior, tiny_translator
from usgen_monai.engines import (
    ClassifierFreeGuidance,
    DDIMSchedule,
    DualGuidance,
    LabelMapSampler,
    LatentSampler,
    RFlowSchedule,
    encode_latents,
    label_to_onehot,
    simulator_vocabulary,
)


def _randomize_zero_init(net, seed: int = 1) -> None:
    # MONAI zero-initialises output/residual convolutions; give them weights so conditions change the prediction
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


class _CountingDenoiser(torch.nn.Module):
    """Wraps a denoiser and records the batch size of every call."""

    def __init__(self, net):
        super().__init__()
        self.net = net
        self.batch_sizes: list[int] = []

    def forward(self, x, t, **conditions):
        self.batch_sizes.append(x.shape[0])
        return self.net(x, t, **conditions)


class TestLatentSampler(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.autoencoder = tiny_autoencoder().eval()
        cls.translator = tiny_translator("controlnet").eval()
        _randomize_zero_init(cls.translator)
        batch = simulated_batch(num=2)
        vocab = simulator_vocabulary()
        cat, sca = vocab.encode(batch["context"])
        with torch.no_grad():
            ctx_latents = encode_latents(cls.autoencoder, batch["context_image"])
            tokens = cls.translator.encode_context(cat, sca, ctx_latents)
        cls.conditions = {"semantic": label_to_onehot(batch["label"], NUM_CLASSES), "context": tokens}
        cls.null = cls.translator.null_conditions(cls.conditions)

    def _sampler(self, scheduler, guidance=None, steps=2, denoiser=None):
        return LatentSampler(
            scheduler,
            denoiser or self.translator,
            guidance,
            decoder=self.autoencoder,
            scale_factor=0.8,
            latent_shape=(3, 16, 16),
            num_inference_steps=steps,
        )

    @parameterized.expand([["ddim", DDIMSchedule()], ["rflow", RFlowSchedule()]])
    def test_samples(self, _, scheduler):
        out = self._sampler(scheduler, DualGuidance(2.0, 1.5))(
            conditions=self.conditions, null_conditions=self.null, generator=torch.Generator().manual_seed(0)
        )
        self.assertEqual(tuple(out.images.shape), (2, 1, 32, 32))
        self.assertEqual(tuple(out.latents.shape), (2, 3, 16, 16))
        self.assertTrue(bool(torch.isfinite(out.images).all()))
        self.assertGreaterEqual(out.images.min().item(), 0.0)
        self.assertLessEqual(out.images.max().item(), 1.0)

    @parameterized.expand([["ddim", DDIMSchedule(eta=0.5)], ["rflow", RFlowSchedule()]])
    def test_determinism(self, _, scheduler):
        sampler = self._sampler(scheduler, DualGuidance(2.0, 1.5))
        kwargs = dict(conditions=self.conditions, null_conditions=self.null)
        a = sampler(generator=torch.Generator().manual_seed(7), **kwargs)
        b = sampler(generator=torch.Generator().manual_seed(7), **kwargs)
        c = sampler(generator=torch.Generator().manual_seed(8), **kwargs)
        torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=0)
        torch.testing.assert_close(a.images, b.images, rtol=0, atol=0)
        self.assertFalse(torch.allclose(a.latents, c.latents))

    def test_guided_step_matches_manual_combination(self):
        schedule = DDIMSchedule()
        noise = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(3))
        out = self._sampler(schedule, DualGuidance(2.0, 1.5), steps=1)(
            conditions=self.conditions, null_conditions=self.null, noise=noise
        )
        schedule.set_timesteps(1)
        t = schedule.timesteps[0]
        tt = torch.full((2,), int(t))
        with torch.no_grad():
            neither = self.translator(noise, tt, semantic=self.null["semantic"], context=self.null["context"])
            sem = self.translator(noise, tt, semantic=self.conditions["semantic"], context=self.null["context"])
            both = self.translator(noise, tt, **self.conditions)
        expected, _ = schedule.step(neither + 2.0 * (sem - neither) + 1.5 * (both - sem), t, noise)
        torch.testing.assert_close(
            out.latents, expected, atol=1e-3, rtol=1e-3
        )  # x0 = (x - s*eps) / 0.07 amplifies fp error
        self.assertFalse(torch.allclose(out.latents, schedule.step(both, t, noise)[0], atol=1e-2))

    def test_identity_guidance_equals_no_guidance(self):
        kwargs = dict(conditions=self.conditions, null_conditions=self.null)
        a = self._sampler(DDIMSchedule(), DualGuidance(1.0, 1.0))(generator=torch.Generator().manual_seed(1), **kwargs)
        b = self._sampler(DDIMSchedule(), None)(generator=torch.Generator().manual_seed(1), **kwargs)
        torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=0)

    def test_guidance_window_batches(self):
        counter = _CountingDenoiser(self.translator)
        sampler = self._sampler(RFlowSchedule(), DualGuidance(2.0, 1.5, start=0.5, stop=1.0), steps=4, denoiser=counter)
        sampler(conditions=self.conditions, null_conditions=self.null, generator=torch.Generator().manual_seed(0))
        self.assertEqual(counter.batch_sizes, [2, 2, 6, 6])

    def test_errors(self):
        sampler = self._sampler(DDIMSchedule(), DualGuidance(2.0, 1.0))
        with self.assertRaisesRegex(ValueError, "null_conditions"):
            sampler(conditions=self.conditions, generator=torch.Generator().manual_seed(0))
        bad_null = {"semantic": self.null["semantic"], "context": self.null["context"][:, :2]}
        with self.assertRaisesRegex(ValueError, "'context' and its null must have the same shape"):
            sampler(conditions=self.conditions, null_conditions=bad_null)
        with self.assertRaisesRegex(ValueError, "scale_factor"):
            LatentSampler(DDIMSchedule(), self.translator, scale_factor=0.0)


class TestLabelMapSampler(unittest.TestCase):
    def test_samples_label_maps(self):
        vocab = simulator_vocabulary()
        fields = ("preset", "finding")
        prior = tiny_mask_prior(vocab.num_class_labels(fields)).eval()
        _randomize_zero_init(prior)
        y = vocab.class_labels({"preset": ["msk", "breast"], "finding": ["tendon_tear", "benign"]}, fields)
        sampler = LabelMapSampler(
            DDIMSchedule(clip_sample=True),
            prior,
            NUM_CLASSES,
            (32, 32),
            ClassifierFreeGuidance(2.0),
            num_inference_steps=2,
        )
        kwargs = dict(conditions={"class_labels": y}, null_conditions={"class_labels": torch.zeros_like(y)})
        out = sampler(generator=torch.Generator().manual_seed(0), **kwargs)
        self.assertEqual(tuple(out.labels.shape), (2, 1, 32, 32))
        self.assertEqual(tuple(out.onehot.shape), (2, NUM_CLASSES, 32, 32))
        self.assertEqual(out.labels.dtype, torch.long)
        self.assertTrue(bool(((out.labels >= 0) & (out.labels < NUM_CLASSES)).all()))
        torch.testing.assert_close(out.onehot.sum(1), torch.ones(2, 32, 32))
        torch.testing.assert_close(out.onehot.argmax(1, keepdim=True), out.labels)
        again = sampler(generator=torch.Generator().manual_seed(0), **kwargs)
        torch.testing.assert_close(out.logits, again.logits, rtol=0, atol=0)


if __name__ == "__main__":
    unittest.main()
