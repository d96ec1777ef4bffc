"""The classifier two-sample test and the high-frequency energy on constructed images."""

from __future__ import annotations

import pytest
import torch

from usgen_monai.metrics import classifier_two_sample_test, high_frequency_energy


def _speckle(n: int, seed: int, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((n, 1, size, size), generator=g)


def test_high_frequency_energy_exact():
    assert high_frequency_energy(torch.full((2, 1, 8, 8), 0.3)) == pytest.approx(0.0, abs=1e-12)
    # a checkerboard of +-a around its box mean: with a 3x3 box, interior pixels see 4 or 5 of their own sign
    board = (torch.arange(8)[:, None] + torch.arange(8)[None]) % 2
    energy = high_frequency_energy(board.double()[None, None], box_size=3)
    assert 0.3 < energy < 0.5
    blurred = torch.nn.functional.avg_pool2d(_speckle(4, 0), 3, 1, 1)
    assert high_frequency_energy(blurred) < 0.5 * high_frequency_energy(_speckle(4, 0))
    with pytest.raises(ValueError, match="box_size"):
        high_frequency_energy(board[None, None], box_size=4)


def test_c2st_separates_what_differs_and_not_what_does_not():
    real, other = _speckle(24, 1), _speckle(24, 2)
    blurred = torch.nn.functional.avg_pool2d(_speckle(24, 3), 3, 1, 1)
    same = classifier_two_sample_test(real, other, folds=3, epochs=8, channels=(8, 8), seed=0)
    different = classifier_two_sample_test(real, blurred, folds=3, epochs=8, channels=(8, 8), seed=0)
    assert different["auc"] > 0.95 and abs(same["auc"] - 0.5) < different["auc"] - 0.5
    assert len(same["aucs"]) == 3 and same["num_per_set"] == 24
    again = classifier_two_sample_test(real, blurred, folds=3, epochs=8, channels=(8, 8), seed=0)
    assert again["aucs"] == different["aucs"]  # seeded


def test_c2st_checks_its_inputs():
    with pytest.raises(ValueError, match="one size"):
        classifier_two_sample_test(_speckle(8, 0), _speckle(8, 0, size=8))
    with pytest.raises(ValueError, match="at least 2 images"):
        classifier_two_sample_test(_speckle(5, 0), _speckle(5, 1), folds=3)
