"""Interactive latency of the SAM bundle's small configuration: one box on a 256x256 B-mode image, first with the
image embedding computed (what a new image costs), then further boxes on the cached embedding (what each further
click or box costs). Targets (issue 11): under 0.3 s for the first box and under 0.05 s for a further one, on 2 cores.

    OMP_NUM_THREADS=1 python benchmarks/sam_latency.py --out benchmarks/results/sam_latency.json

The network is the inference config's ``network_def`` (the small configuration) with the bundle's weights when
``bundles/sam/models/model.pt`` exists, else random weights (latency does not depend on them). Both paths go through
:py:class:`usgen_monai.engines.sam_predictor.PromptPredictor` (what an interactive client, such as a MONAI Label
server, calls): ``set_image`` + ``predict`` for the first box (cache cleared before each repeat), ``predict`` alone
for a further box; masks come back on the image's grid. Medians of ``--repeats`` timed runs after warm-up, per torch
thread count. The 1-minute load average is recorded, since other processes share the cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from monai.bundle import ConfigParser

from usgen_monai.data.simulator import UltrasoundSimulator
from usgen_monai.engines.sam_predictor import PromptPredictor
from usgen_monai.utils import write_json_atomic

BUNDLE = Path(__file__).resolve().parents[1] / "bundles" / "sam"
TARGETS = {"first_box_s": 0.3, "further_box_s": 0.05}


def _network() -> tuple[torch.nn.Module, str]:
    parser = ConfigParser()
    parser.read_config(str(BUNDLE / "configs" / "inference.json"))
    net = parser.get_parsed_content("network_def")
    weights = BUNDLE / "models" / "model.pt"
    if weights.is_file():
        net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return net.eval(), str(weights.relative_to(BUNDLE.parents[1]))
    return net.eval(), "random (no bundles/sam/models/model.pt)"


def _seconds(fn, repeats: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def measure(net: torch.nn.Module, image: np.ndarray, box: list[int], repeats: int) -> dict:
    predictor = PromptPredictor(net, reverse_indexing=False)

    def first_box():
        predictor.forget()
        predictor.set_image(image, key="image")
        predictor.predict(boxes=box)

    first = _seconds(first_box, repeats)
    predictor.set_image(image, key="image")
    rng = np.random.default_rng(0)
    jitter = [np.clip(np.asarray(box) + rng.integers(-8, 9, 4), 0, 255).tolist() for _ in range(repeats + 3)]
    boxes = iter(jitter)
    further = _seconds(lambda: predictor.predict(boxes=next(boxes)), repeats)
    masks, _ = predictor.predict(boxes=box)
    return {
        "first_box_s_median": round(statistics.median(first), 4),
        "first_box_s_all": [round(t, 4) for t in first],
        "further_box_s_median": round(statistics.median(further), 4),
        "further_box_s_all": [round(t, 4) for t in further],
        "mask_shape": list(masks.shape[-2:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", default="1,2", help="torch thread counts")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    net, weights = _network()
    sample = UltrasoundSimulator("fetal_head", size=(256, 256)).sample(seed=0)
    image = np.asarray(sample.image, dtype=np.float32)[None]
    mask = np.asarray(sample.mask) > 0  # the head (skull and brain)
    rows, cols = np.nonzero(mask) if mask.any() else (np.array([64, 192]), np.array([64, 192]))
    box = [int(cols.min()), int(rows.min()), int(cols.max()), int(rows.max())]
    report = {
        "benchmark": "sam_latency",
        "network": "bundles/sam/configs/inference.json network_def (small configuration)",
        "parameters": sum(p.numel() for p in net.parameters()),
        "weights": weights,
        "image": "simulated fetal_head B-mode, 256 x 256",
        "box": box,
        "repeats": args.repeats,
        "targets": TARGETS,
        "cpu_count": os.cpu_count(),
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "results": {},
    }
    for n in (int(t) for t in str(args.threads).split(",")):
        torch.set_num_threads(n)
        load = os.getloadavg()[0]
        with torch.no_grad():
            result = measure(net, image, box, args.repeats)
        result["load_average_1min_before"] = round(load, 2)
        result["meets_targets"] = (
            result["first_box_s_median"] < TARGETS["first_box_s"]
            and result["further_box_s_median"] < TARGETS["further_box_s"]
        )
        report["results"][f"{n}_threads"] = result
        print(f"{n} thread(s): first box {result['first_box_s_median']:.4f} s, further box "
              f"{result['further_box_s_median']:.4f} s (load average {load:.2f})", flush=True)  # fmt: skip
    if args.out:
        write_json_atomic(args.out, report)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
