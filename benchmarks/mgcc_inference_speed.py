"""MGCC inference throughput: the bundle's inference config, end to end (read PNG, preprocess, infer, postprocess,
write PNG masks), on a folder of simulated 256x256 B-mode images, at the bundle's CPU width and at the paper's width.
Target (issue 10): at least 20 images/s on 2 cores with the CPU width.

    python benchmarks/mgcc_inference_speed.py --out benchmarks/results/mgcc_inference_speed.json

Each torch thread count is measured with each number of batches segmented at once (``--parallel_batches``, the
inference config's ``parallel_batches``: each batch in its own thread, torch's threads divided among them).
``--contiguous`` adds the CPU width in torch's default memory format, against the config's channels_last,
``--unfused`` the CPU width without the config's batch-norm folding (``usgen_monai.networks.fuse_conv_batch_norm``),
and ``--other_width`` another width (default the 0.2 bundle's).

The weights are random (speed does not depend on them); the time is the runner's own (``inference_summary.json``:
reading, inference, postprocessing and writing of every image), after one warm-up run. The machine's load average is
recorded with each measurement, since other processes share the cores, and so is the CPU time per image, which they
do not change much for a one-thread run. Two threads on two cores that another process also uses collapse (OpenMP
threads spin waiting for each other); one thread does not.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run

from usgen_monai.data import write_png
from usgen_monai.data.simulator import UltrasoundSimulator
from usgen_monai.utils import to_uint8, write_json_atomic

CONFIG = Path(__file__).resolve().parents[1] / "bundles" / "mgcc" / "configs" / "inference.json"
PAPER_CHANNELS = [64, 128, 256, 512, 1024]  # width multiplier k = 4
#: the config's network without its batch-norm folding: the weight loading the fold wraps
UNFUSED = {"network": ConfigParser.load_config_file(str(CONFIG))["network"]["network"]}


def _images(folder: Path, num: int, size: int) -> Path:
    sim = UltrasoundSimulator("breast", size=(size, size))
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(num):
        write_png(folder / f"image_{i:04d}.png", to_uint8(sim.sample(seed=i).image))
    return folder


def _measure(
    work: Path,
    images: Path,
    channels: list[int],
    repeats: int,
    batch_size: int,
    parallel_batches: int = 1,
    overrides: dict | None = None,
) -> dict:
    parser = ConfigParser()
    parser.read_config(str(CONFIG))
    parser.update({"network_def#channels": channels})
    network = parser.get_parsed_content("network_def")
    label = "_".join(str(c) for c in channels)
    weights = work / f"model_{label}.pt"
    torch.save(network.state_dict(), weights)
    params = sum(p.numel() for p in network.parameters())
    settings = {"model_path": str(weights), "network_def#channels": channels, "progress": False,
                "batch_size": batch_size, "parallel_batches": parallel_batches, **(overrides or {})}  # fmt: skip
    warm = work / "warm"
    warm.mkdir(exist_ok=True)
    for p in sorted(images.iterdir())[:batch_size]:
        (warm / p.name).write_bytes(p.read_bytes())
    bundle_run(
        config_file=str(CONFIG), logging_file=False, dataset_dir=str(warm), output_dir=str(work / "o"), **settings
    )
    rates, loads, cpu = [], [], []
    for r in range(repeats):
        out = Path(tempfile.mkdtemp(prefix="out_", dir=work))  # a fresh folder each run: nothing is kept
        load = os.getloadavg()[0]
        cpu_start = time.process_time()
        bundle_run(
            config_file=str(CONFIG), logging_file=False, dataset_dir=str(images), output_dir=str(out), **settings
        )
        summary = json.loads((out / "inference_summary.json").read_text())
        rates.append(summary["num_succeeded"] / summary["seconds"])
        cpu.append((time.process_time() - cpu_start) / summary["num_succeeded"])
        loads.append(round(load, 2))
        print(
            channels,
            f"{torch.get_num_threads()} thread(s), {parallel_batches} parallel batch(es): {rates[-1]:.2f} images/s "
            f"(load average {load:.2f})",
            flush=True,
        )
    return {
        "channels": channels,
        "overrides": overrides or {},
        "parallel_batches": parallel_batches,
        "parameters": params,
        "num_images": len(list(images.iterdir())),
        "images_per_s": [round(x, 2) for x in rates],
        "images_per_s_median": round(statistics.median(rates), 2),
        "images_per_s_best": round(max(rates), 2),
        "load_average_1min_before_each": loads,
        # CPU time of the whole run (all threads, config parsing included) per image: with one thread, the
        # throughput of one core that other processes do not slow down is about 1 / this
        "cpu_seconds_per_image_median": round(statistics.median(cpu), 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=100, help="images at the CPU width")
    parser.add_argument("--paper_num", type=int, default=12, help="images at the paper's width (slow on a CPU)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", default="1,2", help="torch thread counts to measure the CPU width with")
    parser.add_argument(
        "--parallel_batches", default="1,2", help="batches segmented at once (the config's parallel_batches)"
    )
    parser.add_argument(
        "--other_width", default="4,8,16,32,64", help="another width to compare (images as the CPU width)"
    )
    parser.add_argument(
        "--contiguous", action="store_true", help="also measure the CPU width without channels_last memory format"
    )
    parser.add_argument(
        "--unfused",
        action="store_true",
        help="also measure the CPU width without folding batch norm into the convolutions",
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    threads = [int(t) for t in str(args.threads).split(",")]
    parallel = [int(k) for k in str(args.parallel_batches).split(",")]
    cpu_channels = ConfigParser.load_config_file(str(CONFIG))["network_def"]["channels"]
    batch_size = ConfigParser.load_config_file(str(CONFIG))["batch_size"]
    report = {
        "benchmark": "mgcc_inference_speed",
        "config": "bundles/mgcc/configs/inference.json (PNG in, PNG masks out)",
        "size": args.size,
        "torch_threads": threads,
        "parallel_batches": parallel,
        "batch_size": batch_size,
        "target": "at least 20 images/s with the CPU width on 2 cores",
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "(default)"),
    }
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        start = time.perf_counter()
        images = _images(work / "images", args.num, args.size)
        paper_images = work / "paper_images"
        paper_images.mkdir()
        for p in sorted(images.iterdir())[: args.paper_num]:
            (paper_images / p.name).write_bytes(p.read_bytes())
        for n in threads:
            torch.set_num_threads(n)
            for k in parallel:
                report[f"cpu_width_{n}_threads_{k}_parallel"] = _measure(
                    work, images, cpu_channels, args.repeats, batch_size, k
                )
        torch.set_num_threads(threads[0])
        if args.unfused:  # the weights loaded, batch norm kept
            report[f"cpu_width_unfused_{threads[0]}_threads_{parallel[-1]}_parallel"] = _measure(
                work, images, cpu_channels, args.repeats, batch_size, parallel[-1], UNFUSED
            )
        if args.contiguous:  # the weights loaded and folded, in torch's default memory format
            report[f"cpu_width_contiguous_{threads[0]}_threads_{parallel[-1]}_parallel"] = _measure(
                work, images, cpu_channels, args.repeats, batch_size, parallel[-1],
                {"network#network#network": "$@network_def.to(@device)"},
            )  # fmt: skip
        if args.other_width:
            other = [int(c) for c in args.other_width.split(",")]
            report[f"other_width_{threads[0]}_threads"] = _measure(work, images, other, args.repeats, batch_size, 1)
        report[f"paper_width_{threads[0]}_threads"] = _measure(work, paper_images, PAPER_CHANNELS, 1, batch_size, 1)
        report["seconds"] = round(time.perf_counter() - start, 1)
    report["machine"] = f"{platform.machine()}, {os.cpu_count()} cores, python {platform.python_version()}"
    print(json.dumps(report, indent=2))
    if args.out:
        write_json_atomic(args.out, report)


if __name__ == "__main__":
    main()
