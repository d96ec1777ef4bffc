from __future__ import annotations

import unittest

import numpy as np
import torch
from monai.data import MetaTensor
from parameterized import parameterized

from usgen_monai.transforms.prompts import ResizeLongestSidePad

TEST_NDARRAYS = (np.asarray, torch.as_tensor, MetaTensor)

ROW_MAJOR = np.zeros((1, 97, 211), np.uint8)  # H=97, W=211
ROW_MAJOR[0, 20:70, 30:190] = 1
ROW_MAJOR[0, 5, 200] = 1  # a single pixel survives too


class TestResizeLongestSidePad(unittest.TestCase):
    @parameterized.expand([[p, r] for p in TEST_NDARRAYS for r in (True, False)])
    def test_frame_is_row_major_and_padded(self, in_type, reverse_indexing):
        mask = ROW_MAJOR.transpose(0, 2, 1) if reverse_indexing else ROW_MAJOR
        out = ResizeLongestSidePad(256, mode="nearest", reverse_indexing=reverse_indexing)(in_type(mask))
        self.assertEqual(tuple(out.shape), (1, 256, 256))
        self.assertEqual(out.dtype, torch.uint8)
        rows, cols = torch.nonzero(out[0] * (out[0].sum(1, keepdim=True) > 1), as_tuple=True)  # the rectangle
        self.assertAlmostEqual(cols.max().item() - cols.min().item() + 1, 160 * 256 / 211, delta=1)  # x: last axis
        self.assertAlmostEqual(rows.max().item() - rows.min().item() + 1, 50 * 118 / 97, delta=1)
        self.assertEqual(out[0, 118:].sum().item(), 0)  # rows below the resized 118 are padding

    @parameterized.expand([[True], [False]])
    def test_inverse_is_exact(self, reverse_indexing):
        mask = ROW_MAJOR.transpose(0, 2, 1) if reverse_indexing else ROW_MAJOR
        t = ResizeLongestSidePad(256, mode="nearest", reverse_indexing=reverse_indexing)
        out = t(MetaTensor(torch.as_tensor(mask), meta={"filename_or_obj": "a_mask.png"}))
        logits = MetaTensor(out.float() * 2 - 1, meta=out.meta, applied_operations=list(out.applied_operations))
        back = t.inverse(out)
        self.assertEqual(back.meta["filename_or_obj"], "a_mask.png")
        np.testing.assert_array_equal(back.numpy(), mask)
        self.assertEqual(len(back.applied_operations), 0)
        np.testing.assert_array_equal((t.inverse(logits) > 0).numpy(), mask.astype(bool))

    def test_image_values_and_errors(self):
        out = ResizeLongestSidePad(64, reverse_indexing=False)(torch.full((3, 32, 16), 0.5))
        self.assertEqual(tuple(out.shape), (3, 64, 64))
        torch.testing.assert_close(out[:, :, :32], torch.full((3, 64, 32), 0.5))
        self.assertEqual(out[:, :, 32:].abs().sum().item(), 0)
        with self.assertRaisesRegex(ValueError, r"channel-first 2D image .* \(97, 211\)"):
            ResizeLongestSidePad()(ROW_MAJOR[0])
        with self.assertRaisesRegex(ValueError, "mode must be"):
            ResizeLongestSidePad(mode="area")


if __name__ == "__main__":
    unittest.main()
