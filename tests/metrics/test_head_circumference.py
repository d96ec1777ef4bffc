"""Head circumference as HC18 measures it (ellipse fitted to the mask's edge) and a prediction's error."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from parameterized import parameterized

from usgen_monai.data.layouts import ellipse_circumference
from usgen_monai.metrics import head_circumference, head_circumference_error


def _ellipse(shape=(200, 240), centre=(100, 120), axes=(70, 45), angle_deg=30.0) -> np.ndarray:
    rows, cols = np.mgrid[: shape[0], : shape[1]].astype(np.float64)
    t = math.radians(angle_deg)
    u = (cols - centre[1]) * math.cos(t) + (rows - centre[0]) * math.sin(t)
    v = -(cols - centre[1]) * math.sin(t) + (rows - centre[0]) * math.cos(t)
    return (u / axes[0]) ** 2 + (v / axes[1]) ** 2 <= 1.0


# (axes in pixels, angle, spacing (row, column) in mm, expected circumference in mm)
CASES = [
    [(60, 60), 0.0, (0.5, 0.5), 2 * math.pi * 30],
    [(70, 45), 30.0, (1.0, 1.0), ellipse_circumference(70, 45)],
    [(70, 45), 0.0, (0.2, 0.2), ellipse_circumference(14, 9)],
    [(80, 40), 0.0, (0.1, 0.3), ellipse_circumference(24, 4)],  # non-square pixels: columns 0.3 mm, rows 0.1 mm
]


class TestHeadCircumference:
    @parameterized.expand(CASES)
    def test_known_ellipses(self, axes, angle, spacing, expected):
        measured = head_circumference(_ellipse(axes=axes, angle_deg=angle), spacing_mm=spacing)
        assert measured == pytest.approx(expected, rel=0.01)

    def test_monai_axis_order_and_channel(self):
        mask = _ellipse(axes=(80, 40))
        plain = head_circumference(mask, (0.1, 0.3))
        monai = head_circumference(torch.as_tensor(mask.T[None]), (0.1, 0.3), reverse_indexing=True)
        assert monai == pytest.approx(plain, rel=1e-9)

    def test_empty_and_bad_input(self):
        assert head_circumference(np.zeros((20, 20))) is None
        with pytest.raises(ValueError, match="spacing_mm"):
            head_circumference(_ellipse(), spacing_mm=(0.0, 1.0))
        with pytest.raises(ValueError, match="one channel"):
            head_circumference(np.zeros((2, 20, 20)))


class TestHeadCircumferenceError:
    def test_error_of_a_larger_prediction(self):
        label, pred = _ellipse(axes=(60, 40)), _ellipse(axes=(66, 44))
        score = head_circumference_error(pred, label, (0.5, 0.5))
        expected = 0.5 * (ellipse_circumference(66, 44) - ellipse_circumference(60, 40))
        assert score["abs_error_mm"] == pytest.approx(expected, rel=0.03)
        assert score["rel_error"] == pytest.approx(score["abs_error_mm"] / score["label_mm"])
        assert head_circumference_error(label, label)["abs_error_mm"] == 0.0

    def test_a_missed_head_costs_its_whole_circumference_and_no_reference_is_nan(self):
        label = _ellipse()
        score = head_circumference_error(np.zeros_like(label), label)
        assert score["pred_mm"] == 0.0 and score["abs_error_mm"] == score["label_mm"] and score["rel_error"] == 1.0
        assert all(math.isnan(v) for v in head_circumference_error(label, np.zeros_like(label)).values())
