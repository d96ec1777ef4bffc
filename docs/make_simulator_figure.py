"""Writes docs/figures/simulator_grid.png: samples per preset and finding, the target mask outlined in red.

    python docs/make_simulator_figure.py
"""

from __future__ import annotations

import os

from usgen_monai.data.simulator import PRESETS, UltrasoundSimulator
from usgen_monai.visualize import image_grid, overlay_mask_outline, save_png

HERE = os.path.dirname(os.path.abspath(__file__))


def main(per_finding: int = 3, size: int = 192):
    rows, titles = [], []
    for preset in PRESETS:
        sim = UltrasoundSimulator(preset, size=(size, size))
        for finding in sim.findings:
            tiles = []
            for k in range(per_finding):
                s = sim.sample(seed=100 + k, finding=finding)
                tiles.append(overlay_mask_outline(s.image, s.mask))
            rows.append(tiles)
            titles.append(f"{preset}\n{finding}")
    path = save_png(image_grid(rows, titles), os.path.join(HERE, "figures", "simulator_grid.png"))
    print(path)


if __name__ == "__main__":
    main()
