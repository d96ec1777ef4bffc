"""The SAM bundle's study: real-only against real + CSG synthetic fine-tuning, for 4, 8, 16 and 32 real pairs.

The question of arXiv:2506.23664 (fetal head): does a pretrained SAM fine-tuned on a few real pairs get better when
mask-guided synthetic pairs are added? Here on the simulator's ``fetal_head`` and ``breast`` presets, box prompts,
the bundle's ``small`` configuration, 3 seeds per cell, through the package's study (``usgen_monai.study``: test set
held out from everything, each cell's CSG generator trained on that cell's real pairs alone).

The published SAM checkpoints are pretrained on SA-1B (natural images, not the target). Offline there is none, and
the small configuration trained from scratch on 4-32 pairs learns little, so this study makes its own stand-in:

1. **foundation** (per target anatomy): the small SAM trained from scratch on every tissue class of the *other two*
   presets (one item per image and class: "segment anything" in that image, box prompts), so it has never seen the
   target anatomy, like SAM has never seen the fetal head; ``WORK/foundation_<anatomy>/model.pt``.
2. **study**: ``usgen-monai study --arms sam_real,sam_csg --labeled-sizes 4,8,16,32 --seeds 0,1,2 --sam-checkpoint``
   with that foundation (mask decoder fine-tuned, encoders frozen, as the paper), ``WORK/study_<anatomy>``.
3. **results**: the table (mean +- sd of Dice and, for the fetal head, head-circumference error) to ``--out`` and
   the figures (Dice against real pairs, ``<--figure stem>_<anatomy>.png``).

``--variant target`` runs the issue's target cell instead (16 real pairs, in ``WORK/study_target_<anatomy>``) with the
paper's recipe where the study economises: many synthetic pairs per generator (256, not 32), the whole network
fine-tuned (not only the mask decoder) for 1200 batches (not 200), synthetic pairs a quarter of each batch (not half),
the same split and generator training (the docs' run: ``--foundation_iterations 4800``); results to
``benchmarks/results/sam_study_target.json`` (no figure: one N). Both record the SAM bundle's version and its
training augmentation (``train.json``), part of the fine-tuning recipe.

Every step keeps its output and resumes when rerun (the bundle's rolling checkpoints, the study's finished cells).

    OMP_NUM_THREADS=1 python benchmarks/sam_study.py --work runs/sam_study \\
        --out benchmarks/results/sam_study.json --figure bundles/sam/docs/figures/sam_study.png
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
SAM = REPO / "bundles" / "sam"
PRESETS = ("breast", "fetal_head", "msk")
SIZE = 128  # the CSG bundle's trained size, so real and generated images share a grid
MIN_OBJECT_PIXELS = 48


def _simulate(preset: str, out: Path, num: int, seed: int) -> Path:
    if not (out / "datalist.json").is_file():
        subprocess.run(
            [sys.executable, "-m", "usgen_monai", "simulate", "--preset", preset, "--num", str(num), "--layout",
             "monai", "--size", str(SIZE), "--seed", str(seed), "--out", str(out), "--quiet", "--overwrite"],
            check=True,
        )  # fmt: skip
    return out / "datalist.json"


def object_datalist(work: Path, presets: tuple[str, ...], num_per_preset: int) -> Path:
    """One item per simulated image and tissue class (a binary mask of that class), for the given presets:
    ``training`` and ``validation`` lists, written to ``work/objects.json``."""
    out = work / "objects.json"
    if out.is_file():
        return out
    parts: dict[str, list[dict]] = {"training": [], "validation": []}
    masks = work / "objects"
    masks.mkdir(parents=True, exist_ok=True)
    for preset in presets:
        datalist_path = _simulate(preset, work / preset, num_per_preset, seed=31 + PRESETS.index(preset))
        datalist = json.loads(datalist_path.read_text(encoding="utf-8"))
        for part, items in (("training", datalist["training"]), ("validation", datalist["validation"][:16])):
            for item in items:
                label_map = np.asarray(Image.open(datalist_path.parent / item["label_multiclass"]))
                stem = Path(item["image"]).stem
                for value in np.unique(label_map):
                    if value == 0 or (label_map == value).sum() < MIN_OBJECT_PIXELS:
                        continue
                    name = f"{preset}_{stem}_class{value}.png"
                    Image.fromarray(((label_map == value) * 255).astype(np.uint8)).save(masks / name)
                    parts[part].append(
                        {"image": str((datalist_path.parent / item["image"]).relative_to(work)),
                         "label": f"objects/{name}"}
                    )  # fmt: skip
    (work / "objects.tmp").write_text(json.dumps(parts, indent=1), encoding="utf-8")
    os.replace(work / "objects.tmp", out)
    return out


def foundation(work: Path, target: str, iterations: int, num_per_preset: int) -> Path:
    """The small SAM trained from scratch on the tissue classes of the presets other than ``target``."""
    folder = work / f"foundation_{target}"
    model = folder / "model.pt"
    done = folder / "done.json"
    earlier = json.loads(done.read_text(encoding="utf-8")) if done.is_file() else {"iterations": 0, "seconds": 0.0}
    if earlier.get("iterations", iterations) >= iterations:
        return model
    folder.mkdir(parents=True, exist_ok=True)
    datalist = object_datalist(folder, tuple(p for p in PRESETS if p != target), num_per_preset)
    per_epoch = 200
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(SAM / "configs" / "train.json"),
         "--bundle_root", str(SAM), "--dataset_dir", str(datalist), "--architecture", "small",
         "--train_mode", "full", "--learning_rate", "0.0003", "--batch_size", "4",
         "--samples_per_epoch", str(per_epoch * 4), "--max_epochs", str(max(1, iterations // per_epoch)),
         "--ckpt_dir", str(folder), "--output_dir", str(folder / "runs"), "--progress", "false"],
        check=True,
    )  # fmt: skip
    seconds = earlier["seconds"] + time.perf_counter() - start  # a longer run resumes the bundle's checkpoint
    done.write_text(json.dumps({"iterations": iterations, "seconds": round(seconds, 1)}), encoding="utf-8")
    return model


SAM_LEARNING_RATE = 1e-4  # Adam, mask decoder only; the paper's 1e-5 over its 20 epochs of a larger set
#: the study's settings; ``mgcc_study.py`` adds its arms to the breast study with these, so its cells share the
#: split and each cell's generator (and the report holds both bundles' arms)
STUDY_ARGS = (
    "--simulator-image-size", str(SIZE), "--generator-iterations", "60", "--num-synthetic", "32",
    "--num-test", "48", "--num-labeled-pool", "32", "--num-unlabeled-pool", "48",
    "--segmenter-iterations", "200", "--seeds", "0,1,2", "--labeled-sizes", "4,8,16,32",
    "--sam-architecture", "small", "--in-process",
)  # fmt: skip
SAM_ARMS = ("sam_real", "sam_csg")
SAM_SETTINGS = (
    "anatomies", "seeds", "simulator_image_size", "segmenter_iterations", "sam_learning_rate", "sam_architecture",
    "sam_checkpoint", "sam_train_mode", "sam_synthetic_fraction", "generator_iterations", "num_synthetic", "num_test",
    "num_labeled_pool", "num_unlabeled_pool", "test_fraction", "split_seed", "num_threads", "device",
)  # fmt: skip
#: the SAM bundle's training augmentation (train.json), recorded with the results (the fine-tuning recipe)
AUGMENTATION = ("affine_prob", "rotate_range", "scale_range", "translate_range", "contrast_prob", "contrast_gamma")
#: per variant: the study folder's name (``<name>_<anatomy>``) and the flags that follow STUDY_ARGS (a later flag wins)
VARIANTS = {
    "study": ("study", ()),
    "target": ("study_target", ("--labeled-sizes", "16", "--num-synthetic", "256", "--sam-train-mode", "full",
                                "--segmenter-iterations", "1200", "--sam-synthetic-fraction", "0.25")),
}  # fmt: skip


def _flag(args: tuple[str, ...], flag: str) -> str:
    """The value of the last ``flag`` in ``args``, as the study's argument parser reads it."""
    return args[len(args) - 1 - args[::-1].index(flag) + 1]


def study(
    work: Path, anatomy: str, workers: int, other_arms: tuple[str, ...] = (), *other_args: str, name: str = "study"
) -> Path:
    """``usgen-monai study`` on ``anatomy`` with the SAM arms fine-tuned from its foundation (and ``other_arms``
    with ``other_args``, which win over the study's own), in ``work/<name>_<anatomy>``; resumes."""
    out = work / f"{name}_{anatomy}"
    subprocess.run(
        [sys.executable, "-m", "usgen_monai", "study", "--out", str(out), "--anatomy", anatomy, *STUDY_ARGS,
         "--arms", ",".join((*SAM_ARMS, *other_arms)),
         "--sam-checkpoint", str(work / f"foundation_{anatomy}" / "model.pt"),
         "--sam-learning-rate", str(SAM_LEARNING_RATE), "--workers", str(workers), *other_args],
        check=True,
    )  # fmt: skip
    return out / "results.json"


def zero_shot(work: Path, anatomy: str, name: str = "study") -> dict:
    """The foundation without fine-tuning, on the study's test set (the first study cell's datalist holds it)."""
    out = work / f"{name}_{anatomy}" / "zero_shot.json"
    if not out.is_file():
        datalist = next((work / f"{name}_{anatomy}" / "cells").glob("*/*/*/sam_real/datalist.json"))
        subprocess.run(
            [sys.executable, "-m", "monai.bundle", "run", "--config_file",
             str([str(SAM / "configs" / "train.json"), str(SAM / "configs" / "evaluate.json")]),
             "--bundle_root", str(SAM), "--architecture", "small", "--dataset_dir", str(datalist),
             "--test_dataset_dir", str(datalist), "--test_subset", "test",
             "--model_path", str(work / f"foundation_{anatomy}" / "model.pt"), "--metrics_path", str(out),
             "--head_circumference", str(anatomy == "fetal_head").lower()],
            check=True,
        )  # fmt: skip
    return json.loads(out.read_text(encoding="utf-8"))


def mean_sd(values: list[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if v is not None]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def cell_results(study_dir: Path, arm: str) -> list[dict]:
    """The finished cells of ``arm`` in a study folder (``cells/<anatomy>/n<N>/seed<S>/<arm>/result.json``), whatever
    arms the study's last run listed (``mgcc_study.py`` adds arms to the same folder)."""
    found = sorted(study_dir.glob(f"cells/*/n*/seed*/{arm}/result.json"))
    return [json.loads(p.read_text(encoding="utf-8")) for p in found]


def collect(work: Path, anatomies: list[str], variant: str = "study") -> dict:
    """Per anatomy, N and arm: Dice (and HC error) mean and sd over seeds, the per-seed values, and the paired
    difference real + synthetic minus real-only; the generators' data, times and fidelity. The SAM bundle's version
    and augmentation are read from the checkout at collection time (the cells do not record them): collect with the
    bundle the cells ran with."""
    from usgen_monai.study.report import summarize_quality

    name, variant_args = VARIANTS[variant]
    labeled_sizes = _flag((*STUDY_ARGS, *variant_args), "--labeled-sizes").split(",")
    train = json.loads((SAM / "configs" / "train.json").read_text(encoding="utf-8"))
    version = json.loads((SAM / "configs" / "metadata.json").read_text(encoding="utf-8"))["version"]
    augmentation = {k: train[k] for k in AUGMENTATION}
    document: dict = {"protocol": {"sam_bundle_version": version, "sam_augmentation": augmentation}, "rows": []}
    for anatomy in anatomies:
        study_dir = work / f"{name}_{anatomy}"
        results = json.loads((study_dir / "results.json").read_text(encoding="utf-8"))
        done = json.loads((work / f"foundation_{anatomy}" / "done.json").read_text(encoding="utf-8"))
        metrics = zero_shot(work, anatomy, name)
        document["protocol"][anatomy] = {
            # the SAM arms' settings (the folder's last run may have been mgcc_study.py's, with its sizes and arms)
            "study_settings": {
                **{k: v for k, v in results["settings"].items() if k in SAM_SETTINGS},
                "labeled_sizes": [int(n) for n in labeled_sizes],
                "arms": list(SAM_ARMS),
            },
            "foundation": {
                "trained_on": [p for p in PRESETS if p != anatomy],
                "what": "every tissue class of simulated images of those presets, one item per image and class, "
                "box prompts, the small configuration from scratch",
                "iterations": done["iterations"],
                "seconds": done["seconds"],
                "zero_shot_test_dice": metrics["metrics"]["test_mean_dice"],
                "zero_shot_test_hc_abs_error_mm": metrics["metrics"].get("test_hc_abs_error_mm"),
            },
            "generators": [
                {k: g.get(k) for k in ("num_labeled", "seed", "trained_on", "train_seconds", "generate_seconds")}
                for g in cell_results(study_dir, "csg")
            ],
            "generator_quality": summarize_quality(cell_results(study_dir, "csg_quality")),
        }
        cells = [c for arm in SAM_ARMS for c in cell_results(study_dir, arm) if str(c["num_labeled"]) in labeled_sizes]
        document["protocol"][anatomy]["failed_cells"] = [c for c in cells if "dice" not in c]
        for n in sorted({c["num_labeled"] for c in cells}):
            by_arm = {
                arm: {c["seed"]: c for c in cells if c["num_labeled"] == n and c["arm"] == arm and "dice" in c}
                for arm in SAM_ARMS
            }
            row = {"anatomy": anatomy, "num_labeled": n}
            for arm, by_seed in by_arm.items():
                row[f"{arm}_dice"] = {s: c["dice"] for s, c in sorted(by_seed.items())}
                row[f"{arm}_dice_mean"], row[f"{arm}_dice_sd"] = mean_sd(list(row[f"{arm}_dice"].values()))
                if anatomy == "fetal_head":
                    hc = [c.get("hc_abs_error_mm") for c in by_seed.values()]
                    row[f"{arm}_hc_mm_mean"], row[f"{arm}_hc_mm_sd"] = mean_sd(hc)
                row[f"{arm}_train_seconds_mean"] = mean_sd([c["train_seconds"] for c in by_seed.values()])[0]
            seeds = sorted(set(by_arm["sam_real"]) & set(by_arm["sam_csg"]))
            gains = [by_arm["sam_csg"][s]["dice"] - by_arm["sam_real"][s]["dice"] for s in seeds]
            row["gain_mean"], row["gain_sd"] = mean_sd(gains)
            row["num_seeds"] = len(seeds)
            document["rows"].append(row)
    return document


def mean_sd_text(mean: float | None, sd: float | None, digits: int = 3) -> str:
    return "-" if mean is None else f"{mean:.{digits}f} ± {sd:.{digits}f}"


def markdown_table(document: dict) -> str:
    """The docs' table: Dice (HC error for the fetal head) mean ± sd over seeds, and the paired gain in points."""
    lines = ["| preset | real pairs | real only | real + synthetic | gain (Dice points) | HC error real only (mm) "
             "| HC error real + synthetic (mm) |", "| --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in document["rows"]:
        hc = [mean_sd_text(r.get(f"{a}_hc_mm_mean"), r.get(f"{a}_hc_mm_sd"), 1) if r["anatomy"] == "fetal_head" else ""
              for a in SAM_ARMS]  # fmt: skip
        gain = "-" if r["gain_mean"] is None else f"{100 * r['gain_mean']:+.1f} ± {100 * r['gain_sd']:.1f}"
        real, synthetic = (mean_sd_text(r[f"{a}_dice_mean"], r[f"{a}_dice_sd"]) for a in SAM_ARMS)
        lines.append(f"| `{r['anatomy']}` | {r['num_labeled']} | {real} | {synthetic} | {gain} | {hc[0]} | {hc[1]} |")
    return "\n".join(lines)


def plot(work: Path, anatomies: list[str], figure: Path) -> list[Path]:
    """Dice against real pairs per anatomy (the study report's figure), ``<figure stem>_<anatomy>.png``."""
    from usgen_monai.study.report import plot_dice_against_labeled, summarize

    paths = []
    for anatomy in anatomies:
        rows = summarize([c for arm in SAM_ARMS for c in cell_results(work / f"study_{anatomy}", arm)])
        path = figure.with_name(f"{figure.stem}_{anatomy}{figure.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        paths.append(plot_dice_against_labeled(rows, anatomy, path))
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path("runs/sam_study"))
    parser.add_argument("--anatomy", default="fetal_head,breast")
    parser.add_argument("--steps", default="foundation,study,results")
    parser.add_argument("--foundation_iterations", type=int, default=2400)
    parser.add_argument("--foundation_images", type=int, default=240, help="simulated images per other preset")
    parser.add_argument("--workers", type=int, default=1, help="study cells at once per anatomy")
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="study", help="the study, or its target cell")
    parser.add_argument("--out", type=Path, default=None, help="default benchmarks/results/sam_<variant folder>.json")
    parser.add_argument("--figure", type=Path, default=SAM / "docs" / "figures" / "sam_study.png")
    args = parser.parse_args()
    steps = args.steps.split(",")
    anatomies = args.anatomy.split(",")
    if "foundation" in steps:
        for anatomy in anatomies:
            foundation(args.work, anatomy, args.foundation_iterations, args.foundation_images)
    name, variant_args = VARIANTS[args.variant]
    out = args.out or REPO / "benchmarks" / "results" / f"sam_{name}.json"
    if "study" in steps:
        for anatomy in anatomies:
            study(args.work, anatomy, args.workers, (), *variant_args, name=name)
    if "results" in steps:
        document = collect(args.work, anatomies, args.variant)
        document["command"] = " ".join(["python", "benchmarks/sam_study.py", *sys.argv[1:]])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(document, indent=1), encoding="utf-8")
        if args.variant == "study":
            plot(args.work, anatomies, args.figure)
        print(markdown_table(document))


if __name__ == "__main__":
    main()
