"""SpeckleRefiner: shapes, identity at initialisation, noise checked, arguments checked."""

from __future__ import annotations

import pytest
import torch
from parameterized import parameterized

from usgen_monai.networks import SpeckleRefiner

CASES = [
    ({}, (2, 1, 32, 48)),
    ({"noise_channels": 2, "channels": 16, "dilations": (1, 2)}, (1, 1, 17, 23)),
    ({"spatial_dims": 3, "channels": 8, "dilations": (1,)}, (1, 1, 8, 8, 8)),
]


@parameterized.expand(CASES)
def test_shape_and_identity_at_initialisation(kwargs, shape):
    refiner = SpeckleRefiner(**kwargs).eval()
    images = torch.rand(shape)
    noise = torch.randn(refiner.noise_shape(images))
    with torch.no_grad():
        out = refiner(images, noise)
    assert out.shape == images.shape
    torch.testing.assert_close(out, images, rtol=0, atol=0)  # the zero-initialised output layer


def test_noise_makes_the_texture():
    refiner = SpeckleRefiner(channels=8).eval()
    torch.nn.init.normal_(refiner.out.weight, std=0.1)
    images = torch.rand(1, 1, 16, 16)
    g = torch.Generator().manual_seed(0)
    a, b = (refiner(images, torch.randn(refiner.noise_shape(images), generator=g)) for _ in range(2))
    assert not torch.equal(a, b) and a.min() >= 0 and a.max() <= 1
    with pytest.raises(ValueError, match="noise must have shape"):
        refiner(images, torch.randn(1, 3, 16, 16))


@parameterized.expand(
    [({"spatial_dims": 1}, "spatial_dims"), ({"channels": 12}, "norm_num_groups"), ({"dilations": ()}, "dilations")]
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SpeckleRefiner(**kwargs)
