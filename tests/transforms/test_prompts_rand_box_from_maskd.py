from __future__ import annotations

import unittest

import numpy as np

from usgen_monai.transforms.prompts import RandBoxFromMaskd

MASK = np.zeros((1, 90, 60), np.uint8)
MASK[0, 20:50, 10:40] = 1


class TestRandBoxFromMaskd(unittest.TestCase):
    def test_draw_recorded_and_seeded(self):
        t = RandBoxFromMaskd("label", margin_range=(0, 20)).set_random_state(3)
        out = t({"label": MASK})
        margins = out["prompt_draw"]["RandBoxFromMaskd"]["margins"]
        np.testing.assert_array_equal(out["roi"], np.array([20, 10, 49, 39]) + np.array(margins) * [-1, -1, 1, 1])
        again = RandBoxFromMaskd("label").set_random_state(3)({"label": MASK})
        np.testing.assert_array_equal(again["roi"], out["roi"])
        self.assertNotEqual(t({"label": MASK})["prompt_draw"], out["prompt_draw"])

    def test_prob_keys_and_no_record(self):
        out = RandBoxFromMaskd("label", roi_key="box", prob=0.0, draw_key=None)({"label": MASK})
        np.testing.assert_array_equal(out["box"], [20, 10, 49, 39])
        self.assertNotIn("prompt_draw", out)
        kept = RandBoxFromMaskd("label")({"label": MASK, "prompt_draw": {"Other": {"x": 1}}})
        self.assertEqual(set(kept["prompt_draw"]), {"Other", "RandBoxFromMaskd"})


if __name__ == "__main__":
    unittest.main()
