"""Writes bundles/csg/docs/figures/csg_control.png: what the context controls, with the label map and the noise held
fixed. Per preset, one row: the darkest and the brightest image of the context bank, the pair generated with each,
then gain -8 dB and +8 dB with the tabular context alone (no context image) and with the sample's own context
image.

    OMP_NUM_THREADS=1 python docs/make_csg_control_figure.py [--model_path PATH]
"""

from __future__ import annotations

import argparse
import copy
import os
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from usgen_monai.engines import NoContextImageSource
from usgen_monai.visualize import image_grid, save_png

REPO = Path(__file__).resolve().parents[1]
BUNDLE = REPO / "bundles" / "csg"
COLUMNS = ["dark context", "generated", "bright context", "generated", "-8 dB, no image", "+8 dB, no image",
           "-8 dB", "+8 dB"]


def _tile(image: torch.Tensor) -> np.ndarray:
    grey = (image.clamp(0, 1).numpy() * 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, -1)


def main(model_path: str = "", seed: int = 31, out: str = str(BUNDLE / "docs" / "figures" / "csg_control.png")):
    parser = ConfigParser()
    parser.read_config([str(BUNDLE / "configs" / "common.json"), str(BUNDLE / "configs" / "inference.json")])
    parser.update({"bundle_root": str(BUNDLE), "progress": False, "mask_source": "procedural"})
    if model_path:
        parser.update({"model_path": model_path})
    generator = parser.get_parsed_content("generator")
    bank_source = generator.context_source
    rows, titles = [], []
    for preset in ("breast", "fetal_head", "msk"):
        generator.presets, generator.finding = (preset,), None
        record = generator.plan(0, seed)
        bank = bank_source.bank(preset)
        means = bank.images.mean(dim=(1, 2, 3))
        tiles = []
        for index in (int(torch.argmin(means)), int(torch.argmax(means))):
            r = copy.deepcopy(record)
            r["context_image"] = bank_source.request(index, preset)
            tiles += [_tile(bank.images[index, 0]), _tile(generator.generate(r).image)]
        for with_image in (False, True):
            for gain in (-8.0, 8.0):
                r = copy.deepcopy(record)
                r["context_overrides"] = {**r.get("context_overrides", {}), "gain_db": gain}
                if not with_image:
                    r["context_image"] = {"type": NoContextImageSource.type}
                    generator.context_source = NoContextImageSource()
                tiles.append(_tile(generator.generate(r).image))
                generator.context_source = bank_source
        rows.append(tiles)
        titles.append(preset)
    print(save_png(image_grid(rows, titles, COLUMNS), out))


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model_path", default="")
    p.add_argument("--out", default=str(BUNDLE / "docs" / "figures" / "csg_control.png"))
    args = p.parse_args()
    main(args.model_path, out=args.out)
