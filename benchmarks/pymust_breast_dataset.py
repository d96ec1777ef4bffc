"""A BUSI-layout breast data set made with another simulator: PyMUST (Garcia, simus: a frequency-domain linear-array
simulator with delay-and-sum beamforming), not the package's built-in B-mode simulator.

It is the "data the built-in simulator did not make" on which the CSG own-data recipe is measured
(``benchmarks/csg_own_data.py``): different physics (transducer impulse response, diffraction, beamforming,
log compression by PyMUST), different tissue geometry (drawn here), the layout of BUSI (``benign/benign (1).png`` with
``benign (1)_mask.png``, masks 0/255, empty masks for ``normal``).

Phantom per image (millimetres; x lateral in [-12.5, 12.5], z depth in [5, 30]): skin, a subcutaneous fat layer with
a wavy lower border and darker fat lobules, glandular tissue, and for ``benign`` a smooth hypoechoic ellipse, for
``malignant`` an irregular, darker one with a posterior acoustic shadow. Scatterer amplitudes are Rayleigh draws times
the tissue's echogenicity; one plane-wave transmit per image (L11-5v, 7.6 MHz), beamformed onto a 128 x 128 grid and
log-compressed to a 45 dB range. About 20 s per image on one CPU core; files that exist are kept (resumable).

Needs ``pymust`` (``pip install pymust``; it is not a dependency of usgen-monai)::

    OMP_NUM_THREADS=1 python benchmarks/pymust_breast_dataset.py --out runs/pymust/train --seed 0 \\
        --benign 32 --malignant 16 --normal 8
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

FINDINGS = ("benign", "malignant", "normal")
WIDTH_MM, TOP_MM, BOTTOM_MM = 25.0, 5.0, 30.0
DYNAMIC_RANGE_DB = 45.0


def _lesion_mask(x, z, rng, finding):
    """A lesion region (boolean per point) and its parameters: smooth ellipse (benign) or irregular (malignant)."""
    cx, cz = rng.uniform(-6, 6), rng.uniform(14, 22)
    a, b = rng.uniform(2.5, 6.0), rng.uniform(2.0, 4.5)
    angle = rng.uniform(-0.4, 0.4)
    harmonics = 0.04 if finding == "benign" else 0.12
    coeff = rng.normal(0, harmonics, size=(4, 2))
    phase = np.arctan2(z - cz, x - cx)
    radius_scale = 1.0 + sum(c0 * np.cos((k + 2) * phase) + c1 * np.sin((k + 2) * phase) for k, (c0, c1) in enumerate(coeff))
    xr = (x - cx) * np.cos(angle) + (z - cz) * np.sin(angle)
    zr = -(x - cx) * np.sin(angle) + (z - cz) * np.cos(angle)
    inside = (xr / a) ** 2 + (zr / b) ** 2 < radius_scale**2
    return inside, (cx, cz, a, b)


def phantom(rng, finding, grid_x, grid_z, num_scatterers=14000):
    """Scatterer positions (m), amplitudes, and the lesion mask on the image grid (rows = depth)."""
    x = rng.uniform(-WIDTH_MM / 2, WIDTH_MM / 2, num_scatterers)
    z = rng.uniform(TOP_MM, BOTTOM_MM, num_scatterers)
    echo = np.ones(num_scatterers)
    skin = TOP_MM + rng.uniform(0.8, 1.5)
    echo[z < skin] = 1.8
    fat_depth = rng.uniform(8.0, 13.0)
    waves = rng.normal(0, 0.8, 3)

    def fat_bottom(xx):
        return fat_depth + sum(w * np.sin((k + 1) * np.pi * xx / WIDTH_MM + k) for k, w in enumerate(waves))

    fat = (z >= skin) & (z < fat_bottom(x))
    echo[fat] = rng.uniform(0.35, 0.6)
    for _ in range(rng.integers(2, 6)):  # fat lobules inside the gland
        lx, lz = rng.uniform(-WIDTH_MM / 2, WIDTH_MM / 2), rng.uniform(fat_depth + 2, BOTTOM_MM)
        la, lb = rng.uniform(1.5, 4.0), rng.uniform(1.0, 2.5)
        echo[((x - lx) / la) ** 2 + ((z - lz) / lb) ** 2 < 1] = rng.uniform(0.4, 0.7)
    mask = np.zeros(grid_x.shape, dtype=bool)
    if finding != "normal":
        state = rng.bit_generator.state
        inside, (cx, cz, a, b) = _lesion_mask(x, z, rng, finding)
        rng.bit_generator.state = state  # the same draw outlines the lesion on the image grid
        mask, _ = _lesion_mask(grid_x, grid_z, rng, finding)
        echo[inside] = rng.uniform(0.03, 0.12) if finding == "benign" else rng.uniform(0.01, 0.06)
        if finding == "malignant":
            shadow = (np.abs(x - cx) < 0.8 * a) & (z > cz + 0.5 * b)
            echo[shadow & ~inside] *= rng.uniform(0.25, 0.5)
    amplitude = rng.rayleigh(1.0, num_scatterers) * echo
    return x * 1e-3, z * 1e-3, amplitude, mask


def simulate_image(seed, finding, size=128, num_scatterers=14000):
    """One B-mode image (uint8, rows = depth) and its lesion mask (uint8 0/255)."""
    import pymust

    rng = np.random.default_rng(seed)
    lateral = np.linspace(-WIDTH_MM / 2, WIDTH_MM / 2, size)
    depth = np.linspace(TOP_MM, BOTTOM_MM, size)
    grid_x, grid_z = np.meshgrid(lateral, depth)
    x, z, amplitude, mask = phantom(rng, finding, grid_x, grid_z, num_scatterers)
    param = pymust.getparam("L11-5v")
    param.fs = 4 * param.fc
    param.Nelements = 84  # the 25 mm the image spans (pitch 0.3 mm), a third less work than all 128
    delays = pymust.txdelay(param, 0)
    rf, _ = pymust.simus(x, z, amplitude, delays, param)
    iq = pymust.rf2iq(rf, param)
    das = pymust.dasmtx(1j * np.ones(iq.shape), grid_x * 1e-3, grid_z * 1e-3, delays, param)
    beamformed = (das @ iq.flatten(order="F")).reshape(grid_x.shape, order="F")
    envelope = np.abs(beamformed)
    envelope *= np.exp(0.03 * (depth - TOP_MM))[:, None]  # time-gain compensation of the depth loss
    db = 20 * np.log10(envelope / envelope.max() + 1e-12)
    image = np.clip((db + DYNAMIC_RANGE_DB) / DYNAMIC_RANGE_DB, 0, 1)
    return (image * 255).round().astype(np.uint8), (mask * 255).astype(np.uint8)


def _write_png(path: Path, array: np.ndarray) -> None:
    from PIL import Image

    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(array).save(tmp, format="PNG")
    tmp.replace(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--seed", type=int, default=0)
    for finding, default in zip(FINDINGS, (32, 16, 8)):
        parser.add_argument(f"--{finding}", type=int, default=default, help=f"{finding} images")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--scatterers", type=int, default=14000)
    args = parser.parse_args()
    from tqdm import tqdm

    jobs = [(f, i) for f in FINDINGS for i in range(1, getattr(args, f) + 1)]
    start = time.time()
    for k, (finding, index) in enumerate(tqdm(jobs, desc="pymust images")):
        folder = args.out / finding
        folder.mkdir(parents=True, exist_ok=True)
        image_path = folder / f"{finding} ({index}).png"
        mask_path = folder / f"{finding} ({index})_mask.png"
        if image_path.exists() and mask_path.exists():
            continue
        seed = args.seed * 100_000 + FINDINGS.index(finding) * 10_000 + index
        image, mask = simulate_image(seed, finding, args.size, args.scatterers)
        _write_png(mask_path, mask)
        _write_png(image_path, image)
    print(f"{len(jobs)} images in {args.out} ({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()
