"""The learned label-map prior against the simulator's procedural geometry: how noisy its maps are
(``label_map_fragmentation``: the share of anatomy pixels in fragments under 16 pixels) and whether the finding it is
asked for is in the map as a region of 32 pixels or more (a lesion for benign/malignant breast, an effusion, a
tendon tear), per preset and finding.
Also writes a figure of prior (raw and smoothed, see ``LearnedMaskSource(smoothing=...)``) and procedural maps side
by side.

    OMP_NUM_THREADS=1 python benchmarks/csg_mask_prior.py --out benchmarks/results/csg_mask_prior.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from matplotlib import colormaps
from monai.bundle import ConfigParser
from scipy import ndimage

from usgen_monai.data.simulator import PRESET_FINDINGS, UNIFIED_CLASSES
from usgen_monai.metrics import label_map_fragmentation
from usgen_monai.visualize import image_grid, save_png

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "csg"
# the class a finding puts into the map
FINDING_CLASSES = {"benign": "lesion", "malignant": "lesion", "effusion": "effusion", "tendon_tear": "tear"}


def _has_region(label: torch.Tensor, value: int, min_size: int = 32) -> bool:
    """The class forms a region of at least ``min_size`` pixels (a few stray pixels are not a finding)."""
    components, count = ndimage.label(label.numpy() == value)
    return count > 0 and int(np.bincount(components.ravel())[1:].max()) >= min_size


def _colour(label: torch.Tensor) -> np.ndarray:
    palette = (np.asarray(colormaps["tab20"].colors)[: len(UNIFIED_CLASSES)] * 255).astype(np.uint8)
    palette[0] = 0
    return palette[label.numpy()]


def _source(name: str, mask_prior_path: str, smoothing: int = 0, guidance: float = 1.0):
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "common.json"), str(BUNDLE / "configs" / "inference.json")])
    parser.update(
        {
            "bundle_root": str(BUNDLE),
            "progress": False,
            "mask_source": name,
            "mask_smoothing": smoothing,
            "mask_guidance": guidance,
        }
    )
    if mask_prior_path:
        parser.update({"mask_prior_path": mask_prior_path})
    return parser.get_parsed_content("selected_mask_source")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mask_prior_path", default="", help="default: the shipped models/mask_prior.pt")
    p.add_argument("--per_finding", type=int, default=8)
    p.add_argument("--seed", type=int, default=99)
    p.add_argument("--smoothing", type=int, nargs="+", default=[0, 5], help="box sizes of the prior's smoothing")
    p.add_argument("--guidance", type=float, default=1.0, help="the prior's classifier-free guidance scale")
    p.add_argument("--out", default=None)
    p.add_argument("--figure", default=str(BUNDLE / "docs" / "figures" / "mask_prior.png"))
    args = p.parse_args()
    sources = {f"prior_smoothing_{k}": _source("prior", args.mask_prior_path, k, args.guidance) for k in args.smoothing}
    sources["procedural"] = _source("procedural", "")
    report = {"benchmark": "csg_mask_prior", "per_finding": args.per_finding, "guidance": args.guidance, "sources": {}}
    rows, titles = [], []
    for name, source in sources.items():
        maps_all, result, start = [], {}, time.perf_counter()
        for preset, findings in PRESET_FINDINGS.items():
            for finding in findings:
                maps = [
                    source.draw(source.plan(k, args.seed + k, (preset,), finding)).label
                    for k in range(args.per_finding)
                ]
                stacked = torch.stack(maps)
                entry = {"fragmentation": round(label_map_fragmentation(stacked), 4)}
                if finding in FINDING_CLASSES:
                    value = UNIFIED_CLASSES.index(FINDING_CLASSES[finding])
                    entry["finding_present"] = round(float(np.mean([_has_region(m, value) for m in maps])), 3)
                result[f"{preset}/{finding}"] = entry
                maps_all.append(stacked)
                if len(rows) < len(maps_all):
                    rows.append([])
                    titles.append(f"{preset}\n{finding}")
                rows[len(maps_all) - 1] += [_colour(m) for m in maps[:2]]
        report["sources"][name] = {
            "fragmentation": round(label_map_fragmentation(torch.cat(maps_all)), 4),
            "seconds_per_map": round((time.perf_counter() - start) / sum(len(m) for m in maps_all), 3),
            "per_finding": result,
        }
        print(name, json.dumps(report["sources"][name]), flush=True)
    columns = [name.replace("prior_smoothing_", "prior, box ") for name in sources for _ in range(2)]
    print(save_png(image_grid(rows, titles, columns), args.figure))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
