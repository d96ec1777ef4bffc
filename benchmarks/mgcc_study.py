"""The MGCC bundle's study: does MGCC gain from unlabelled images, real or CSG synthetic, at 8, 16 and 32 labelled
images? On the simulator's ``breast`` preset (the bundle's demo task), 3 seeds, through the package's study
(``usgen_monai.study``: test set held out from everything, each cell's CSG generator trained on that cell's labelled
pairs alone), four arms with the same budget (200 labelled batches of 4, 64 x 64 input, Adam 3e-3 as the quick
study):

* ``unet``: a plain MONAI ``UNet``, supervised (the bundle's ``unet_baseline.json``);
* ``supervised``: ``MGCCNet``, supervised only (no unlabelled batch is drawn);
* ``mgcc_real``: MGCC with the real unlabelled pool (48 images, no masks);
* ``mgcc_csg``: MGCC with the images the cell's generator wrote (32) as the unlabelled set.

The arms are added to the breast study of ``sam_study.py`` (``WORK/study_breast``, its settings), so they share its
split and its per-cell generators (its finished cells are read back, not rerun; run ``sam_study.py`` first, for its
foundation SAM); each benchmark reads its own arms' cells from that folder. Writes the results to ``--out``, the
figure (Dice against labelled images) to ``--figure`` and prints the docs' table; resumes when rerun.

    OMP_NUM_THREADS=1 python benchmarks/mgcc_study.py --work runs/sam_study \\
        --out benchmarks/results/mgcc_study.json --figure bundles/mgcc/docs/figures/mgcc_study.png
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# a script's own folder is on sys.path[0]: the breast study this one adds its arms to
import sam_study

REPO = Path(__file__).resolve().parents[1]
ARMS = ("unet", "supervised", "mgcc_real", "mgcc_csg")


def study(work: Path, workers: int) -> Path:
    """The breast study of ``sam_study.py`` with the MGCC arms added (its SAM cells are read back, not rerun)."""
    # the sizes (a later flag wins over the SAM study's 4,8,16,32); the SAM cells of those sizes are read back
    return sam_study.study(
        work, "breast", workers, ARMS, "--image-size", "64", "--segmenter-learning-rate", "0.003",
        "--labeled-sizes", "8,16,32",
    )  # fmt: skip


def collect(study_dir: Path) -> dict:
    from usgen_monai.study.report import summarize_quality

    results = json.loads((study_dir / "results.json").read_text(encoding="utf-8"))
    cells = [c for arm in ARMS for c in sam_study.cell_results(study_dir, arm)]
    finished = [c for c in cells if "dice" in c]
    rows = []
    for n in sorted({c["num_labeled"] for c in finished}):
        row: dict = {"num_labeled": n}
        for arm in ARMS:
            by_seed = {c["seed"]: c["dice"] for c in finished if c["num_labeled"] == n and c["arm"] == arm}
            row[f"{arm}_dice"] = dict(sorted(by_seed.items()))
            row[f"{arm}_dice_mean"], row[f"{arm}_dice_sd"] = sam_study.mean_sd(list(by_seed.values()))
            seconds = [c["train_seconds"] for c in finished if c["num_labeled"] == n and c["arm"] == arm]
            row[f"{arm}_train_seconds_mean"] = sam_study.mean_sd(seconds)[0]
        for arm in ("mgcc_real", "mgcc_csg"):  # paired by seed against the same-budget supervised MGCCNet
            seeds = sorted(set(row[f"{arm}_dice"]) & set(row["supervised_dice"]))
            gains = [row[f"{arm}_dice"][s] - row["supervised_dice"][s] for s in seeds]
            row[f"{arm}_gain_mean"], row[f"{arm}_gain_sd"] = sam_study.mean_sd(gains)
        rows.append(row)
    settings = {k: v for k, v in results["settings"].items() if not k.startswith("sam_") and k != "arms"}
    return {
        "settings": {**settings, "arms": list(ARMS)},
        "rows": rows,
        "generator_quality": summarize_quality(sam_study.cell_results(study_dir, "csg_quality")),
        "failed_cells": [c for c in cells if "dice" not in c],
    }


def markdown_table(document: dict) -> str:
    """The docs' table: test Dice mean ± sd over seeds per arm, and the MGCC arms' paired gain over ``supervised``."""
    lines = ["| labelled images | " + " | ".join(f"`{a}`" for a in ARMS) + " | `mgcc_real` gain | `mgcc_csg` gain |",
             "| --- " * (len(ARMS) + 3) + "|"]  # fmt: skip
    for r in document["rows"]:
        cells = [sam_study.mean_sd_text(r[f"{a}_dice_mean"], r[f"{a}_dice_sd"]) for a in ARMS]
        gains = [
            "-" if r[f"{a}_gain_mean"] is None else f"{100 * r[f'{a}_gain_mean']:+.1f} ± {100 * r[f'{a}_gain_sd']:.1f}"
            for a in ("mgcc_real", "mgcc_csg")
        ]
        lines.append(f"| {r['num_labeled']} | " + " | ".join(cells + gains) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/sam_study"))
    parser.add_argument("--steps", default="study,results")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "mgcc_study.json")
    figure = REPO / "bundles" / "mgcc" / "docs" / "figures" / "mgcc_study.png"
    parser.add_argument("--figure", type=Path, default=figure)
    args = parser.parse_args()
    steps = args.steps.split(",")
    if "study" in steps:
        study(args.work, args.workers)
    if "results" in steps:
        document = collect(args.work / "study_breast")
        document["command"] = " ".join(["python", "benchmarks/mgcc_study.py", *sys.argv[1:]])
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(document, indent=1), encoding="utf-8")
        from usgen_monai.study.report import plot_dice_against_labeled, summarize

        args.figure.parent.mkdir(parents=True, exist_ok=True)
        cells = [c for arm in ARMS for c in sam_study.cell_results(args.work / "study_breast", arm)]
        plot_dice_against_labeled(summarize([c for c in cells if c["num_labeled"] >= 8]), "breast", args.figure)
        print(markdown_table(document))


if __name__ == "__main__":
    main()
