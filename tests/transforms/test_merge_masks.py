from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from usgen_monai.transforms.masks import MergeMasks

TEST_NDARRAYS = (np.asarray, torch.as_tensor, MetaTensor)

MASKS = np.zeros((3, 5, 6), np.float32)
MASKS[0, 0:2, 0:2] = 255  # part 1 of a lesion
MASKS[1, 3:5, 4:6] = 255  # part 2
MASKS[2, 1, 1] = 255  # overlaps part 1
EXPECTED = np.zeros((1, 5, 6), np.float32)
EXPECTED[0, 0:2, 0:2] = 1
EXPECTED[0, 3:5, 4:6] = 1

CASES = [[p, MASKS, EXPECTED] for p in TEST_NDARRAYS]
CASES += [[p, MASKS[:1], (MASKS[:1] > 0).astype(np.float32)] for p in TEST_NDARRAYS]  # one mask: binarised


class TestMergeMasks(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_merge(self, in_type, masks, expected):
        out = MergeMasks()(in_type(masks))
        self.assertIsInstance(out, type(in_type(masks)))
        self.assertEqual(tuple(out.shape), expected.shape)
        np.testing.assert_array_equal(np.asarray(out), expected)

    def test_threshold_dtype_and_meta(self):
        masks = MASKS.astype(np.uint8)
        masks[2, 4, 0] = 1
        out = MergeMasks(threshold=1)(masks)
        self.assertEqual(out.dtype, np.uint8)
        np.testing.assert_array_equal(out, EXPECTED.astype(np.uint8))
        meta = MergeMasks()(MetaTensor(torch.as_tensor(MASKS), meta={"filename_or_obj": "a_mask.png"}))
        self.assertEqual(meta.meta["filename_or_obj"], "a_mask.png")

    def test_error(self):
        with self.assertRaisesRegex(ValueError, r"channel-first.*\(5, 6\)"):
            MergeMasks()(MASKS[0])


if __name__ == "__main__":
    unittest.main()
