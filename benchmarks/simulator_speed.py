"""Simulator throughput at 256x256: images per second per preset, in one process and with one worker process
per core. Target (issue 2): at least 100 images/s on 2 cores.

    python benchmarks/simulator_speed.py --out benchmarks/results/simulator_speed.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

from usgen_monai.data.simulator import PRESETS, UltrasoundSimulator


def _run(preset: str, size: int, seeds: range) -> float:
    sim = UltrasoundSimulator(preset, size=(size, size))
    start = time.perf_counter()
    for seed in seeds:
        sim.sample(seed=seed)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--num", type=int, default=300, help="images per measurement")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    workers = os.cpu_count() or 1
    report = {"benchmark": "simulator_speed", "size": args.size, "num_per_run": args.num, "repeats": args.repeats,
              "workers": workers, "presets": {}}
    with ProcessPoolExecutor(workers) as pool:
        for preset in PRESETS:
            _run(preset, args.size, range(20))  # warm caches (scan-conversion tables)
            single, parallel = [], []
            for r in range(args.repeats):
                seeds = range(r * args.num, (r + 1) * args.num)
                single.append(args.num / _run(preset, args.size, seeds))
                chunks = [range(seeds.start + k, seeds.stop, workers) for k in range(workers)]
                start = time.perf_counter()
                list(pool.map(_run, [preset] * workers, [args.size] * workers, chunks))
                parallel.append(args.num / (time.perf_counter() - start))
            report["presets"][preset] = {
                "images_per_s_1_process_median": round(statistics.median(single), 1),
                f"images_per_s_{workers}_processes_median": round(statistics.median(parallel), 1),
            }
            print(preset, report["presets"][preset], flush=True)
    report["machine"] = f"{platform.machine()}, {workers} cores, python {platform.python_version()}"
    print(json.dumps(report, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
