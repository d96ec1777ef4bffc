from __future__ import annotations

import math
import unittest

import torch
from monai.data import list_data_collate

from tests.engines.csg_data import simulated_items
from usgen_monai.engines import ContextVocabulary, simulator_vocabulary

VOCAB = ContextVocabulary(
    categorical={"preset": ["breast", "fetal_head", "msk"], "finding": ["normal", "benign"]},
    scalars={"depth_mm": (20.0, 80.0), "gain_db": (-10.0, 10.0)},
)


class TestContextVocabulary(unittest.TestCase):
    def test_encode(self):
        cat, sca = VOCAB.encode([{"preset": "msk", "finding": "normal", "depth_mm": 50.0}, {"preset": "breast"}])
        self.assertEqual(cat.tolist(), [[3, 1], [1, 0]])
        self.assertAlmostEqual(sca[0, 0].item(), 0.5)
        self.assertTrue(math.isnan(sca[0, 1].item()) and math.isnan(sca[1, 0].item()))
        self.assertEqual(VOCAB.categorical_sizes, (4, 3))

    def test_collated_equals_list(self):
        items = [
            {"preset": "msk", "finding": "benign", "depth_mm": 30.0, "gain_db": 1.0, "seed": 3},
            {"preset": "fetal_head", "finding": "normal", "depth_mm": 70.0, "gain_db": -2.0, "seed": 4},
        ]
        collated = list_data_collate([{"context": c} for c in items])["context"]
        a, b = VOCAB.encode(items), VOCAB.encode(collated)
        torch.testing.assert_close(a[0], b[0])
        torch.testing.assert_close(a[1], b[1])
        single = VOCAB.encode(items[0])
        torch.testing.assert_close(single[0], a[0][:1])

    def test_class_labels(self):
        combos = [
            {"preset": p, "finding": f} for p in VOCAB.categorical["preset"] for f in VOCAB.categorical["finding"]
        ]
        labels = VOCAB.class_labels(combos, ("preset", "finding"))
        self.assertEqual(sorted(labels.tolist()), list(range(1, 7)))
        self.assertEqual(VOCAB.num_class_labels(("preset", "finding")), 7)
        with self.assertRaisesRegex(ValueError, "'finding' is missing"):
            VOCAB.class_labels([{"preset": "msk"}], ("preset", "finding"))

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "unknown value 'liver' for context field 'preset'"):
            VOCAB.encode([{"preset": "liver"}])
        with self.assertRaisesRegex(ValueError, "high > low"):
            ContextVocabulary(scalars={"gain_db": (1.0, 1.0)})
        with self.assertRaisesRegex(ValueError, "repeated"):
            ContextVocabulary(categorical={"preset": ["a", "a"]})

    def test_round_trip(self):
        self.assertEqual(ContextVocabulary.from_dict(VOCAB.to_dict()), VOCAB)

    def test_simulator_vocabulary_covers_simulated_contexts(self):
        vocab = simulator_vocabulary()
        contexts = [item["context"] for item in simulated_items(num=6, size=32)]
        cat, sca = vocab.encode(contexts)
        self.assertTrue(bool((cat > 0).all()))
        self.assertFalse(bool(torch.isnan(sca).any()))
        self.assertTrue(bool(((sca >= 0) & (sca <= 1)).all()))
        self.assertEqual(len(set(vocab.class_labels(contexts, ("preset", "finding")).tolist())) > 1, True)


if __name__ == "__main__":
    unittest.main()
