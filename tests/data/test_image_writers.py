"""The plain image writers of usgen_monai.data.image_writers: PNG with text chunks, NIfTI with provenance."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from usgen_monai.data.image_writers import write_nifti, write_png


def test_write_png_grey_colour_and_text(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    path = write_png(tmp_path / "a" / "x.png", grey, {"Synthetic": "YES", "Note": "Grüße"})
    with Image.open(path) as im:
        assert im.mode == "L" and im.text == {"Synthetic": "YES", "Note": "Grüße"}
        np.testing.assert_array_equal(np.asarray(im), grey)
    rgb = np.stack([grey, grey // 2, 255 - grey], axis=-1)
    with Image.open(write_png(tmp_path / "rgb.png", rgb)) as im:
        assert im.mode == "RGB" and im.text == {}
        np.testing.assert_array_equal(np.asarray(im), rgb)
    with pytest.raises(ValueError, match=r"x\.png: expected a 2D uint8 array"):
        write_png(tmp_path / "x.png", np.eye(4))
    with pytest.raises(ValueError, match=r"shape \(2, 3, 2\)"):
        write_png(tmp_path / "x.png", np.zeros((2, 3, 2), np.uint8))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "rgb.png", "x.png"]  # no temporary files left


def test_write_png_is_atomic(tmp_path, monkeypatch):
    def failing_save(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        write_png(tmp_path / "x.png", np.zeros((2, 2), np.uint8))
    assert list(tmp_path.iterdir()) == []


def test_write_nifti_axes_spacing_description_comment(tmp_path):
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    path = write_nifti(tmp_path / "x.nii.gz", array, (0.5, 0.25), "SYNTHETIC test " + "x" * 100, '{"seed": 1}')
    image = nib.load(path)
    np.testing.assert_array_equal(np.asarray(image.dataobj), array.T)  # MONAI's axis order: first axis = column
    np.testing.assert_array_equal(image.affine, np.diag([0.25, 0.5, 1.0, 1.0]))
    assert image.header.get_xyzt_units()[0] == "mm"
    assert image.header["descrip"].tobytes().rstrip(b"\0") == ("SYNTHETIC test " + "x" * 100)[:79].encode()
    assert [(e.get_code(), e.get_content()) for e in image.header.extensions] == [(6, b'{"seed": 1}')]
    plain = nib.load(write_nifti(tmp_path / "y.nii", np.zeros((2, 2), np.uint8)))
    assert len(plain.header.extensions) == 0 and plain.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(plain.affine, np.eye(4))
    with pytest.raises(ValueError, match=r"z\.nii: expected a 2D"):
        write_nifti(tmp_path / "z.nii", np.zeros((2, 2, 2)))
