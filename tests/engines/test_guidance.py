from __future__ import annotations

import unittest

import torch
from parameterized import parameterized

from usgen_monai.engines import ClassifierFreeGuidance, DualGuidance, combine_guidance


def _preds(n: int = 3):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(2, 3, 4, 4, generator=g) for _ in range(n)]


class TestCombineGuidance(unittest.TestCase):
    def test_formula(self):
        p0, p1, p2 = _preds()
        torch.testing.assert_close(combine_guidance([p0, p1], [2.5]), p0 + 2.5 * (p1 - p0))
        torch.testing.assert_close(combine_guidance([p0, p1, p2], [2.0, 0.5]), p0 + 2.0 * (p1 - p0) + 0.5 * (p2 - p1))

    def test_length_mismatch(self):
        with self.assertRaisesRegex(ValueError, "one more prediction than scales"):
            combine_guidance(_preds(2), [1.0, 2.0])


class TestClassifierFreeGuidance(unittest.TestCase):
    def test_scales(self):
        uncond, cond = _preds(2)
        torch.testing.assert_close(ClassifierFreeGuidance(1.0)([uncond, cond]), cond)
        torch.testing.assert_close(ClassifierFreeGuidance(0.0)([uncond, cond]), uncond)
        torch.testing.assert_close(ClassifierFreeGuidance(3.0)([uncond, cond]), uncond + 3.0 * (cond - uncond))

    def test_condition_sets_use_given_nulls(self):
        y = torch.tensor([3, 4])
        null = {"class_labels": torch.tensor([0, 0])}
        sets = ClassifierFreeGuidance(2.0).condition_sets({"class_labels": y}, null)
        self.assertEqual(len(sets), ClassifierFreeGuidance.num_conditions)
        self.assertIs(sets[0]["class_labels"], null["class_labels"])
        self.assertIs(sets[1]["class_labels"], y)
        # only the named keys are nulled
        sets = ClassifierFreeGuidance(2.0, keys=("context",)).condition_sets(
            {"semantic": y, "context": y + 1}, {"semantic": y * 0, "context": y * 0}
        )
        self.assertIs(sets[0]["semantic"], y)
        self.assertEqual(sets[0]["context"].tolist(), [0, 0])

    def test_missing_null(self):
        with self.assertRaisesRegex(ValueError, "'context'"):
            ClassifierFreeGuidance(2.0).condition_sets({"context": torch.ones(1)}, {"semantic": torch.ones(1)})

    def test_window_and_identity(self):
        g = ClassifierFreeGuidance(2.0, start=0.25, stop=0.75)
        self.assertEqual([g.is_active(i, 8) for i in range(8)], [False, False, True, True, True, True, False, False])
        self.assertFalse(ClassifierFreeGuidance(1.0).is_active(0, 8))
        self.assertTrue(ClassifierFreeGuidance(0.0).is_active(0, 8))

    @parameterized.expand(
        [[dict(start=0.5, stop=0.5)], [dict(start=-0.1)], [dict(stop=1.5)], [dict(scale=float("nan"))]]
    )
    def test_invalid(self, kwargs):
        with self.assertRaises(ValueError):
            ClassifierFreeGuidance(**kwargs)


class TestDualGuidance(unittest.TestCase):
    def test_reductions(self):
        neither, sem, both = _preds()
        torch.testing.assert_close(DualGuidance(1.0, 1.0)([neither, sem, both]), both)
        torch.testing.assert_close(DualGuidance(0.0, 0.0)([neither, sem, both]), neither)
        torch.testing.assert_close(DualGuidance(1.0, 0.0)([neither, sem, both]), sem)
        torch.testing.assert_close(DualGuidance(0.0, 1.0)([neither, sem, both]), neither + both - sem)
        for s in (0.0, 1.0, 2.5):  # equal scales: plain CFG between "neither" and "both"
            torch.testing.assert_close(
                DualGuidance(s, s)([neither, sem, both]), ClassifierFreeGuidance(s)([neither, both])
            )
        torch.testing.assert_close(
            DualGuidance(2.0, 1.5)([neither, sem, both]), neither + 2.0 * (sem - neither) + 1.5 * (both - sem)
        )

    def test_condition_sets(self):
        cond = {"semantic": torch.ones(2, 3), "context": torch.ones(2, 4, 5), "extra": torch.ones(2)}
        null = {"semantic": torch.zeros(2, 3), "context": torch.zeros(2, 4, 5)}
        g = DualGuidance(2.0, 1.5)
        sets = g.condition_sets(cond, null)
        self.assertEqual(len(sets), g.num_conditions)
        self.assertIs(sets[0]["semantic"], null["semantic"])
        self.assertIs(sets[0]["context"], null["context"])
        self.assertIs(sets[1]["semantic"], cond["semantic"])
        self.assertIs(sets[1]["context"], null["context"])
        self.assertIs(sets[2]["semantic"], cond["semantic"])
        self.assertIs(sets[2]["context"], cond["context"])
        for s in sets:
            self.assertIs(s["extra"], cond["extra"])
        with self.assertRaisesRegex(ValueError, "needs condition 'context'"):
            g.condition_sets({"semantic": cond["semantic"]}, null)

    def test_window(self):
        g = DualGuidance(2.0, 1.0, start=0.0, stop=0.5)
        self.assertEqual([g.is_active(i, 4) for i in range(4)], [True, True, False, False])
        self.assertFalse(DualGuidance(1.0, 1.0).is_active(0, 4))
        with self.assertRaisesRegex(ValueError, "start=0.6, stop=0.2"):
            DualGuidance(start=0.6, stop=0.2)
        with self.assertRaisesRegex(ValueError, "must differ"):
            DualGuidance(semantic_key="x", context_key="x")


if __name__ == "__main__":
    unittest.main()
