from __future__ import annotations

import unittest

import numpy as np

from usgen_monai.transforms.prompts import PointFromMaskd, ResizeLongestSidePadd


class TestPointFromMaskd(unittest.TestCase):
    def test_click_reaches_the_model_frame(self):
        """The click goes to ``foreground`` and through ResizeLongestSidePadd to one labelled point; no box."""
        label = np.zeros((1, 32, 16), np.float32)  # (C, W, H): 32 columns, 16 rows
        label[0, 20:27, 4:11] = 1  # columns 20..26, rows 4..10: centre (23, 7)
        d = PointFromMaskd("label")({"label": label, "image": np.zeros_like(label)})
        np.testing.assert_array_equal(d["foreground"], [[23, 7]])
        self.assertNotIn("background", d)
        out = ResizeLongestSidePadd(["image", "label"], image_size=64, mode=["bilinear", "nearest"])(d)
        np.testing.assert_allclose(np.asarray(out["points"]), [[[(23 + 0.5) * 2, (7 + 0.5) * 2]]], atol=1.01)
        np.testing.assert_array_equal(np.asarray(out["point_labels"]), [[1]])
        self.assertNotIn("boxes", out)

    def test_empty_mask_gives_a_background_click(self):
        d = PointFromMaskd("label", background_key="bg", empty="background")({"label": np.zeros((1, 8, 8))})
        self.assertNotIn("foreground", d)
        np.testing.assert_array_equal(d["bg"], [[4, 4]])
        with self.assertRaisesRegex(ValueError, "one mask key"):
            PointFromMaskd(["label", "other"])


if __name__ == "__main__":
    unittest.main()
