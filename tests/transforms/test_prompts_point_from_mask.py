from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor

from usgen_monai.transforms.prompts import PointFromMask


class TestPointFromMask(unittest.TestCase):
    def test_click_is_the_pixel_deepest_inside(self):
        """A 5x5 square's centre, not its first pixel; x is the column, y the row."""
        mask = np.zeros((1, 7, 9), np.uint8)
        mask[0, 1:6, 2:7] = 1  # rows 1..5, columns 2..6
        foreground, background = PointFromMask(reverse_indexing=False)(mask)
        np.testing.assert_array_equal(foreground, [[4, 3]])
        self.assertEqual(background.shape, (0, 2))

    def test_thickest_component_and_monai_axis_order(self):
        """Two components: the click lands in the thick disc, not the thin bar; the same mask in MONAI's (C, W, H)
        order gives the same [x, y]."""
        rows, cols = np.mgrid[:40, :60]
        grid = ((rows - 25) ** 2 + (cols - 40) ** 2 <= 8**2) | ((rows >= 5) & (rows <= 6) & (cols < 50))
        foreground, _ = PointFromMask(reverse_indexing=False)(grid[None].astype(np.uint8))
        np.testing.assert_array_equal(foreground, [[40, 25]])
        transposed = torch.as_tensor(grid.T[None].copy())
        np.testing.assert_array_equal(PointFromMask()(transposed)[0], [[40, 25]])

    def test_mask_touching_the_border_clicks_inside(self):
        """The image border counts as the mask's boundary: a mask filling the left columns is clicked mid-way."""
        mask = np.zeros((1, 9, 12), np.uint8)
        mask[0, :, :5] = 1  # all rows, columns 0..4
        foreground, _ = PointFromMask(reverse_indexing=False)(mask)
        self.assertEqual(int(foreground[0, 0]), 2)
        self.assertEqual(int(foreground[0, 1]), 4)

    def test_empty_mask(self):
        empty = MetaTensor(torch.zeros(1, 10, 6), meta={"filename_or_obj": "case_007_mask.png"})
        with self.assertRaisesRegex(ValueError, "case_007_mask.png.*empty"):
            PointFromMask()(empty)
        foreground, background = PointFromMask(empty="background")(empty)  # (C, W=10, H=6)
        self.assertEqual(foreground.shape, (0, 2))
        np.testing.assert_array_equal(background, [[5, 3]])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "empty must be"):
            PointFromMask(empty="image")
        with self.assertRaisesRegex(ValueError, "channel-first 2D"):
            PointFromMask()(np.ones((4, 4)))


if __name__ == "__main__":
    unittest.main()
