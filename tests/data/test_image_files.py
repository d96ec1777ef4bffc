"""Reading single image files as the CSG generator sees them (usgen_monai.data.image_files)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tests.dicom_factory import build_variant, write_image
from usgen_monai.data.image_files import find_image_files, read_context_image, read_grey_image
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


def test_read_context_image_reads_other_files_as_read_grey_image(tmp_path):
    grey = np.arange(120, dtype=np.uint8).reshape(12, 10)
    Image.fromarray(grey).save(tmp_path / "g.png")
    image, record = read_context_image(tmp_path / "g.png", (6, 5))
    assert record == {} and torch.equal(image, read_grey_image(tmp_path / "g.png", (6, 5)))


def test_read_context_image_dicom_value_range_and_recorded_crop(tmp_path):
    mono1, expected = build_variant("mono1_16bit", tmp_path)  # 12-bit MONOCHROME1, inverted by the reader
    image, record = read_context_image(mono1, (48, 64), crop_to_region=False)
    assert record == {"frame": 0, "frame_count": 1, "crop": [0, 0, 64, 48], "crop_source": "not_cropped"}
    torch.testing.assert_close(image[0], torch.as_tensor(expected[0] / 4095, dtype=torch.float32), rtol=0, atol=1e-6)
    again, _ = read_context_image(mono1, (10, 10), crop=[8, 6, 18, 16])  # a recorded box, used as given
    torch.testing.assert_close(again[0], torch.as_tensor(expected[0, 6:16, 8:18] / 4095, dtype=torch.float32))
    with pytest.raises(ValueError, match=r"mono1_16bit\.dcm: crop \[0, 0, 65, 48\] is not a box"):
        read_context_image(mono1, (10, 10), crop=[0, 0, 65, 48])


def test_find_image_files_lists_images_under_a_folder(tmp_path):
    for name in ("a.png", "sub/b.JPG", "sub/deeper/c.nii.gz", "d.dcm", ".hidden/e.png", "notes.txt", "table.csv"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    write_image(tmp_path / "sub" / "IM0001", np.zeros((1, 8, 8), np.uint8), regions=None)  # DICOM without a suffix
    found = [p.relative_to(tmp_path).as_posix() for p in find_image_files(tmp_path)]
    assert found == ["a.png", "d.dcm", "sub/IM0001", "sub/b.JPG", "sub/deeper/c.nii.gz"]
    with pytest.raises(ValueError, match="is not a folder"):
        find_image_files(tmp_path / "a.png")
