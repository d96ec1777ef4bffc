from __future__ import annotations

import unittest

import torch

from tests.engines.csg_data import NUM_CLASSES, simulated_batch, tiny_autoencoder, tiny_translator
from usgen_monai.engines import (
    DDIMSchedule,
    DenoiserInferer,
    LabelMapPrepareBatch,
    RFlowSchedule,
    SeededPrepareBatch,
    TranslatorPrepareBatch,
    encode_latents,
    label_to_onehot,
    simulator_vocabulary,
)


def _randomize_zero_init(net, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            if p.abs().sum() == 0:
                p.copy_(torch.randn(p.shape, generator=g) * 0.1)


class TestTranslatorPrepareBatch(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.batch = simulated_batch(num=4)
        cls.autoencoder = tiny_autoencoder().eval()
        cls.vocab = simulator_vocabulary()

    def _prepare(self, schedule=None, **drops):
        return TranslatorPrepareBatch(
            schedule or DDIMSchedule(), NUM_CLASSES, self.autoencoder, scale_factor=0.5, vocabulary=self.vocab, **drops
        )

    def test_outputs(self):
        latents, target, args, kw = self._prepare(drop_both_prob=0, drop_semantic_prob=0, drop_context_prob=0)(
            self.batch
        )
        self.assertEqual(tuple(latents.shape), (4, 3, 16, 16))
        torch.testing.assert_close(latents, encode_latents(self.autoencoder, self.batch["image"], 0.5))
        torch.testing.assert_close(target, kw["noise"])  # epsilon prediction
        self.assertEqual(args, ())
        self.assertEqual(tuple(kw["semantic"].shape), (4, NUM_CLASSES, 32, 32))
        torch.testing.assert_close(kw["semantic"].argmax(1, keepdim=True), self.batch["label"])
        self.assertEqual(tuple(kw["categorical"].shape), (4, 3))
        self.assertEqual(tuple(kw["scalars"].shape), (4, 4))
        self.assertEqual(tuple(kw["context_latents"].shape), (4, 3, 16, 16))
        for key in ("semantic_mask", "tabular_mask", "image_mask"):
            self.assertTrue(bool(kw[key].all()), key)

    def test_rflow_target(self):
        latents, target, _, kw = self._prepare(RFlowSchedule())(self.batch)
        torch.testing.assert_close(target, latents - kw["noise"])

    def test_dropout_gives_the_null_condition(self):
        torch.manual_seed(1)
        translator = tiny_translator("controlnet").eval()
        _randomize_zero_init(translator)
        schedule = DDIMSchedule()
        inferer = DenoiserInferer(schedule)
        latents, _, _, kw = self._prepare(schedule, drop_both_prob=1.0, drop_semantic_prob=0, drop_context_prob=0)(
            self.batch
        )
        self.assertFalse(bool(kw["semantic_mask"].any()))
        self.assertFalse(bool(kw["tabular_mask"].any()) or bool(kw["image_mask"].any()))
        with torch.no_grad():
            dropped = inferer(latents, translator, **kw)
            noisy = schedule.add_noise(latents, kw["noise"], kw["timesteps"])
            null_sem = translator.null_semantic(4, latents.shape[2:])
            explicit_null = translator(noisy, kw["timesteps"], semantic=null_sem, context=translator.null_context(4))
            kept = inferer(
                latents, translator, **{**kw, "semantic_mask": None, "tabular_mask": None, "image_mask": None}
            )
        torch.testing.assert_close(dropped, explicit_null)
        self.assertFalse(torch.allclose(dropped, kept))
        # semantic-only and context-only dropout
        _, _, _, kw = self._prepare(schedule, drop_both_prob=0, drop_semantic_prob=1.0, drop_context_prob=0)(self.batch)
        self.assertFalse(bool(kw["semantic_mask"].any()))
        self.assertTrue(bool(kw["tabular_mask"].all()) and bool(kw["image_mask"].all()))
        _, _, _, kw = self._prepare(schedule, drop_both_prob=0, drop_semantic_prob=0, drop_context_prob=1.0)(self.batch)
        self.assertTrue(bool(kw["semantic_mask"].all()))
        self.assertFalse(bool(kw["tabular_mask"].any()) or bool(kw["image_mask"].any()))

    def test_dropout_frequencies(self):
        prepare = self._prepare(drop_both_prob=0.1, drop_semantic_prob=0.2, drop_context_prob=0.3)
        torch.manual_seed(0)
        sem_keep, ctx_keep = prepare.dropout_masks(20000, torch.device("cpu"))
        both = (~sem_keep & ~ctx_keep).float().mean().item()
        sem_only = (~sem_keep & ctx_keep).float().mean().item()
        ctx_only = (sem_keep & ~ctx_keep).float().mean().item()
        self.assertAlmostEqual(both, 0.1, delta=0.015)
        self.assertAlmostEqual(sem_only, 0.2, delta=0.015)
        self.assertAlmostEqual(ctx_only, 0.3, delta=0.015)

    def test_image_dropout_keeps_the_tabular_context(self):
        prepare = self._prepare(drop_both_prob=0, drop_semantic_prob=0, drop_context_prob=0, drop_image_prob=1.0)
        _, _, _, kw = prepare(self.batch)
        self.assertTrue(bool(kw["semantic_mask"].all()) and bool(kw["tabular_mask"].all()))
        self.assertFalse(bool(kw["image_mask"].any()))
        prepare = self._prepare(drop_both_prob=0, drop_semantic_prob=0, drop_context_prob=0.5, drop_image_prob=0.5)
        torch.manual_seed(0)
        batch = simulated_batch(num=64)
        _, _, _, kw = prepare(batch)
        # an image is never kept without its context, and about half of the kept contexts lose their image
        self.assertFalse(bool((kw["image_mask"] & ~kw["tabular_mask"]).any()))
        kept = kw["tabular_mask"].sum().item()
        self.assertGreater(kept, 16)
        self.assertTrue(0.2 < kw["image_mask"].sum().item() / kept < 0.8)
        with self.assertRaisesRegex(ValueError, "drop_image_prob"):
            self._prepare(drop_image_prob=-0.1)

    def test_seeded_prepare_batch_is_repeatable_and_leaves_the_global_stream(self):
        seeded = SeededPrepareBatch(self._prepare(RFlowSchedule()), seed=3)
        torch.manual_seed(0)
        first = seeded(self.batch)
        after_first = torch.rand(1)
        torch.manual_seed(0)
        expected_next = torch.rand(1)
        second = seeded(self.batch)
        torch.testing.assert_close(after_first, expected_next)  # the training's random stream is untouched
        torch.testing.assert_close(first[3]["noise"], second[3]["noise"])
        torch.testing.assert_close(first[3]["timesteps"], second[3]["timesteps"])
        other = SeededPrepareBatch(self._prepare(RFlowSchedule()), seed=4)(self.batch)
        self.assertFalse(torch.equal(other[3]["noise"], first[3]["noise"]))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "sum to at most 1"):
            self._prepare(drop_both_prob=0.5, drop_semantic_prob=0.4, drop_context_prob=0.3)
        with self.assertRaisesRegex(ValueError, "drop_semantic_prob"):
            self._prepare(drop_semantic_prob=1.5)
        with self.assertRaisesRegex(ValueError, r"label values must be in \[0, 3\)"):
            label_to_onehot(torch.tensor([[[[0, 5]]]]), 3)
        with self.assertRaisesRegex(ValueError, "no 'label' entry"):
            self._prepare()({"image": self.batch["image"]})


class TestLabelMapPrepareBatch(unittest.TestCase):
    def test_outputs_and_dropout(self):
        vocab = simulator_vocabulary()
        batch = simulated_batch(num=4)
        prepare = LabelMapPrepareBatch(DDIMSchedule(clip_sample=True), NUM_CLASSES, vocab, drop_condition_prob=0.0)
        x0, target, _, kw = prepare(batch)
        self.assertEqual(tuple(x0.shape), (4, NUM_CLASSES, 32, 32))
        self.assertEqual(sorted(torch.unique(x0).tolist()), [-1.0, 1.0])
        torch.testing.assert_close(target, kw["noise"])
        torch.testing.assert_close(kw["class_labels"], vocab.class_labels(batch["context"], ("preset", "finding")))
        self.assertTrue(bool((kw["class_labels"] > 0).all()))
        dropped = LabelMapPrepareBatch(DDIMSchedule(), NUM_CLASSES, vocab, drop_condition_prob=1.0, null_class_label=0)
        self.assertEqual(dropped(batch)[3]["class_labels"].tolist(), [0, 0, 0, 0])
        with self.assertRaisesRegex(ValueError, "'organ' is not a categorical field"):
            LabelMapPrepareBatch(DDIMSchedule(), NUM_CLASSES, vocab, condition_fields=("organ",))


if __name__ == "__main__":
    unittest.main()
