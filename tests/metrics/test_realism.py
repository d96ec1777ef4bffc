"""Exact values of the realism statistics (``usgen_monai.metrics.realism``) on constructed inputs, plus one check on
simulated images."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from tests.utils import simulated_triples
from usgen_monai.data.simulator import UltrasoundSimulator
from usgen_monai.metrics import (
    class_histograms,
    compare_speckle_statistics,
    extract_features,
    frechet_distance,
    histogram_distance,
    speckle_statistics,
)

BINS = 64


def _centre(b: int) -> float:
    """Centre of histogram bin ``b`` of ``BINS`` over [0, 1]."""
    return (b + 0.5) / BINS


def _two_class_images(low: float, high: float, constant: float, n: int = 2, size: int = 16):
    """Images whose class 0 (left half) alternates ``low`` (3 of 4 pixels) and ``high`` (1 of 4) and whose class 1
    (right half) is ``constant``."""
    labels = np.zeros((n, size, size), np.int64)
    labels[:, :, size // 2 :] = 1
    images = np.full((n, size, size), float(constant))
    left = np.full((n, size, size // 2), float(low))
    left[:, ::2, ::2] = high  # a quarter of the pixels
    images[:, :, : size // 2] = left
    return images, labels


def test_speckle_statistics_of_known_fields():
    images, labels = _two_class_images(0.2, 0.6, 0.8)
    stats = speckle_statistics(images, labels, num_classes=3)
    assert set(stats) == {0, 1}  # class 2 is absent
    # class 0: 0.2 + 0.4 * Bernoulli(1/4): mean 0.3, std 0.4 sqrt(3/16), skewness (1 - 2p) / sqrt(p (1 - p))
    p = 1 / 4
    assert stats[0]["mean"] == pytest.approx(0.2 + 0.4 * p, abs=1e-12)
    assert stats[0]["std"] == pytest.approx(0.4 * math.sqrt(p * (1 - p)), abs=1e-12)
    assert stats[0]["snr"] == pytest.approx(0.3 / (0.4 * math.sqrt(p * (1 - p))), abs=1e-9)  # sqrt(3)
    assert stats[0]["skewness"] == pytest.approx((1 - 2 * p) / math.sqrt(p * (1 - p)), abs=1e-9)  # 2 / sqrt(3)
    assert stats[0]["pixels"] == 2 * 16 * 8
    # class 1: a constant field, no speckle: std 0, SNR infinite, skewness 0
    assert stats[1]["mean"] == pytest.approx(0.8, abs=1e-12)
    assert stats[1]["std"] == 0.0 and stats[1]["snr"] == math.inf and stats[1]["skewness"] == 0.0
    # (N, 1, H, W) and tensors give the same; classes under min_pixels are left out
    as_tensors = speckle_statistics(torch.as_tensor(images[:, None]), torch.as_tensor(labels[:, None]), 2)
    assert as_tensors == stats
    assert set(speckle_statistics(images, labels, 2, min_pixels=2 * 16 * 8 + 1)) == set()


def test_speckle_statistics_errors_on_shape_mismatch():
    with pytest.raises(ValueError, match="same number of pixels"):
        speckle_statistics(np.zeros((2, 8, 8)), np.zeros((2, 8, 7)), 2)


def test_class_histograms_count_each_class():
    images, labels = _two_class_images(_centre(10), _centre(30), _centre(50))
    hists = class_histograms(images, labels, num_classes=3, bins=BINS)
    assert set(hists) == {0, 1}
    expected0 = np.zeros(BINS)
    expected0[10], expected0[30] = 0.75, 0.25
    expected1 = np.zeros(BINS)
    expected1[50] = 1.0
    np.testing.assert_array_equal(hists[0], expected0)
    np.testing.assert_array_equal(hists[1], expected1)
    edges = class_histograms(np.array([[0.0, 1.0]]), np.zeros((1, 2), np.int64), 1, bins=4)[0]
    np.testing.assert_array_equal(edges, [0.5, 0, 0, 0.5])  # 0 in the first bin, 1 in the last


@pytest.mark.parametrize("shift", [1, 5, 17])
def test_histogram_distance_of_shifted_histograms(shift):
    rng = np.random.default_rng(shift)
    p = np.zeros(BINS)
    p[: BINS - shift] = rng.random(BINS - shift)
    p /= p.sum()
    q = np.roll(p, shift)  # all the mass moved by `shift` bins of width 1 / BINS
    assert histogram_distance(p, q) == pytest.approx(shift / BINS, abs=1e-12)
    assert histogram_distance(q, p) == pytest.approx(shift / BINS, abs=1e-12)
    assert histogram_distance(p, p) == 0


def test_histogram_distance_moves_mass_by_distance():
    p = np.zeros(10)
    p[2] = 1
    q = np.zeros(10)
    q[7] = 1
    assert histogram_distance(p, q) == pytest.approx(0.5, abs=1e-12)
    half = np.zeros(10)
    half[2] = half[7] = 0.5  # half the mass moved by 5 bins of 0.1
    assert histogram_distance(p, half) == pytest.approx(0.25, abs=1e-12)
    with pytest.raises(ValueError, match="same bins"):
        histogram_distance(p, np.ones(5))


def test_compare_speckle_statistics_of_shifted_images():
    gen, gen_labels = _two_class_images(_centre(10), _centre(30), _centre(50))
    real, real_labels = _two_class_images(_centre(15), _centre(35), _centre(50))  # class 0 brighter by 5 bins
    out = compare_speckle_statistics(gen, gen_labels, real, real_labels, 2, class_names=["fat", "muscle"])
    assert set(out) == {"fat", "muscle"}
    assert out["fat"]["histogram_emd"] == pytest.approx(5 / BINS, abs=1e-12)
    assert out["fat"]["mean_real"] - out["fat"]["mean_gen"] == pytest.approx(5 / BINS, abs=1e-12)
    std = (20 / BINS) * math.sqrt(3 / 16)  # the two levels are 20 bins apart in both sets
    assert out["fat"]["snr_gen"] == pytest.approx(out["fat"]["mean_gen"] / std, abs=1e-9)
    assert out["fat"]["snr_real"] == pytest.approx(out["fat"]["mean_real"] / std, abs=1e-9)
    assert out["muscle"] == {
        "mean_gen": pytest.approx(_centre(50), abs=1e-12),
        "mean_real": pytest.approx(_centre(50), abs=1e-12),
        "snr_gen": math.inf,
        "snr_real": math.inf,
        "histogram_emd": 0.0,
    }
    only_fat = compare_speckle_statistics(gen, gen_labels, real, np.zeros_like(real_labels), 2)
    assert set(only_fat) == {"0"}  # only classes present in both sets, by value without class names


def _set(preset, n, seed, **kw):
    sim = UltrasoundSimulator(preset, 64, **kw)
    samples = [sim.sample(seed=seed + i) for i in range(n)]
    return np.stack([s.image for s in samples]), np.stack([s.label for s in samples]), sim


def test_speckle_statistics_of_simulated_images():
    # no closed form here: two draws of one preset agree, and a brightness shift moves the histograms
    img_a, lab_a, sim = _set("breast", 6, 0)
    img_b, lab_b, _ = _set("breast", 6, 100)
    stats = compare_speckle_statistics(img_a, lab_a, img_b, lab_b, len(sim.classes), sim.classes)
    assert "glandular" in stats and "fat" in stats
    assert stats["glandular"]["histogram_emd"] < 0.05
    assert stats["glandular"]["mean_gen"] > stats["fat"]["mean_gen"]  # glandular tissue is brighter than fat
    brighter = np.clip(img_b + 0.2, 0, 1)
    moved = compare_speckle_statistics(img_a, lab_a, brighter, lab_b, len(sim.classes), sim.classes)
    assert moved["glandular"]["histogram_emd"] > 0.15


def _features_with(mean, cov, n=50, seed=0):
    """``n`` feature vectors whose sample mean and (unbiased) sample covariance are exactly ``mean`` and ``cov``."""
    mean, cov = np.asarray(mean, np.float64), np.asarray(cov, np.float64)
    z = np.random.default_rng(seed).normal(size=(n, len(mean)))
    z -= z.mean(0)
    z = z @ np.linalg.inv(np.linalg.cholesky(np.cov(z, rowvar=False))).T  # sample covariance now exactly I
    return torch.from_numpy(mean + z @ np.linalg.cholesky(cov).T)


def test_features_with_controls_the_sample_statistics():
    f = _features_with([1.0, -2.0], [[2.0, 0.5], [0.5, 1.0]]).numpy()
    np.testing.assert_allclose(f.mean(0), [1.0, -2.0], atol=1e-12)
    np.testing.assert_allclose(np.cov(f, rowvar=False), [[2.0, 0.5], [0.5, 1.0]], atol=1e-12)


def test_frechet_distance_of_diagonal_and_commuting_covariances():
    # ||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)) = ||mu1 - mu2||^2 + sum (s1_i - s2_i)^2 for diagonal S = diag(s^2)
    mu1, mu2 = np.array([1.0, 2.0, 3.0]), np.array([4.0, 2.0, -1.0])  # ||mu1 - mu2||^2 = 9 + 0 + 16
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([2.0, 2.0, 1.5])  # sum of squared differences 1 + 0 + 1
    a = _features_with(mu1, np.diag(s1**2), seed=1)
    b = _features_with(mu2, np.diag(s2**2), seed=2)
    assert frechet_distance(a, b) == pytest.approx(27.0, abs=1e-9)
    assert frechet_distance(b, a) == pytest.approx(27.0, abs=1e-9)
    # the same rotation of both sets gives commuting, non-diagonal covariances and the same distance
    q, _ = np.linalg.qr(np.random.default_rng(3).normal(size=(3, 3)))
    rotation = torch.from_numpy(q)
    assert frechet_distance(a @ rotation.T, b @ rotation.T) == pytest.approx(27.0, abs=1e-9)
    # same covariance: only the means count; same set: 0
    assert frechet_distance(a, a + torch.tensor([0.0, 3.0, 4.0], dtype=torch.float64)) == pytest.approx(25.0, abs=1e-9)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_non_commuting_covariances():
    # in 2-D, Tr(M^(1/2)) = sqrt(Tr M + 2 sqrt(det M)) for M = S1 S2 with positive eigenvalues
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    m = s1 @ s2
    expected = (
        1.0**2 + 2.0**2 + np.trace(s1) + np.trace(s2) - 2 * math.sqrt(np.trace(m) + 2 * math.sqrt(np.linalg.det(m)))
    )
    a = _features_with([0.0, 0.0], s1, seed=4)
    b = _features_with([1.0, -2.0], s2, n=80, seed=5)
    assert frechet_distance(a, b) == pytest.approx(expected, abs=1e-9)
    assert frechet_distance(a.float(), b.float()) == pytest.approx(expected, abs=1e-4)  # float32 features too


def test_frechet_distance_errors():
    a = torch.zeros(4, 8)
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        frechet_distance(a, a[:, :4])
    with pytest.raises(ValueError, match=r"\(N, F\)"):
        frechet_distance(a[0], a)
    with pytest.raises(ValueError, match="at least 2 feature vectors"):
        frechet_distance(a[:1], a)


def test_extract_features_pools_spatial_outputs():
    conv = torch.nn.Conv2d(1, 4, 3)
    x = torch.rand(5, 1, 16, 16)
    f = extract_features(conv, x, batch_size=2)
    assert f.shape == (5, 4)
    torch.testing.assert_close(f, conv(x).mean((2, 3)).detach())
    flat = torch.nn.Flatten()
    torch.testing.assert_close(extract_features(flat, x, batch_size=3), x.flatten(1))  # (N, F) outputs as they are


def test_simulated_triples_helper():
    triples = simulated_triples("msk", num=2, size=32)
    assert len(triples) == 2 and triples[0][0].shape == (32, 32)
