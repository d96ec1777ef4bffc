"""The head-circumference error metric on an evaluator's decollated output."""

from __future__ import annotations

import math

import pytest
import torch

from tests.metrics.test_head_circumference import _ellipse
from usgen_monai.data.layouts import ellipse_circumference
from usgen_monai.engines.sam_evaluation import HeadCircumferenceError


def _item(pred_axes, label_axes, spacing=(0.5, 0.5)):
    def monai(mask):
        return torch.as_tensor(mask.T[None], dtype=torch.float32)  # (1, W, H), MONAI's order

    return {"pred": monai(_ellipse(axes=pred_axes)), "label": monai(_ellipse(axes=label_axes)),
            "pixel_spacing_mm": torch.tensor(spacing)}  # fmt: skip


def test_mean_and_median_over_items_with_their_spacing():
    items = [_item((66, 44), (60, 40)), _item((60, 40), (60, 40), (0.2, 0.2)), _item((50, 40), (60, 40), (1.0, 1.0))]
    errors = [0.5 * (ellipse_circumference(66, 44) - ellipse_circumference(60, 40)), 0.0,
              ellipse_circumference(60, 40) - ellipse_circumference(50, 40)]  # fmt: skip
    metric = HeadCircumferenceError()
    metric.reset()
    metric.update(items[:2])
    metric.update(items[2:])
    assert metric.compute() == pytest.approx(sum(errors) / 3, rel=0.03)
    assert metric.errors == pytest.approx(errors, rel=0.03, abs=1e-9)
    median = HeadCircumferenceError(reduction="median")
    median.reset()
    median.update(items)
    assert median.compute() == pytest.approx(sorted(errors)[1], rel=0.03)


def test_items_without_a_reference_are_left_out_and_errors_name_keys():
    metric = HeadCircumferenceError(statistic="rel_error")
    metric.reset()
    assert math.isnan(metric.compute())
    empty = _item((60, 40), (60, 40))
    empty["label"] = torch.zeros_like(empty["label"])
    metric.update([empty, _item((60, 40), (60, 40))])
    assert metric.compute() == 0.0 and len(metric.errors) == 1
    with pytest.raises(KeyError, match="'pred' and 'label'"):
        metric.update([{"pred": empty["pred"]}])
    with pytest.raises(ValueError, match="statistic"):
        HeadCircumferenceError(statistic="dice")
