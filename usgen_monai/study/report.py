"""The study's report: ``results.json`` (every cell and the summary) and ``report.md`` with tables and PNG figures."""

from __future__ import annotations

import json
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from usgen_monai.study.findings import findings, findings_section
from usgen_monai.utils import write_json_atomic, write_text_atomic

__all__ = [
    "context_control", "context_sweep_grid", "plot_dice_against_labeled", "plot_generator_speed", "sample_grid",
    "summarize", "summarize_quality", "write_report",
]  # fmt: skip


def summarize(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation of the Dice over seeds, per anatomy, arm and labelled-set size (failed
    cells left out and counted)."""
    groups: dict[tuple[str, str, int], list[Mapping[str, Any]]] = {}
    for result in results:
        groups.setdefault((result["anatomy"], result["arm"], int(result["num_labeled"])), []).append(result)
    rows = []
    for (anatomy, arm, num_labeled), cells in sorted(groups.items()):
        dice = [float(c["dice"]) for c in cells if "dice" in c]
        hc = [float(c["hc_abs_error_mm"]) for c in cells if c.get("hc_abs_error_mm") is not None]
        rows.append(
            {
                "anatomy": anatomy,
                "arm": arm,
                "num_labeled": num_labeled,
                "dice_mean": statistics.fmean(dice) if dice else None,
                "dice_sd": statistics.stdev(dice) if len(dice) > 1 else None,
                "num_seeds": len(dice),
                "num_failed": len(cells) - len(dice),
                "iterations": sorted({int(c["iterations"]) for c in cells if "iterations" in c}),
                "hc_abs_error_mm_mean": statistics.fmean(hc) if hc else None,
                "hc_abs_error_mm_sd": statistics.stdev(hc) if len(hc) > 1 else None,
            }
        )
    return rows


QUALITY_KEYS = (
    "c2st_auc",
    "c2st_real_vs_real_auc",
    "high_frequency_ratio",
    "mask_consistency_dice_generated",
    "mask_consistency_dice_real",
    "mask_consistency_ratio",
)


def summarize_quality(qualities: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation over seeds of each generator-fidelity measurement, per anatomy and N."""
    groups: dict[tuple[str, int], list[Mapping[str, Any]]] = {}
    for q in qualities:
        if "error" not in q:
            groups.setdefault((q["anatomy"], int(q["num_labeled"])), []).append(q)
    rows = []
    for (anatomy, num_labeled), cells in sorted(groups.items()):
        row: dict[str, Any] = {"anatomy": anatomy, "num_labeled": num_labeled, "num_seeds": len(cells)}
        for key in QUALITY_KEYS:
            values = [float(c[key]) for c in cells if c.get(key) is not None]
            row[f"{key}_mean"] = statistics.fmean(values) if values else None
            row[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        rows.append(row)
    return rows


def _mean_sd(row: Mapping[str, Any], key: str) -> str:
    mean, sd = row.get(f"{key}_mean"), row.get(f"{key}_sd")
    if mean is None:
        return "n/a"
    return f"{mean:.3f}" + (f" ± {sd:.3f}" if sd is not None else "")


def plot_generator_speed(throughput: Mapping[str, Mapping[str, float]], path: str | Path) -> Path | None:
    """Pairs per second against sampling steps, one line per resolution and thread count, from the CSG sampling
    benchmark's ``throughput`` (keys ``latent_<side>_steps<k>_pairs_per_s``) as a PNG; ``None`` if it has none."""
    import re

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines: dict[str, list[tuple[int, float]]] = {}
    for threads, values in throughput.items():
        for key, value in values.items():
            match = re.fullmatch(r"latent_(\d+)_steps(\d+)_pairs_per_s", key)
            if match:
                label = f"{match[1]} x {match[1]}, {threads.replace('threads_', '')} thread(s)"
                lines.setdefault(label, []).append((int(match[2]), float(value)))
    if not lines:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    for label, points in sorted(lines.items()):
        points.sort()
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    steps = sorted({p[0] for points in lines.values() for p in points})
    ax.set_xticks(steps, [str(k) for k in steps])
    ax.minorticks_off()
    ax.set_xlabel("sampling steps")
    ax.set_ylabel("pairs per second")
    ax.set_title("CSG generator speed (CPU)")
    ax.grid(alpha=0.3, which="both")
    return _save_figure(fig, ax, path)


def _grey(path: str | Path, side: int | None = None, resample: str = "bilinear") -> Any:
    """A PNG/JPEG as grey ``[0, 1]`` floats, resized to ``side`` x ``side`` when given."""
    import numpy as np
    from PIL import Image

    from usgen_monai.data import pil_to_grey

    with Image.open(path) as im:
        grey = pil_to_grey(im)
        if side is not None:
            grey = grey.resize((side, side), Image.NEAREST if resample == "nearest" else Image.BILINEAR)
        return np.asarray(grey, dtype=np.float32) / 255.0


def _mask(path: str | Path, side: int | None = None) -> Any:
    """A mask file as booleans (``> 0``), resized by nearest neighbour."""
    return _grey(path, side, resample="nearest") > 0


def context_control(datalist: str | Path) -> dict[str, Any]:
    """How much a CSG datalist's context images steer its generated images: the pairs grouped by the mask that
    conditioned them (``provenance.mask_source.path``), and the Pearson correlation over all pairs between the mean
    brightness of each pair's context image (``provenance.context_image.path``) and of its generated image.

    Returns:
        ``{"brightness_correlation": r or None, "num_pairs": n, "by_mask": {mask path: [(context path, image
        path), ...]}}``; pairs without a recorded mask file or context image are left out.
    """
    import numpy as np

    document = json.loads(Path(datalist).read_text(encoding="utf-8"))
    base = Path(datalist).parent
    by_mask: dict[str, list[tuple[str, str]]] = {}
    for item in document.get("training", []):
        provenance = item.get("provenance") or {}
        mask = (provenance.get("mask_source") or {}).get("path")
        context = (provenance.get("context_image") or {}).get("path")
        if mask and context:
            by_mask.setdefault(mask, []).append((context, str(base / item["image"])))
    pairs = [pair for group in by_mask.values() for pair in group]
    r = None
    if len(pairs) >= 3:
        bank = {c: float(_grey(c).mean()) for c in {c for c, _ in pairs}}  # contexts repeat: read each once
        context_means = np.array([bank[c] for c, _ in pairs])
        image_means = np.array([_grey(i).mean() for _, i in pairs])
        if context_means.std() > 0 and image_means.std() > 0:
            r = float(np.corrcoef(context_means, image_means)[0, 1])
    return {"brightness_correlation": r, "num_pairs": len(pairs), "by_mask": by_mask}


def context_sweep_grid(by_mask: Mapping[str, Sequence[tuple[str, str]]], path: str | Path, rows: int = 3,
                       per_row: int = 3, side: int = 96) -> Path | None:  # fmt: skip
    """A PNG of context sweeps: one row per conditioning mask (masks with a finding first, then those used with the
    most distinct contexts), the mask then (context image, generated image) for each context; ``None`` when no mask
    was used with two contexts."""
    import numpy as np

    from usgen_monai.visualize import image_grid, overlay_mask_outline, save_png

    swept = [(m, pairs) for m, pairs in by_mask.items() if len({c for c, _ in pairs}) > 1]
    # masks with the finding first, then those seen with the most contexts
    ranked = sorted(swept, key=lambda kv: (not _mask(kv[0]).any(), -len({c for c, _ in kv[1]})))[:rows]
    if not ranked:
        return None
    tiles = []
    for mask_path, pairs in ranked:
        mask = _mask(mask_path, side)
        row = [overlay_mask_outline(np.zeros((side, side), np.float32), mask)]
        seen: set[str] = set()
        for context, image in pairs:
            if context in seen:
                continue
            seen.add(context)
            row += [overlay_mask_outline(_grey(context, side), np.zeros((side, side), bool)),
                    overlay_mask_outline(_grey(image, side), mask)]  # fmt: skip
            if len(seen) == per_row:
                break
        tiles.append(row)
    width = max(len(r) for r in tiles)
    blank = np.full((side, side, 3), 255, np.uint8)
    tiles = [r + [blank] * (width - len(r)) for r in tiles]
    titles = ["mask"] + [t for k in range(per_row) for t in (f"context {k + 1}", f"generated {k + 1}")]
    save_png(image_grid(tiles, col_titles=titles[:width]), str(path))
    return Path(path)


def _context_section(out: Path, generators: Sequence[Mapping[str, Any]], anatomies: Sequence[str]) -> list[str]:
    lines: list[str] = []
    for anatomy in anatomies:
        found = [g for g in generators if g["anatomy"] == anatomy and "error" not in g and g.get("datalist")]
        measured = []
        figure = None
        for g in found:
            try:
                control = context_control(g["datalist"])
            except (OSError, KeyError, ValueError):
                continue
            if control["brightness_correlation"] is not None:
                measured.append(control["brightness_correlation"])
            if figure is None:
                figure = context_sweep_grid(control["by_mask"], out / f"context_{anatomy}.png")
        if not measured and figure is None:
            continue
        if not lines:
            lines += ["## Context control", ""]
        if measured:
            sd = f" ± {statistics.stdev(measured):.2f}" if len(measured) > 1 else ""
            lines += [
                f"{anatomy}: correlation between the mean brightness of each pair's context image and of its generated "
                f"image, r = {statistics.fmean(measured):.2f}{sd} (mean ± sd over {len(measured)} generators; "
                "about 0 means the context image does not steer the appearance).",
                "",
            ]
        if figure is not None:
            lines += [f"![{anatomy}: one mask under different context images]({figure.name})", ""]
    return lines


def _speed_section(
    out: Path, generators: Sequence[Mapping[str, Any]], benchmark: str | Path | None
) -> list[str]:
    lines = ["## Generator speed", ""]
    timed = [g for g in generators if "error" not in g and g.get("generate_seconds")]
    if timed:
        per_pair = [float(g["generate_seconds"]) / max(1, int(g["num_synthetic"])) for g in timed]
        sides = sorted({int(g["image_size"]) for g in timed if g.get("image_size")})
        size = f"{' or '.join(f'{side} x {side}' for side in sides)}, " if sides else ""
        lines += [
            f"In this study: {statistics.fmean(per_pair):.2f} s per generated pair (mean over {len(timed)} "
            f"generators, {size}the CSG inference config's default sampler, one bundle run per generator "
            "including model loading and writing).",
            "",
        ]
    document = None
    if benchmark is not None and Path(benchmark).is_file():
        try:
            document = json.loads(Path(benchmark).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            document = None
    if document and document.get("throughput"):
        figure = plot_generator_speed(document["throughput"], out / "generator_speed.png")
        lines += [
            f"Against steps and resolution, from the CSG bundle's sampling benchmark (`{Path(benchmark).name}`, "
            f"machine: {document.get('machine', 'not recorded')}; `python benchmarks/csg_sampling.py --threads 1 2 "
            "--out benchmarks/results/csg_sampling.json`):",
            "",
        ]
        if figure is not None:
            lines += [f"![generator speed]({figure.name})", ""]
    elif not timed:
        return []
    return lines


def _format(row: Mapping[str, Any]) -> str:
    if row["dice_mean"] is None:
        return f"failed ({row['num_failed']})"
    sd = f" ± {row['dice_sd']:.3f}" if row["dice_sd"] is not None else ""
    failed = f", {row['num_failed']} failed" if row["num_failed"] else ""
    return f"{row['dice_mean']:.3f}{sd} ({row['num_seeds']}{failed})"


def _save_figure(fig: Any, ax: Any, path: str | Path) -> Path:
    """Legend, layout, an atomic PNG write, and the figure closed."""
    import matplotlib.pyplot as plt

    from usgen_monai.utils import atomic_write

    ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    with atomic_write(path) as tmp:
        fig.savefig(tmp)
    plt.close(fig)
    return path


def plot_dice_against_labeled(rows: Sequence[Mapping[str, Any]], anatomy: str, path: str | Path) -> Path:
    """Dice (mean ± sd over seeds) against the number of labelled pairs, one line per arm, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.8), dpi=120)
    arms = sorted({r["arm"] for r in rows if r["anatomy"] == anatomy})
    for k, arm in enumerate(arms):
        points = sorted(
            (r["num_labeled"], r["dice_mean"], r["dice_sd"] or 0.0)
            for r in rows
            if r["anatomy"] == anatomy and r["arm"] == arm and r["dice_mean"] is not None
        )
        if not points:
            continue
        offset = 1.0 + 0.015 * (k - (len(arms) - 1) / 2)  # keep error bars of arms apart
        ax.errorbar(
            [p[0] * offset for p in points], [p[1] for p in points], yerr=[p[2] for p in points], marker="o",
            capsize=3, label=arm,
        )
    ax.set_xscale("log", base=2)
    sizes = sorted({r["num_labeled"] for r in rows if r["anatomy"] == anatomy})
    ax.set_xticks(sizes, [str(s) for s in sizes])
    ax.set_xlabel("labelled pairs")
    ax.set_ylabel("test Dice (mean ± sd over seeds)")
    ax.set_title(anatomy)
    ax.grid(alpha=0.3)
    return _save_figure(fig, ax, path)


def _tile(image_path: str | Path, label_path: str | Path, side: int) -> Any:
    from usgen_monai.visualize import overlay_mask_outline

    return overlay_mask_outline(_grey(image_path, side), _mask(label_path, side))


def sample_grid(
    real: Sequence[Mapping[str, Any]], generated: Sequence[Mapping[str, Any]], path: str | Path, columns: int = 6,
    side: int = 128,
) -> Path:
    """A PNG of real pairs (top row) and generated pairs (bottom row), masks outlined; items are datalist entries
    with ``image`` and ``label`` paths."""
    from usgen_monai.visualize import image_grid, save_png

    rows = [[_tile(i["image"], i["label"], side) for i in items[:columns]] for items in (real, generated)]
    titles = ["real", "generated"]
    kept = [(r, t) for r, t in zip(rows, titles) if r]
    save_png(image_grid([r for r, _ in kept], row_titles=[t for _, t in kept]), str(path))
    return Path(path)


def _sam_start(settings: Mapping[str, Any]) -> str:
    architecture = settings.get("sam_architecture", "small")
    share = f" `sam_csg` draws {settings.get('sam_synthetic_fraction', 0.5):.0%} of each batch from synthetic pairs."
    return _sam_network(settings, architecture) + share


def _sam_network(settings: Mapping[str, Any], architecture: str) -> str:
    if settings.get("sam_checkpoint"):
        full = settings.get("sam_train_mode") == "full"
        trained = "all of it trained" if full else "its mask decoder trained, image and prompt encoders frozen"
        return (
            f"SAM is the `{architecture}` configuration fine-tuned from `{Path(settings['sam_checkpoint']).name}` "
            f"({trained}; that checkpoint saw none of these data)."
        )
    return f"SAM is the `{architecture}` configuration trained from scratch (no published checkpoint)."


def write_report(
    out: str | Path,
    results: Sequence[Mapping[str, Any]],
    settings: Mapping[str, Any],
    split: Mapping[str, Any],
    arm_descriptions: Mapping[str, str],
    generators: Sequence[Mapping[str, Any]] = (),
    command: str = "",
    machine: str = "",
    qualities: Sequence[Mapping[str, Any]] = (),
    runs: Sequence[Mapping[str, Any]] = (),
    speed_benchmark: str | Path | None = None,
) -> dict[str, Any]:
    """Write ``out/results.json``, one figure per anatomy and ``out/report.md``; returns the results document."""
    out = Path(out)
    rows = summarize(results)
    anatomies = sorted({r["anatomy"] for r in rows})
    figures = {a: plot_dice_against_labeled(rows, a, out / f"dice_{a}.png").name for a in anatomies}
    failures = [r for r in [*results, *generators, *qualities] if "error" in r]
    document = {
        "command": command,
        "machine": machine,
        "settings": dict(settings),
        "split": dict(split),
        "summary": rows,
        "cells": list(results),
        "generators": list(generators),
        "generator_quality": list(qualities),
        "runs": list(runs),
        "quality_summary": summarize_quality(qualities),
        "failures": failures,
    }
    document["findings"] = findings(results, document["quality_summary"])
    write_json_atomic(out / "results.json", document)

    lines = ["# Does synthetic data help? Study report", ""]
    if command:
        lines += ["Command:", "", f"    {command}", ""]
    if machine:
        lines += [f"Machine: {machine}", ""]
    if runs:
        lines += ["Runs of this study (a run reads back what earlier runs finished):", ""]
        lines += [
            f"- {r['started']}: {r['wall_seconds'] / 60:.1f} min wall, {r['results_computed']} result(s) computed"
            for r in runs
        ]
        lines.append("")
    budget = (
        f"every arm of a cell trains for {settings['segmenter_iterations']} batches of 4 (MGCC arms at "
        f"{settings['image_size']} x {settings['image_size']}, those with a consistency term with 4 unlabelled images "
        "besides each labelled batch; "
        f"SAM arms at the `{settings.get('sam_architecture', 'small')}` SAM configuration's input size, half of "
        "each batch synthetic in `sam_csg`); "
        f"generators: {settings['generator_iterations']} ControlNet iterations, {settings['num_synthetic']} pairs"
    )
    lines += [
        "## Protocol",
        "",
        f"- Data: {', '.join(f'{a}: {split[a]}' for a in sorted(split))}.",
        "- The test set of each anatomy is held out from everything (generators, context banks, segmenters). "
        "Validation (model selection) uses the cell's own labelled pairs only.",
        "- Which data trained which model: each segmenter sees its cell's N labelled pairs; `mgcc_real` also the "
        "images (no masks) of the unlabelled pool; `mgcc_csg` the images its cell's generator wrote, `sam_csg` its "
        f"pairs. {_sam_start(settings)} Each cell's "
        "generator learns its mask branch (a new ControlNet) from that cell's N pairs alone, its masks are those N "
        "masks and its context bank those N images; it keeps the CSG bundle's shipped autoencoder, base denoiser "
        "and speckle refiner, which were trained on simulator images of all presets (not on the test images).",
        f"- Budget: {budget}.",
        "- Dice: mean over the test images with a foreground (MONAI `MeanDice`, empty ground truth ignored), on "
        "each image's own grid; table entries are mean ± sd over seeds (number of seeds).",
        "",
        "Arms: " + "; ".join(f"`{name}`: {text}" for name, text in arm_descriptions.items()) + ".",
        "",
    ]
    for anatomy in anatomies:
        arms = [a for a in arm_descriptions if any(r["arm"] == a and r["anatomy"] == anatomy for r in rows)]
        sizes = sorted({r["num_labeled"] for r in rows if r["anatomy"] == anatomy})
        lines += [f"## {anatomy}", "", "| labelled pairs | " + " | ".join(arms) + " |", "|---" * (len(arms) + 1) + "|"]
        for n in sizes:
            cells = []
            for arm in arms:
                row = next((r for r in rows if r["anatomy"] == anatomy and r["arm"] == arm and r["num_labeled"] == n), None)
                cells.append(_format(row) if row else "")
            lines.append(f"| {n} | " + " | ".join(cells) + " |")
        lines += ["", f"![Dice against labelled pairs, {anatomy}]({figures[anatomy]})", ""]
        hc_rows = sorted(
            (r for r in rows if r["anatomy"] == anatomy and r["hc_abs_error_mm_mean"] is not None),
            key=lambda r: (r["num_labeled"], r["arm"]),
        )
        if hc_rows:
            lines += [
                "Head-circumference error (ellipse fitted to the mask, as HC18 measures it), mean absolute mm, "
                "mean ± sd over seeds:",
                "",
                "| labelled pairs | arm | HC error (mm) |",
                "|---|---|---|",
            ]
            for r in hc_rows:
                sd = f" ± {r['hc_abs_error_mm_sd']:.1f}" if r["hc_abs_error_mm_sd"] is not None else ""
                lines.append(f"| {r['num_labeled']} | {r['arm']} | {r['hc_abs_error_mm_mean']:.1f}{sd} |")
            lines.append("")
        # one computation of the gains: the findings' (paired by seed), here per anatomy
        synthetic_arms = {
            "mgcc_csg": "Synthetic unlabelled images (`mgcc_csg`)",
            "sam_csg": "Synthetic pairs for SAM (`sam_csg`)",
        }
        for arm, label in synthetic_arms.items():
            found = [f for f in document["findings"] if f["anatomy"] == anatomy and f["arm"] == arm]
            if found:
                gains = ", ".join(
                    f"N = {f['num_labeled']}: {f['gain_points_mean']:+.1f} (`{f['baseline']}`)" for f in found
                )
                lines += [f"{label} against the best arm without synthetic data, Dice points: {gains}.", ""]
    if generators:
        lines += [
            "## Generators",
            "",
            "Each cell's generator, the data it was trained on and its time; sample grids show the cell's real pairs "
            "above the pairs it generated (masks outlined).",
            "",
            "| cell | trained on | train s | generate s |",
            "|---|---|---|---|",
        ]
        for g in generators:
            name = f"{g['anatomy']} N={g['num_labeled']} seed {g['seed']}"
            if "error" in g:
                lines.append(f"| {name} | failed: {g['error'].splitlines()[0]} | | |")
            else:
                lines.append(f"| {name} | {g['trained_on']} | {g['train_seconds']} | {g['generate_seconds']} |")
        lines.append("")
        for anatomy in anatomies:
            first = next((g for g in generators if g["anatomy"] == anatomy and "error" not in g), None)
            if first is None:
                continue
            grid = out / f"samples_{anatomy}.png"
            try:
                real = json.loads(Path(first["labeled"]).read_text(encoding="utf-8"))["training"]
                generated = json.loads(Path(first["datalist"]).read_text(encoding="utf-8"))["training"]
                base = Path(first["datalist"]).parent
                generated = [{k: str(base / v) for k, v in i.items() if k in ("image", "label")} for i in generated]
                sample_grid(real, generated, grid)
            except (OSError, KeyError, ValueError) as e:
                lines += [f"(sample grid of {anatomy} not drawn: {e})", ""]
                continue
            lines += [
                f"![{anatomy}: real pairs (top) and generated pairs (bottom), N={first['num_labeled']} seed "
                f"{first['seed']}]({grid.name})",
                "",
            ]
    lines += _context_section(out, generators, anatomies)
    quality_rows = document["quality_summary"]
    if quality_rows:
        lines += [
            "## Generator fidelity",
            "",
            "Per cell generator, mean ± sd over seeds. C2ST: ROC AUC of a small CNN "
            "(`usgen_monai.metrics.classifier_two_sample_test`, held-out folds) separating the generator's images "
            "from real images of the unlabelled pool (0.5: indistinguishable; the real-vs-real column is the same "
            "test between two halves of that pool, its noise floor). Texture: fine-texture (speckle) energy "
            "generated / real (`high_frequency_energy`). Mask consistency: Dice of the cell's own `supervised` "
            "segmenter on the generated images that contain the finding, against the masks that conditioned them, "
            "and on the real test images; the ratio is the first over the second (1: the generated findings are as "
            "recognisable as real ones).",
            "",
            "| anatomy | labelled pairs | C2ST AUC | real vs real | texture ratio | Dice generated | Dice real | ratio |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in quality_rows:
            lines.append(
                f"| {r['anatomy']} | {r['num_labeled']} | {_mean_sd(r, 'c2st_auc')} | "
                f"{_mean_sd(r, 'c2st_real_vs_real_auc')} | {_mean_sd(r, 'high_frequency_ratio')} | "
                f"{_mean_sd(r, 'mask_consistency_dice_generated')} | {_mean_sd(r, 'mask_consistency_dice_real')} | "
                f"{_mean_sd(r, 'mask_consistency_ratio')} |"
            )
        lines.append("")
    lines += findings_section(document["findings"])
    lines += _speed_section(out, generators, speed_benchmark)
    if failures:
        lines += ["## Failed cells", ""]
        lines += [
            f"- {f['anatomy']} N={f['num_labeled']} seed {f['seed']} {f['arm']}: {f['error'].splitlines()[0]}"
            for f in failures
        ]
        lines.append("")
    write_text_atomic(out / "report.md", "\n".join(lines))
    return document
