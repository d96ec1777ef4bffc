from __future__ import annotations

import unittest

import numpy as np
import torch

from usgen_monai.transforms.masks import FillOutlineD, FillOutlined, FillOutlineDict
from tests.transforms.test_fill_outline import SQUARE, SQUARE_FILLED


class TestFillOutlined(unittest.TestCase):
    def test_fills_keys_only(self):
        data = {"image": torch.as_tensor(SQUARE), "label": torch.as_tensor(SQUARE), "group": "010"}
        out = FillOutlined("label")(data)
        np.testing.assert_array_equal(out["label"].numpy(), SQUARE_FILLED)
        np.testing.assert_array_equal(out["image"].numpy(), SQUARE)  # untouched
        self.assertEqual(out["group"], "010")
        self.assertIsNot(out, data)

    def test_missing_keys(self):
        with self.assertRaises(KeyError):
            FillOutlined("label")({"image": SQUARE})
        out = FillOutlined("label", allow_missing_keys=True)({"image": SQUARE})
        self.assertEqual(set(out), {"image"})

    def test_aliases(self):
        self.assertIs(FillOutlineD, FillOutlined)
        self.assertIs(FillOutlineDict, FillOutlined)


if __name__ == "__main__":
    unittest.main()
