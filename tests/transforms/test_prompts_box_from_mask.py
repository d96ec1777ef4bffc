from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from usgen_monai.transforms.prompts import BoxFromMask

TEST_NDARRAYS = (np.asarray, torch.as_tensor, MetaTensor)

# a non-square mask (H=7 rows, W=11 columns) indexed [row, column]: rows 2..4, columns 3..8
ROW_MAJOR = np.zeros((1, 7, 11), np.uint8)
ROW_MAJOR[0, 2:5, 3:9] = 1
MONAI_ORDER = ROW_MAJOR.transpose(0, 2, 1)  # (C, W, H), as LoadImage gives a PNG

CASES = []
for p in TEST_NDARRAYS:
    CASES += [
        [p, ROW_MAJOR, False, 0, [3, 2, 8, 4]],
        [p, MONAI_ORDER, True, 0, [3, 2, 8, 4]],
        [p, MONAI_ORDER, True, 2, [1, 0, 10, 6]],  # widened and clipped to the image
        [p, ROW_MAJOR, False, (1, 0, 5, 1), [2, 2, 10, 5]],
    ]


class TestBoxFromMask(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_box(self, in_type, mask, reverse_indexing, margin, expected):
        box = BoxFromMask(margin=margin, reverse_indexing=reverse_indexing)(in_type(mask))
        self.assertEqual(box.dtype, np.int64)
        np.testing.assert_array_equal(box, expected)

    def test_swapped_axis_gives_another_box(self):
        self.assertNotEqual(BoxFromMask(reverse_indexing=False)(MONAI_ORDER).tolist(), [3, 2, 8, 4])

    def test_channels_merge_and_call_margin(self):
        mask = np.concatenate([ROW_MAJOR, np.zeros_like(ROW_MAJOR)])
        mask[1, 6, 0] = 1
        np.testing.assert_array_equal(BoxFromMask(reverse_indexing=False)(mask, margin=1), [0, 1, 9, 6])

    def test_empty(self):
        empty = MetaTensor(torch.zeros(1, 11, 7), meta={"filename_or_obj": "normal_001_mask.png"})
        with self.assertRaisesRegex(ValueError, "normal_001_mask.png: the mask is empty"):
            BoxFromMask()(empty)
        np.testing.assert_array_equal(BoxFromMask(empty="image")(empty), [0, 0, 10, 6])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, r"channel-first 2D mask .* \(7, 11\)"):
            BoxFromMask()(ROW_MAJOR[0])
        with self.assertRaisesRegex(ValueError, r"margin=-1"):
            BoxFromMask(margin=-1)
        with self.assertRaisesRegex(ValueError, r"margin=\(1, 2\)"):
            BoxFromMask(margin=(1, 2))
        with self.assertRaisesRegex(ValueError, "empty must be"):
            BoxFromMask(empty="skip")


if __name__ == "__main__":
    unittest.main()
