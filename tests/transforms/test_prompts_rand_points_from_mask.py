from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from usgen_monai.transforms.prompts import RandPointsFromMask

TEST_NDARRAYS = (np.asarray, torch.as_tensor, MetaTensor)

ROW_MAJOR = np.zeros((1, 50, 90), np.uint8)  # H=50, W=90
ROW_MAJOR[0, 10:20, 60:80] = 1


class TestRandPointsFromMask(unittest.TestCase):
    def test_empty_mask_gives_background_clicks_or_raises(self):
        empty = np.zeros((1, 90, 50), np.uint8)
        rand = RandPointsFromMask(num_foreground=2, num_background=1, empty="background").set_random_state(0)
        fg, bg = rand(empty)
        self.assertEqual((fg.shape, bg.shape), ((0, 2), (3, 2)))
        with self.assertRaisesRegex(ValueError, "the mask is empty"):
            RandPointsFromMask(num_foreground=1)(empty)
        with self.assertRaisesRegex(ValueError, "empty must be"):
            RandPointsFromMask(empty="skip")

    @parameterized.expand([[p, r] for p in TEST_NDARRAYS for r in (True, False)])
    def test_points_inside_and_outside(self, in_type, reverse_indexing):
        mask = ROW_MAJOR.transpose(0, 2, 1) if reverse_indexing else ROW_MAJOR
        rand = RandPointsFromMask(num_foreground=5, num_background=4, reverse_indexing=reverse_indexing)
        rand.set_random_state(0)
        fg, bg = rand(in_type(mask))
        self.assertEqual((fg.shape, bg.shape), ((5, 2), (4, 2)))
        for x, y in fg:  # [x, y] = [column, row]
            self.assertEqual(ROW_MAJOR[0, y, x], 1)
        for x, y in bg:
            self.assertEqual(ROW_MAJOR[0, y, x], 0)
            self.assertTrue(40 <= x <= 99 and 0 <= y <= 39)  # within the box widened by background_margin=20
        np.testing.assert_array_equal(rand.foreground, fg)

    def test_background_anywhere_and_replacement(self):
        mask = np.zeros((1, 6, 6), np.uint8)
        mask[0, 0, 0] = 1
        rand = RandPointsFromMask(num_foreground=3, num_background=40, background_margin=None, reverse_indexing=False)
        fg, bg = rand(mask)
        np.testing.assert_array_equal(fg, [[0, 0]] * 3)  # one foreground pixel, drawn with replacement
        self.assertFalse(((bg[:, 0] == 0) & (bg[:, 1] == 0)).any())
        self.assertGreater(bg[:, 0].max(), 2)  # not limited to the neighbourhood of the mask

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "the mask is empty"):
            RandPointsFromMask()(np.zeros((1, 4, 4)))
        with self.assertRaisesRegex(ValueError, "covers the whole image"):
            RandPointsFromMask(num_background=1)(np.ones((1, 4, 4)))
        with self.assertRaisesRegex(ValueError, "not both 0"):
            RandPointsFromMask(0, 0)


if __name__ == "__main__":
    unittest.main()
