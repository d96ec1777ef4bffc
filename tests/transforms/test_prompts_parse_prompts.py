from __future__ import annotations

import unittest

import numpy as np
import torch
from parameterized import parameterized

from usgen_monai.transforms.prompts import parse_prompts

SIZE = (97, 211)  # H rows, W columns

ERRORS = [
    [{"roi": [10, 10, 10, 40]}, r"case_7\.png: roi \[10\.0, 10\.0, 10\.0, 40\.0\] is an empty box"],
    [{"roi": [50, 10, 20, 40]}, "is an empty box"],
    [{"roi": [0, 0, 212, 40]}, r"roi .* lies outside the image of width 211 and height 97"],
    [{"roi": [0, -1, 20, 40]}, "lies outside the image"],
    [{"roi": [1, 2, 3]}, r"roi must be \[x0, y0, x1, y1\] \(4 numbers\)"],
    [{"roi": "a box"}, "roi must be"],
    [{"roi": [0, 0, float("nan"), 3]}, "finite numbers"],
    [{"foreground": [[5, 5], [100, 97]]}, r"foreground point\(s\) \[\[100\.0, 97\.0\]\] lie outside"],
    [{"background": [[211, 3]]}, "background point.* lie outside"],
    [{"foreground": [5, 5]}, r"foreground must be a list of \[x, y\] points"],
    [{"background": [[1, 2, 3]]}, "background must be a list of"],
]


class TestParsePrompts(unittest.TestCase):
    def test_layout(self):
        box, points, labels = parse_prompts(
            SIZE, roi=[0, 0, 211, 97], foreground=[[210, 96], [3.5, 4]], background=torch.tensor([[7, 8]]), item="a"
        )
        np.testing.assert_array_equal(box, [0, 0, 211, 97])  # a box may reach the image's edges
        np.testing.assert_array_equal(points, [[210, 96], [3.5, 4], [7, 8]])
        np.testing.assert_array_equal(labels, [1, 1, 0])
        self.assertEqual(parse_prompts(SIZE), (None, None, None))
        self.assertEqual(parse_prompts(SIZE, foreground=[])[1:], (None, None))

    def test_swapped_axes_fail(self):
        """A point at column 150 fits the 211-wide image, not one read with its axes swapped."""
        parse_prompts(SIZE, foreground=[[150, 50]])
        with self.assertRaisesRegex(ValueError, "outside"):
            parse_prompts(SIZE[::-1], foreground=[[150, 50]])

    @parameterized.expand(ERRORS)
    def test_errors_name_the_item(self, prompts, message):
        with self.assertRaisesRegex(ValueError, message):
            parse_prompts(SIZE, item="case_7.png", **prompts)


if __name__ == "__main__":
    unittest.main()
