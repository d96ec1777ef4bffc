from __future__ import annotations

import unittest

import numpy as np
import torch
from parameterized import parameterized

from usgen_monai.transforms.prompts import LongestSideFrame

# (original (H, W), image_size, resized (h, w))
CASES = [
    [(97, 211), 256, (118, 256)],
    [(211, 97), 256, (256, 118)],
    [(540, 800), 256, (173, 256)],
    [(64, 64), 64, (64, 64)],
]


def _ellipse(height: int, width: int) -> torch.Tensor:
    rows, cols = np.mgrid[:height, :width]
    inside = ((cols - width * 0.45) / (width * 0.33)) ** 2 + ((rows - height * 0.55) / (height * 0.3)) ** 2 <= 1
    return torch.as_tensor(inside[None].astype(np.uint8))


class TestLongestSideFrame(unittest.TestCase):
    @parameterized.expand(CASES)
    def test_sizes_and_prompts(self, original, image_size, resized):
        frame = LongestSideFrame(original, image_size)
        self.assertEqual(frame.input_size, resized)
        height, width = original
        sx, sy = resized[1] / width, resized[0] / height  # aspect kept: both near image_size / long side
        self.assertAlmostEqual(sx, sy, delta=0.01)
        np.testing.assert_allclose(frame.coords_to_model([[width, height]]), [[resized[1], resized[0]]])
        np.testing.assert_allclose(frame.boxes_to_model([2, 4, 10, 20]), [2 * sx, 4 * sy, 10 * sx, 20 * sy])
        out = frame.image_to_model(torch.ones(1, height, width))
        self.assertEqual(tuple(out.shape), (1, image_size, image_size))
        self.assertAlmostEqual(out[0, : resized[0], : resized[1]].min().item(), 1, places=5)  # the image, then zeros
        self.assertAlmostEqual(out.sum().item(), resized[0] * resized[1], delta=0.01)

    @parameterized.expand([[(97, 211)], [(211, 97)], [(31, 256)], [(200, 201)]])
    def test_mask_round_trip_is_exact(self, original):
        mask = _ellipse(*original)
        frame = LongestSideFrame(original, 256)
        model = frame.image_to_model(mask, mode="nearest")
        torch.testing.assert_close(frame.masks_to_original(model), mask)  # labels: nearest
        logits = model.float() * 8 - 4
        torch.testing.assert_close((frame.masks_to_original(logits) > 0).to(torch.uint8), mask)  # logits: "auto"
        unpadded = logits[..., : frame.input_size[0], : frame.input_size[1]]
        torch.testing.assert_close(frame.masks_to_original(unpadded), frame.masks_to_original(logits))

    def test_large_images_come_back_smooth(self):
        frame = LongestSideFrame((540, 800), 256)
        mask = _ellipse(540, 800)
        back = frame.masks_to_original(frame.image_to_model(mask.float()) * 2 - 1) > 0
        self.assertGreater((back == mask.bool()).float().mean().item(), 0.998)

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, r"original_size=\(0, 5\)"):
            LongestSideFrame((0, 5), 256)
        frame = LongestSideFrame((97, 211), 256)
        with self.assertRaisesRegex(ValueError, r"does not match this frame's \(97, 211\)"):
            frame.image_to_model(torch.zeros(1, 211, 97))
        with self.assertRaisesRegex(ValueError, "smaller than the frame's input"):
            frame.masks_to_original(torch.zeros(1, 100, 100))
        with self.assertRaisesRegex(ValueError, "mode must be"):
            frame.image_to_model(torch.zeros(1, 97, 211), mode="bicubic")


if __name__ == "__main__":
    unittest.main()
