"""The study's findings: gains paired by seed against the best arm without synthetic data, the target, and the
generator measurements that explain a miss."""

from __future__ import annotations

import pytest

from usgen_monai.study.findings import findings, findings_section


def _cells(anatomy, n, dice_by_arm):
    return [
        {"anatomy": anatomy, "num_labeled": n, "seed": seed, "arm": arm, "dice": d}
        for arm, values in dice_by_arm.items()
        for seed, d in enumerate(values)
    ]


def test_gains_are_paired_by_seed_against_the_best_baseline():
    cells = _cells("breast", 8, {
        "supervised": [0.50, 0.60], "strong_augmentation": [0.55, 0.62], "mgcc_csg": [0.62, 0.66],
        "sam_real": [0.70, 0.80], "sam_csg": [0.71, 0.79],
    })  # fmt: skip
    found = {f["arm"]: f for f in findings(cells)}
    mgcc = found["mgcc_csg"]
    assert mgcc["baseline"] == "strong_augmentation" and mgcc["seeds"] == [0, 1]
    assert mgcc["gain_points_mean"] == pytest.approx(5.5) and mgcc["gain_points_sd"] == pytest.approx(2.1213, abs=1e-3)
    assert mgcc["met"] and not mgcc["generator_issues"]
    sam = found["sam_csg"]
    assert sam["baseline"] == "sam_real" and sam["gain_points_mean"] == pytest.approx(0.0, abs=1e-9) and not sam["met"]


def test_a_miss_is_explained_by_the_generator_measurements():
    cells = _cells("fetal_head", 16, {"sam_real": [0.80, 0.82], "sam_csg": [0.78, 0.80]})
    quality = [{
        "anatomy": "fetal_head", "num_labeled": 16, "c2st_auc_mean": 0.99, "c2st_real_vs_real_auc_mean": 0.47,
        "high_frequency_ratio_mean": 0.55, "mask_consistency_ratio_mean": 0.40, "mask_consistency_dice_real_mean": 0.85,
    }]  # fmt: skip
    (miss,) = findings(cells, quality)
    assert not miss["met"] and miss["gain_points_mean"] == pytest.approx(-2.0)
    text = " ".join(miss["generator_issues"])
    assert "mask consistency ratio 0.40" in text and "C2ST AUC 0.99" in text and "0.55 of the real" in text
    assert len(miss["remedies"]) == 3
    lines = "\n".join(findings_section([miss]))
    assert "in 0 of 1 comparisons" in lines and "| fetal_head | 16 | `sam_csg` | `sam_real` | -2.0 ± 0.0 | 2 | no |" in lines
    assert "What would change it" in lines
    # a generator that passes every check: the report says the gap lies elsewhere
    good = [{**quality[0], "c2st_auc_mean": 0.6, "high_frequency_ratio_mean": 1.0, "mask_consistency_ratio_mean": 1.0}]
    weak = [{**quality[0], "mask_consistency_dice_real_mean": 0.3}]
    assert "weak segmenter: Dice 0.30" in findings(cells, weak)[0]["generator_issues"][0]
    (passing,) = findings(cells, good)
    assert passing["generator_issues"] == [] and "passes the fidelity checks" in "\n".join(findings_section([passing]))


def test_no_comparison_without_both_arms():
    assert findings(_cells("breast", 8, {"supervised": [0.5], "sam_real": [0.6]})) == []
    assert findings_section([]) == []
