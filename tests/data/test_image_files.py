"""Reading single image files as the CSG generator sees them (usgen_monai.data.image_files)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from usgen_monai.data.image_files import read_grey_image
from usgen_monai.transforms.ultrasound import rgb_to_grey


def test_read_grey_image_colour_uses_the_packages_luma(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (12, 10, 3), dtype=np.uint8)
    rgb[:4] = rgb[:4, :, 1:2]  # grey stored as colour
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    image = read_grey_image(tmp_path / "rgb.png", (12, 10))
    assert image.shape == (1, 12, 10) and image.dtype.is_floating_point
    expected = rgb_to_grey(rgb, channel_dim=-1, keepdim=False).astype(np.float32) / 255.0
    np.testing.assert_array_equal(image[0].numpy(), expected)
    np.testing.assert_array_equal(image[0, :4].numpy(), rgb[:4, :, 1].astype(np.float32) / 255.0)  # exact


def test_read_grey_image_grey_and_resize(tmp_path):
    grey = np.arange(120, dtype=np.uint8).reshape(12, 10) * 2
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_grey_image(tmp_path / "g.png", (12, 10))[0].numpy(), grey / np.float32(255))
    assert read_grey_image(tmp_path / "g.png", (6, 5)).shape == (1, 6, 5)
