"""Writes bundles/mgcc/docs/figures/mgcc_predictions.png: the shipped MGCC weights, run through the bundle's own
inference config, on held-out simulated breast images with a lesion (simulator seed 99, never used in training):
ground truth outlined in green, prediction in red, each tile's Dice printed.

    OMP_NUM_THREADS=1 python docs/make_mgcc_figure.py [--columns 6 --rows 2]
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
from monai.bundle import run
from PIL import Image
from scipy import ndimage

from usgen_monai.data.datasets import load_json_datalist
from usgen_monai.data.layouts import simulate_dataset
from usgen_monai.visualize import image_grid, overlay_mask_outline, save_png

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "mgcc"


def main(columns: int = 6, rows: int = 2, seed: int = 99) -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        simulate_dataset(tmp / "test", preset="breast", num=4 * columns * rows, layout="monai", size=(256, 256),
                         seed=seed, split=(1.0, 0.0, 0.0))  # fmt: skip
        items = [i for i in load_json_datalist(tmp / "test") if np.asarray(Image.open(i["label"])).any()]
        items = items[: columns * rows]
        (tmp / "images").mkdir()
        for item in items:
            os.symlink(item["image"], tmp / "images" / Path(item["image"]).name)
        run(
            config_file=str(BUNDLE / "configs" / "inference.json"),
            bundle_root=str(BUNDLE),
            dataset_dir=str(tmp / "images"),
            output_dir=str(tmp / "masks"),
            progress=False,
        )
        tiles, notes = [], []
        for item in items:
            image = np.asarray(Image.open(item["image"]).convert("L"), np.float32)
            image = (image - image.min()) / max(float(np.ptp(image)), 1.0)
            truth = np.asarray(Image.open(item["label"])) > 0
            pred = np.asarray(Image.open(tmp / "masks" / (Path(item["image"]).stem + "_seg.png"))) > 0
            dice = 2 * (pred & truth).sum() / max(int(pred.sum() + truth.sum()), 1)
            tile = overlay_mask_outline(image, truth, color=(64, 220, 64))
            tile[pred & ~ndimage.binary_erosion(pred)] = (255, 64, 64)
            tiles.append(tile)
            notes.append(f"{dice:.2f}")
    grid = [tiles[r * columns : (r + 1) * columns] for r in range(rows)]
    out = BUNDLE / "docs" / "figures" / "mgcc_predictions.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    save_png(image_grid(grid), str(out))
    print(f"{out}; Dice per tile, row by row: {', '.join(notes)}")
    return out


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, default=6)
    parser.add_argument("--rows", type=int, default=2)
    args = parser.parse_args()
    main(args.columns, args.rows)
