"""Is the simulator hard enough? Train the same plain MONAI U-Net on 16 and on 500 simulated breast pairs and
compare Dice on held-out simulated images (benign + malignant, as BUSI segmentation studies do).

Real breast ultrasound shows a large gap between few and many labelled images; if the simulator showed none,
synthetic data would have nothing to improve. Target (issue 2): a gap of at least 10 Dice points.

    python benchmarks/simulator_segmentation_gap.py --out benchmarks/results/simulator_segmentation_gap.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from monai.losses import DiceCELoss
from monai.metrics import DiceMetric
from monai.networks.nets import UNet
from monai.utils import set_determinism
from tqdm import tqdm

from usgen_monai.data.simulator import UltrasoundSimulator


def simulate(sim: UltrasoundSimulator, seeds, findings=("benign", "malignant")):
    images, masks = [], []
    for seed in seeds:
        s = sim.sample(seed=int(seed), finding=findings[int(seed) % len(findings)])
        images.append(s.image)
        masks.append(s.mask)
    return torch.from_numpy(np.stack(images)[:, None]), torch.from_numpy(np.stack(masks)[:, None].astype(np.float32))


def train_and_test(train, test, iterations: int, batch_size: int, seed: int) -> dict:
    set_determinism(seed)
    net = UNet(2, 1, 1, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2).to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, iterations)
    loss_fn = DiceCELoss(sigmoid=True)
    x_all, y_all = train
    g = torch.Generator().manual_seed(seed)
    start = time.perf_counter()
    net.train()
    for _ in tqdm(range(iterations), desc=f"train n={len(x_all)}", mininterval=5):
        idx = torch.randint(len(x_all), (batch_size,), generator=g)
        x, y = x_all[idx], y_all[idx]
        flip = torch.rand(batch_size, generator=g) < 0.5  # lateral flips are anatomically plausible
        x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        y = torch.where(flip[:, None, None, None], y.flip(-1), y)
        opt.zero_grad()
        loss = loss_fn(net(x.contiguous(memory_format=torch.channels_last)), y)
        loss.backward()
        opt.step()
        sched.step()
    train_s = time.perf_counter() - start
    net.eval()
    metric = DiceMetric(include_background=True, reduction="mean")
    with torch.no_grad():
        for i in range(0, len(test[0]), 32):
            pred = (torch.sigmoid(net(test[0][i : i + 32])) > 0.5).float()
            metric(pred, test[1][i : i + 32])
    return {"dice": float(metric.aggregate()), "train_seconds": round(train_s, 1)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--difficulty", type=float, default=1.0)
    parser.add_argument("--small", type=int, default=16)
    parser.add_argument("--large", type=int, default=500)
    parser.add_argument("--test", type=int, default=200)
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sim = UltrasoundSimulator("breast", size=(args.size, args.size), difficulty=args.difficulty)
    test = simulate(sim, range(10_000_000, 10_000_000 + args.test))
    large = simulate(sim, range(args.large))
    small = (large[0][: args.small], large[1][: args.small])
    results = {}
    for name, data in (("small", small), ("large", large)):
        results[name] = train_and_test(data, test, args.iterations, args.batch_size, args.seed)
        results[name]["num_train"] = len(data[0])
        print(name, results[name], flush=True)
    report = {
        "benchmark": "simulator_segmentation_gap",
        "preset": "breast",
        "findings": ["benign", "malignant"],
        "size": args.size,
        "difficulty": args.difficulty,
        "iterations": args.iterations,
        "batch_size": args.batch_size,
        "num_test": args.test,
        "network": "monai.networks.nets.UNet(channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=2)",
        "results": results,
        "dice_gap_points": round(100 * (results["large"]["dice"] - results["small"]["dice"]), 2),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    print(json.dumps(report, indent=2))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
