from __future__ import annotations

import numpy as np
import pytest
import torch

from usgen_monai.metrics import (
    compare_speckle_statistics,
    extract_features,
    frechet_distance,
    histogram_distance,
    speckle_statistics,
)
from tests.utils import simulated_triples
from usgen_monai.data.simulator import UltrasoundSimulator


def _set(preset, n, seed, **kw):
    sim = UltrasoundSimulator(preset, 64, **kw)
    samples = [sim.sample(seed=seed + i) for i in range(n)]
    return np.stack([s.image for s in samples]), np.stack([s.label for s in samples]), sim


def test_speckle_statistics_match_within_a_preset_and_differ_across_gain():
    img_a, lab_a, sim = _set("breast", 6, 0)
    img_b, lab_b, _ = _set("breast", 6, 100)
    stats = compare_speckle_statistics(img_a, lab_a, img_b, lab_b, len(sim.classes), sim.classes)
    assert "glandular" in stats and "fat" in stats
    assert stats["glandular"]["histogram_emd"] < 0.05
    # glandular tissue is brighter than fat in both sets
    assert stats["glandular"]["mean_gen"] > stats["fat"]["mean_gen"]
    brighter = np.clip(img_b + 0.2, 0, 1)
    moved = compare_speckle_statistics(img_a, lab_a, brighter, lab_b, len(sim.classes), sim.classes)
    assert moved["glandular"]["histogram_emd"] > 0.15


def test_histogram_distance_properties():
    p = np.zeros(10)
    p[2] = 1
    q = np.zeros(10)
    q[7] = 1
    assert histogram_distance(p, p) == 0
    assert histogram_distance(p, q) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="same bins"):
        histogram_distance(p, np.ones(5))


def test_speckle_statistics_errors_on_shape_mismatch():
    with pytest.raises(ValueError, match="same number of pixels"):
        speckle_statistics(np.zeros((2, 8, 8)), np.zeros((2, 8, 7)), 2)


def test_frechet_distance_zero_for_same_and_grows_with_shift():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(200, 8, generator=g)
    b = torch.randn(200, 8, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    near, far = frechet_distance(a, b), frechet_distance(a, b + 2.0)
    assert near < 1.0 < far
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        frechet_distance(a, b[:, :4])


def test_extract_features_pools_spatial_outputs():
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.rand(5, 1, 16, 16)
    f = extract_features(conv, x, batch_size=2)
    assert f.shape == (5, 4)
    torch.testing.assert_close(f, conv(x).mean((2, 3)).detach())


def test_simulated_triples_helper():
    triples = simulated_triples("msk", num=2, size=32)
    assert len(triples) == 2 and triples[0][0].shape == (32, 32)
