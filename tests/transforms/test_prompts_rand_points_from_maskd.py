from __future__ import annotations

import unittest

import numpy as np

from usgen_monai.transforms.prompts import RandPointsFromMaskd

MASK = np.zeros((1, 40, 30), np.uint8)  # (C, W, H)
MASK[0, 5:15, 10:20] = 1


class TestRandPointsFromMaskd(unittest.TestCase):
    def test_keys_and_draw(self):
        t = RandPointsFromMaskd("label", num_foreground=2, num_background=1).set_random_state(0)
        out = t({"label": MASK})
        self.assertEqual((out["foreground"].shape, out["background"].shape), ((2, 2), (1, 2)))
        self.assertTrue(all(MASK[0, x, y] for x, y in out["foreground"]))
        self.assertFalse(any(MASK[0, x, y] for x, y in out["background"]))
        draw = out["prompt_draw"]["RandPointsFromMaskd"]
        self.assertEqual(draw, {"foreground": out["foreground"].tolist(), "background": out["background"].tolist()})
        same = RandPointsFromMaskd("label", num_foreground=2, num_background=1).set_random_state(0)({"label": MASK})
        np.testing.assert_array_equal(same["foreground"], out["foreground"])

    def test_only_requested_keys(self):
        out = RandPointsFromMaskd("label", foreground_key="clicks", draw_key=None)({"label": MASK})
        self.assertEqual(set(out), {"label", "clicks"})


if __name__ == "__main__":
    unittest.main()
