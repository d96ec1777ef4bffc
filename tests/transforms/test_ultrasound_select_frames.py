"""SelectFrames: frame selection on a cine and the inverse back to all frames."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from monai.data import MetaTensor

from usgen_monai.transforms.ultrasound import SelectFrames
from usgen_monai.transforms.ultrasound import UltrasoundMetaKeys as K


def cine(frames=5):
    data = torch.arange(2 * 4 * 3 * frames, dtype=torch.float32).reshape(2, 4, 3, frames)
    affine = torch.diag(torch.tensor([0.1, 0.2, 1.0, 1.0], dtype=torch.float64))
    return MetaTensor(data, affine=affine, meta={K.FRAME_INDICES: np.arange(10, 10 + frames)})


TEST_CASES = [
    (2, [2], (2, 4, 3)),
    (-1, [4], (2, 4, 3)),
    ([3, 1], [3, 1], (2, 4, 3, 2)),
    (range(1, 4), [1, 2, 3], (2, 4, 3, 3)),
    (slice(None, None, 2), [0, 2, 4], (2, 4, 3, 3)),
]


@pytest.mark.parametrize("frames, indices, shape", TEST_CASES)
def test_select_and_inverse(frames, indices, shape):
    img = cine()
    t = SelectFrames(frames)
    out = t(img)
    assert tuple(out.shape) == shape
    np.testing.assert_array_equal(out.numpy().reshape(2, 4, 3, -1), img.numpy()[..., indices])
    np.testing.assert_array_equal(out.meta[K.FRAME_INDICES], np.arange(10, 15)[indices])
    assert float(out.affine[2, 3]) == indices[0]
    back = t.inverse(out)
    assert back.shape == img.shape
    expected = np.zeros_like(img.numpy())
    expected[..., indices] = img.numpy()[..., indices]
    np.testing.assert_array_equal(back.numpy(), expected)
    np.testing.assert_array_equal(back.meta[K.FRAME_INDICES], np.arange(10, 15))
    np.testing.assert_allclose(back.affine.numpy(), img.affine.numpy())
    assert not back.applied_operations


def test_keep_dim_and_frame_dim():
    img = cine()
    assert tuple(SelectFrames(1, keep_dim=True)(img).shape) == (2, 4, 3, 1)
    out = SelectFrames([0, 1], frame_dim=1)(img)  # select along the first spatial axis instead
    assert tuple(out.shape) == (2, 2, 3, 5)


def test_errors():
    with pytest.raises(ValueError, match=r"frame 5 requested but there are only 5"):
        SelectFrames(5)(cine())
    with pytest.raises(ValueError, match="channel axis"):
        SelectFrames(0, frame_dim=0)
    with pytest.raises(ValueError, match="frames must be"):
        SelectFrames("first")
    with pytest.raises(ValueError, match="empty"):
        SelectFrames([])(cine())
    with pytest.raises(ValueError, match="frame axis"):
        SelectFrames(0)(torch.ones(1, 4))
