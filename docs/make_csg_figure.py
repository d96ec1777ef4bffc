"""Writes bundles/csg/docs/figures/csg_samples.png: pairs generated with the shipped CSG weights, per preset and
finding (procedural masks, DDIM-50, default guidance); the conditioning label map's target (lesion, head, tendon)
is outlined in red.

    OMP_NUM_THREADS=1 python docs/make_csg_figure.py
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from monai.bundle import ConfigParser

from usgen_monai.data.simulator import PRESET_FINDINGS, PRESET_TARGETS, UNIFIED_CLASSES
from usgen_monai.visualize import image_grid, overlay_mask_outline, save_png

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "csg"


def main(per_finding: int = 3, seed: int = 2024):
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "common.json"), str(BUNDLE / "configs" / "inference.json")])
    parser.update({"bundle_root": str(BUNDLE), "progress": False, "mask_source": "procedural"})
    generator = parser.get_parsed_content("generator")
    rows, titles = [], []
    for preset, findings in PRESET_FINDINGS.items():
        targets = [UNIFIED_CLASSES.index(c) for c in PRESET_TARGETS[preset]]
        for finding in findings:
            generator.presets, generator.finding = (preset,), finding
            tiles = []
            for k in range(per_finding):
                pair = generator.generate(generator.plan(k, seed))
                mask = np.isin(pair.label.numpy(), targets)
                tiles.append(overlay_mask_outline(pair.image.numpy(), mask))
            rows.append(tiles)
            titles.append(f"{preset}\n{finding}")
    out = save_png(image_grid(rows, titles), str(BUNDLE / "docs" / "figures" / "csg_samples.png"))
    print(out)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
