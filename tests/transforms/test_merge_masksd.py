from __future__ import annotations

import unittest

import numpy as np

from usgen_monai.transforms.masks import MergeMasksD, MergeMasksd, MergeMasksDict
from tests.transforms.test_merge_masks import EXPECTED, MASKS


class TestMergeMasksd(unittest.TestCase):
    def test_merges_keys_only(self):
        out = MergeMasksd("label")({"image": MASKS, "label": MASKS, "class": "benign"})
        np.testing.assert_array_equal(out["label"], EXPECTED)
        self.assertEqual(out["image"].shape, MASKS.shape)
        self.assertEqual(out["class"], "benign")

    def test_missing_keys(self):
        with self.assertRaises(KeyError):
            MergeMasksd("label")({"image": MASKS})
        self.assertEqual(set(MergeMasksd("label", allow_missing_keys=True)({"image": MASKS})), {"image"})

    def test_aliases(self):
        self.assertIs(MergeMasksD, MergeMasksd)
        self.assertIs(MergeMasksDict, MergeMasksd)


if __name__ == "__main__":
    unittest.main()
