"""What a study finds: does each synthetic arm beat its baseline by the target margin, and if not, which measured
property of the cell's generator explains it and what would change it.

The gains are paired by seed (a synthetic arm and its baseline of one seed share the labelled pairs), so their sd
is that of the per-seed differences. The generator checks use the CSG bundle's realism targets (issue 9 of the
project: C2ST AUC at most 0.80, fine-texture energy ratio 0.85 to 1.15, mask consistency ratio at least 0.90), each
read from the study's own fidelity measurements of the cell generators.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["COMPARISONS", "GENERATOR_LIMITS", "findings", "findings_section"]

# synthetic arm -> the arms without synthetic data it must beat (the best of them, by mean Dice, per anatomy and N)
COMPARISONS: dict[str, tuple[str, ...]] = {
    "mgcc_csg": ("unet", "supervised", "strong_augmentation", "mgcc_real"),
    "sam_csg": ("sam_real",),
}

GENERATOR_LIMITS: dict[str, float] = {
    "c2st_auc_max": 0.80,
    "high_frequency_ratio_min": 0.85,
    "high_frequency_ratio_max": 1.15,
    "mask_consistency_ratio_min": 0.90,
    "mask_consistency_ratio_max": 1.15,
    # below this Dice on real test images the cell's segmenter is too weak for mask consistency to say much
    "mask_consistency_dice_real_min": 0.5,
}


def _dice_by_seed(cells: Sequence[Mapping[str, Any]], anatomy: str, n: int, arm: str) -> dict[int, float]:
    return {
        int(c["seed"]): float(c["dice"])
        for c in cells
        if c["anatomy"] == anatomy and int(c["num_labeled"]) == n and c["arm"] == arm and "dice" in c
    }


def _generator_issues(quality: Mapping[str, Any] | None) -> tuple[list[str], list[str]]:
    """(what is wrong with the generator, what would change it), from one row of ``summarize_quality``."""
    if quality is None:
        return ["its generator was not measured"], ["measure it (the study's fidelity step, arm `csg_quality`)"]
    limits, issues, remedies = GENERATOR_LIMITS, [], []
    ratio = quality.get("mask_consistency_ratio_mean")
    dice_real = quality.get("mask_consistency_dice_real_mean")
    weak = dice_real is not None and dice_real < limits["mask_consistency_dice_real_min"]
    reader = f", read by a weak segmenter: Dice {dice_real:.2f} on real test images" if weak else ""
    if ratio is not None and ratio < limits["mask_consistency_ratio_min"]:
        issues.append(
            f"it does not draw the findings where its masks put them (mask consistency ratio {ratio:.2f}, "
            f"below {limits['mask_consistency_ratio_min']:.2f}{reader}): synthetic pairs with wrong masks"
        )
        remedies.append("a generator that learns the masks (more `--generator-iterations` for its mask branch)")
    elif ratio is not None and ratio > limits["mask_consistency_ratio_max"]:
        issues.append(
            f"it draws the findings more plainly than real ones look (mask consistency ratio {ratio:.2f}{reader}): "
            "synthetic images easier than the real task"
        )
        remedies.append(
            "conditioning on the tissue around the finding as well (multi-class label maps), so that synthetic "
            "images hold the look-alikes real ones have"
        )
    c2st, floor = quality.get("c2st_auc_mean"), quality.get("c2st_real_vs_real_auc_mean")
    if c2st is not None and c2st > limits["c2st_auc_max"]:
        floor_text = f", real vs real {floor:.2f}" if floor is not None else ""
        issues.append(f"its images are told from real ones (C2ST AUC {c2st:.2f}{floor_text})")
        remedies.append(f"a more realistic generator (C2ST AUC at most {limits['c2st_auc_max']:.2f})")
    texture = quality.get("high_frequency_ratio_mean")
    if texture is not None and not limits["high_frequency_ratio_min"] <= texture <= limits["high_frequency_ratio_max"]:
        issues.append(f"its speckle is off ({texture:.2f} of the real fine-texture energy)")
        remedies.append("a stage 1 (autoencoder and refiner) that keeps the speckle of these images")
    return issues, remedies


def findings(
    cells: Sequence[Mapping[str, Any]],
    quality_rows: Sequence[Mapping[str, Any]] = (),
    target_points: float = 5.0,
) -> list[dict[str, Any]]:
    """One finding per (anatomy, N, synthetic arm) that has its baseline: the paired gain in Dice points (mean and
    sd over seeds), whether it meets ``target_points``, and the generator's measured issues and remedies.

    Args:
        cells: the study's cell results (``anatomy``, ``num_labeled``, ``seed``, ``arm``, ``dice``).
        quality_rows: :py:func:`usgen_monai.study.report.summarize_quality` rows.
        target_points: the gain the synthetic arm should reach, in Dice points.
    """
    out = []
    keys = sorted({(c["anatomy"], int(c["num_labeled"])) for c in cells})
    for anatomy, n in keys:
        quality = next((q for q in quality_rows if q["anatomy"] == anatomy and int(q["num_labeled"]) == n), None)
        for arm, baselines in COMPARISONS.items():
            synthetic = _dice_by_seed(cells, anatomy, n, arm)
            candidates = {b: _dice_by_seed(cells, anatomy, n, b) for b in baselines}
            candidates = {b: d for b, d in candidates.items() if set(d) & set(synthetic)}
            if not synthetic or not candidates:
                continue
            baseline = max(candidates, key=lambda b: statistics.fmean(candidates[b].values()))
            seeds = sorted(set(synthetic) & set(candidates[baseline]))
            gains = [100.0 * (synthetic[s] - candidates[baseline][s]) for s in seeds]
            gain = statistics.fmean(gains)
            met = gain >= target_points
            issues, remedies = ([], []) if met else _generator_issues(quality)
            out.append(
                {
                    "anatomy": anatomy,
                    "num_labeled": n,
                    "arm": arm,
                    "baseline": baseline,
                    "seeds": seeds,
                    "gain_points_mean": gain,
                    "gain_points_sd": statistics.stdev(gains) if len(gains) > 1 else None,
                    "target_points": target_points,
                    "met": met,
                    "generator_issues": issues,
                    "remedies": remedies,
                }
            )
    return out


def findings_section(found: Sequence[Mapping[str, Any]]) -> list[str]:
    """Markdown lines of the report's "What the study finds" section (empty without findings)."""
    if not found:
        return []
    target = found[0]["target_points"]
    met = sum(f["met"] for f in found)
    lines = [
        "## What the study finds",
        "",
        (
            f"Synthetic data reaches the target (+{target:g} Dice points over the best arm without it, paired by "
            f"seed) in {met} of {len(found)} comparisons."
        ),
        "",
        "| anatomy | labelled pairs | synthetic arm | against | gain (Dice points) | seeds | target met |",
        "|---|---|---|---|---|---|---|",
    ]
    for f in found:
        sd = f" ± {f['gain_points_sd']:.1f}" if f["gain_points_sd"] is not None else ""
        lines.append(
            f"| {f['anatomy']} | {f['num_labeled']} | `{f['arm']}` | `{f['baseline']}` | "
            f"{f['gain_points_mean']:+.1f}{sd} | {len(f['seeds'])} | {'yes' if f['met'] else 'no'} |"
        )
    lines.append("")
    missed = [f for f in found if not f["met"]]
    if missed:
        lines += ["Why not, from the fidelity of the cells' generators (see \"Generator fidelity\"):", ""]
        by_cell: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
        for f in missed:
            by_cell.setdefault((f["anatomy"], f["num_labeled"]), []).append(f)
        for (anatomy, n), group in by_cell.items():
            arms = ", ".join(f"`{f['arm']}`" for f in group)
            issues = group[0]["generator_issues"]
            reason = "; ".join(issues) if issues else (
                "the generator passes the fidelity checks; the gap lies in what they do not measure (the tissue "
                "around the finding, the number and variety of synthetic pairs) or in the segmenters' budget"
            )
            lines.append(f"- {anatomy}, N = {n} ({arms}): {reason}.")
            if group[0]["remedies"]:
                lines.append(f"  What would change it: {'; '.join(group[0]['remedies'])}.")
        lines.append("")
    return lines
