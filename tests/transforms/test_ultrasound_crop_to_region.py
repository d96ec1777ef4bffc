"""CropToUltrasoundRegion: crop to the B-mode region from the reader's metadata, and its inverse."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, LoadImage

from tests.dicom_factory import DEFAULT_REGIONS, bmode_frames, write_image
from usgen_monai.data.dicom_reader import UltrasoundDicomReader
from usgen_monai.transforms.ultrasound import CropToUltrasoundRegion
from usgen_monai.transforms.ultrasound import UltrasoundMetaKeys as K


def region_image(shape=(1, 20, 16, 3), start=(4, 3), end=(15, 12), spacing=(0.5, 0.25)) -> MetaTensor:
    data = torch.arange(int(np.prod(shape)), dtype=torch.float32).reshape(shape)
    affine = torch.diag(torch.tensor([spacing[0], spacing[1], 1.0, 1.0], dtype=torch.float64))
    meta = {K.REGION_ROI_START: np.array(start), K.REGION_ROI_END: np.array(end), K.REGION_FOUND: True}
    return MetaTensor(data, affine=affine, meta=meta)


TEST_CASES = [
    # (kwargs, expected slices along the first two spatial axes)
    ({}, (slice(4, 15), slice(3, 12))),
    ({"margin": 2}, (slice(2, 17), slice(1, 14))),
    ({"margin": (10, 0)}, (slice(0, 20), slice(3, 12))),
    ({"roi_start": (0, 0), "roi_end": (5, 100)}, (slice(0, 5), slice(0, 16))),
]


@pytest.mark.parametrize("kwargs, slices", TEST_CASES)
def test_crop_and_inverse(kwargs, slices):
    img = region_image()
    crop = CropToUltrasoundRegion(**kwargs)
    out = crop(img)
    np.testing.assert_array_equal(out.numpy(), img.numpy()[(slice(None), *slices)])
    # physical positions are unchanged: the affine moves by the crop offset
    np.testing.assert_allclose(out.affine[:2, 3].numpy(), [slices[0].start * 0.5, slices[1].start * 0.25])
    np.testing.assert_array_equal(out.meta[K.REGION_ROI_START], [0, 0])
    np.testing.assert_array_equal(out.meta[K.REGION_ROI_END], out.shape[1:3])
    np.testing.assert_array_equal(img.meta[K.REGION_ROI_START], [4, 3])  # the input's metadata is untouched
    back = crop.inverse(out)
    assert back.shape == img.shape
    inside = back.numpy()[(slice(None), *slices)]
    np.testing.assert_array_equal(inside, img.numpy()[(slice(None), *slices)])
    assert back.numpy().sum() == inside.sum()  # zeros outside the region
    np.testing.assert_allclose(back.affine.numpy(), img.affine.numpy())
    np.testing.assert_array_equal(back.meta[K.REGION_ROI_START], [4, 3])
    assert not back.applied_operations


def test_crop_from_dicom_removes_annotations():
    import tempfile
    from pathlib import Path

    grey = bmode_frames(frames=2)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_image(Path(tmp) / "cine.dcm", grey)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            img = LoadImage(reader=UltrasoundDicomReader(), image_only=True, ensure_channel_first=True)(path)
    out = CropToUltrasoundRegion()(img)
    r = DEFAULT_REGIONS[0]
    assert tuple(out.shape) == (1, r.x1 - r.x0 + 1, r.y1 - r.y0 + 1, 2)
    np.testing.assert_array_equal(out[0].numpy().transpose(2, 1, 0), grey[:, r.y0 : r.y1 + 1, r.x0 : r.x1 + 1])
    assert out.max() < 255 and img.max() == 255  # burned-in text gone


def test_missing_region():
    img = MetaTensor(torch.ones(1, 8, 6))
    out = CropToUltrasoundRegion()(img)
    assert out.shape == img.shape and len(out.applied_operations) == 1  # recorded, so inversion stays in step
    img.meta[K.REGION_FOUND] = False
    img.meta[K.REGION_ROI_START], img.meta[K.REGION_ROI_END] = np.array([1, 1]), np.array([3, 3])
    assert CropToUltrasoundRegion()(img).shape == img.shape  # the reader found no region: nothing to crop to
    with pytest.raises(ValueError, match="no ultrasound region in the metadata"):
        CropToUltrasoundRegion(allow_missing_region=False)(MetaTensor(torch.ones(1, 8, 6)))


def test_bad_arguments():
    with pytest.raises(ValueError, match="both roi_start and roi_end"):
        CropToUltrasoundRegion(roi_start=(1, 1))
    with pytest.raises(ValueError, match="margin"):
        CropToUltrasoundRegion(margin=-1)
    with pytest.raises(ValueError, match="empty ultrasound region"):
        CropToUltrasoundRegion(roi_start=(5, 5), roi_end=(5, 9))(region_image())
    with pytest.raises(ValueError, match=">= 2 spatial axes"):
        CropToUltrasoundRegion()(torch.ones(1, 8))


def test_lazy_matches_eager():
    img = region_image()
    eager = CropToUltrasoundRegion()(img)
    lazy = Compose([CropToUltrasoundRegion()], lazy=True)(img)
    np.testing.assert_array_equal(lazy.numpy(), eager.numpy())
    np.testing.assert_allclose(lazy.affine.numpy(), eager.affine.numpy())
