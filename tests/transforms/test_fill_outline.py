from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized
from skimage.draw import ellipse, ellipse_perimeter

from usgen_monai.transforms.masks import FillOutline

TEST_NDARRAYS = (np.asarray, torch.as_tensor, MetaTensor)


def _square_outline(size: int = 9, lo: int = 2, hi: int = 6, value: float = 255.0) -> tuple[np.ndarray, np.ndarray]:
    outline = np.zeros((1, size, size), np.float32)
    outline[0, lo, lo : hi + 1] = outline[0, hi, lo : hi + 1] = value
    outline[0, lo : hi + 1, lo] = outline[0, lo : hi + 1, hi] = value
    filled = np.zeros_like(outline)
    filled[0, lo : hi + 1, lo : hi + 1] = 1
    return outline, filled


def _ellipse_outline(shape=(64, 80)) -> tuple[np.ndarray, np.ndarray]:
    """A one-pixel, 8-connected ellipse outline (as drawn by HC18's annotation tool) and its filled ellipse."""
    outline = np.zeros(shape, np.float32)
    rr, cc = ellipse_perimeter(32, 40, 20, 30, shape=shape)
    outline[rr, cc] = 255
    filled = np.zeros(shape, np.float32)
    rr, cc = ellipse(32, 40, 19, 29, shape=shape)
    filled[rr, cc] = 1
    return outline[None], filled[None]


SQUARE, SQUARE_FILLED = _square_outline()
OPEN = SQUARE.copy()
OPEN[0, 2, 4] = 0  # a gap: encloses nothing

CASES = []
for p in TEST_NDARRAYS:
    CASES.append([p, SQUARE, SQUARE_FILLED])
    CASES.append([p, OPEN, (OPEN > 0).astype(np.float32)])
    CASES.append([p, np.concatenate([SQUARE, OPEN]), np.concatenate([SQUARE_FILLED, (OPEN > 0).astype(np.float32)])])


class TestFillOutline(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_fill(self, in_type, outline, expected):
        out = FillOutline()(in_type(outline))
        self.assertIsInstance(out, type(in_type(outline)))
        self.assertEqual(tuple(out.shape), outline.shape)
        np.testing.assert_array_equal(np.asarray(out), expected)

    def test_eight_connected_ellipse_outline_closes(self):
        outline, filled = _ellipse_outline()
        out = FillOutline()(outline)
        # the fill covers the drawn outline and everything inside it, nothing outside
        self.assertTrue(np.all(out[outline > 0] == 1))
        self.assertTrue(np.all(out[filled > 0] == 1))
        self.assertEqual(out[0, 0, 0], 0)
        self.assertAlmostEqual(float(out.sum()), np.pi * 20 * 30, delta=0.05 * np.pi * 20 * 30)
        # with 2-connected background the diagonal steps of the outline leak: the ellipse stays an outline
        leaky = FillOutline(connectivity=2)(outline)
        self.assertLess(leaky.sum(), out.sum() / 2)

    def test_threshold_and_dtype(self):
        outline = SQUARE.astype(np.uint8)
        outline[0, 0, 0] = 3  # below the threshold: not an outline pixel
        out = FillOutline(threshold=10)(outline)
        self.assertEqual(out.dtype, np.uint8)
        np.testing.assert_array_equal(out, SQUARE_FILLED.astype(np.uint8))

    def test_metadata_kept(self):
        img = MetaTensor(torch.as_tensor(SQUARE), meta={"filename_or_obj": "000_HC_Annotation.png"})
        out = FillOutline()(img)
        self.assertIsInstance(out, MetaTensor)
        self.assertEqual(out.meta["filename_or_obj"], "000_HC_Annotation.png")

    def test_3d(self):
        outline = np.zeros((1, 7, 7, 7), np.float32)
        outline[0, 1:6, 1:6, 1:6] = 1
        outline[0, 2:5, 2:5, 2:5] = 0  # hollow cube
        out = FillOutline()(outline)
        self.assertEqual(out[0, 3, 3, 3], 1)
        self.assertEqual(out.sum(), 125)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "channel-first"):
            FillOutline()(SQUARE[0])
        with self.assertRaisesRegex(ValueError, "connectivity=0"):
            FillOutline(connectivity=0)
        with self.assertRaisesRegex(ValueError, "connectivity=3 exceeds the 2 spatial"):
            FillOutline(connectivity=3)(SQUARE)


if __name__ == "__main__":
    unittest.main()
