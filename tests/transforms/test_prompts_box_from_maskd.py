from __future__ import annotations

import tempfile
import unittest
from pathlib import Path

import numpy as np
from monai.transforms import LoadImaged
from PIL import Image

from usgen_monai.transforms.prompts import BoxFromMaskd


class TestBoxFromMaskd(unittest.TestCase):
    def test_pil_read_png_is_transposed_by_monai(self):
        """A PNG of 97 rows and 211 columns loads as (1, 211, 97); the box is still in the PNG's x = column."""
        mask = np.zeros((97, 211), np.uint8)
        mask[10:30, 150:200] = 255  # rows 10..29, columns 150..199
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "head_mask.png"
            Image.fromarray(mask).save(path)
            d = LoadImaged("label", ensure_channel_first=True)({"label": str(path)})
        self.assertEqual(tuple(d["label"].shape), (1, 211, 97))
        out = BoxFromMaskd("label", margin=1)(d)
        np.testing.assert_array_equal(out["roi"], [149, 9, 200, 30])
        self.assertIs(out["label"], d["label"])

    def test_roi_key_and_missing(self):
        mask = np.zeros((1, 5, 9), np.uint8)
        mask[0, 1, 2] = mask[0, 3, 6] = 1
        out = BoxFromMaskd("label", roi_key="box", reverse_indexing=False)({"label": mask})
        np.testing.assert_array_equal(out["box"], [2, 1, 6, 3])
        self.assertEqual(BoxFromMaskd("label", allow_missing_keys=True)({"image": mask}), {"image": mask})
        with self.assertRaisesRegex(ValueError, "one mask key"):
            BoxFromMaskd(["label", "other"])


if __name__ == "__main__":
    unittest.main()
