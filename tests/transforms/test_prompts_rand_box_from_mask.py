from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from usgen_monai.transforms.prompts import BoxFromMask, RandBoxFromMask

TEST_NDARRAYS = (np.asarray, torch.as_tensor, MetaTensor)

MASK = np.zeros((1, 120, 80), np.uint8)  # (C, W, H) in MONAI's order
MASK[0, 40:70, 30:50] = 1
TIGHT = np.array([40, 30, 69, 49])


class TestRandBoxFromMask(unittest.TestCase):
    @parameterized.expand([[p] for p in TEST_NDARRAYS])
    def test_margins_in_range_and_recorded(self, in_type):
        rand = RandBoxFromMask(margin_range=(0, 20))
        rand.set_random_state(0)
        widths = set()
        for _ in range(30):
            box = rand(in_type(MASK))
            self.assertTrue(((rand.margins >= 0) & (rand.margins <= 20)).all())
            np.testing.assert_array_equal(box, BoxFromMask(margin=rand.margins)(MASK))  # the draw replays it
            np.testing.assert_array_equal(box, TIGHT + rand.margins * [-1, -1, 1, 1])
            widths.update(rand.margins.tolist())
        self.assertGreater(len(widths), 10)  # each side draws its own margin

    def test_seed_and_reuse(self):
        a, b = RandBoxFromMask(), RandBoxFromMask()
        a.set_random_state(7)
        b.set_random_state(7)
        first = a(MASK)
        np.testing.assert_array_equal(first, b(MASK))
        np.testing.assert_array_equal(a(MASK, randomize=False), first)

    def test_prob_zero_is_tight_and_clipping(self):
        np.testing.assert_array_equal(RandBoxFromMask(prob=0.0)(MASK), TIGHT)
        edge = np.zeros((1, 10, 10), np.uint8)
        edge[0, 0:3, 7:10] = 1
        rand = RandBoxFromMask(margin_range=(5, 5))
        np.testing.assert_array_equal(rand(edge), [0, 2, 7, 9])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, r"margin_range=\(5, 2\)"):
            RandBoxFromMask(margin_range=(5, 2))
        with self.assertRaisesRegex(ValueError, "the mask is empty"):
            RandBoxFromMask()(np.zeros((1, 4, 4)))


if __name__ == "__main__":
    unittest.main()
