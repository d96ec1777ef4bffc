"""ControlNet vs SPADE semantic conditioning, compared by mask consistency (issue 4's criterion for picking one).

Both translators are trained by ``bundles/csg/configs/train_diffusion.json`` with the same data, iterations and
settings (the SPADE one with ``--network_def @spade_translator_def --semantic_mode spade``); each is evaluated by
``evaluate.json`` on the same procedural masks (24 per preset, DDIM-50, default guidance) with the bundle's
segmenter. A model whose ``metrics.json`` is already in its evaluation folder is not evaluated again.

    OMP_NUM_THREADS=1 python benchmarks/csg_semantic_branch.py \
        --controlnet runs/controlnet_3000/model.pt --spade runs/spade_3000/model.pt \
        --out benchmarks/results/csg_semantic_branch.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from monai.bundle import run as bundle_run

from usgen_monai.engines import file_sha256

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "csg" / "configs"


def evaluate(model_path: str, network: str, global_context: bool, evaluation_dir: Path, num_generated: int) -> dict:
    metrics = evaluation_dir / "metrics.json"
    if not metrics.exists():
        definition = "translator_def" if network == "controlnet" else "spade_translator_def"
        start = time.perf_counter()
        bundle_run(
            config_file=[str(CONFIGS / n) for n in ("common.json", "inference.json", "evaluate.json")],
            meta_file=str(CONFIGS / "metadata.json"),
            logging_file=str(CONFIGS / "logging.conf"),
            bundle_root=str(REPO / "bundles" / "csg"),
            model_path=model_path,
            network_def=f"@{definition}",
            evaluation_dir=str(evaluation_dir),
            num_generated=num_generated,
            num_diversity_masks=0,
            progress=False,
            **{f"{definition}#global_context": global_context},
        )
        print(f"{network}: evaluated in {time.perf_counter() - start:.0f} s", flush=True)
    return json.loads(metrics.read_text())


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--controlnet", required=True, help="ControlNet translator checkpoint")
    p.add_argument("--spade", required=True, help="SPADE translator checkpoint")
    p.add_argument("--global_context", action="store_true", help="the checkpoints have the global context path")
    p.add_argument("--num_generated", type=int, default=24)
    p.add_argument("--work_dir", default="bundles/csg/eval/semantic_branch")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    report = {"benchmark": "csg_semantic_branch", "num_generated_per_preset": args.num_generated, "models": {}}
    for network, path in (("controlnet", args.controlnet), ("spade", args.spade)):
        m = evaluate(path, network, args.global_context, Path(args.work_dir) / network, args.num_generated)
        report["models"][network] = {
            "checkpoint_sha256": file_sha256(path),
            "mask_consistency_ratio_mean": m["mask_consistency_ratio_mean"],
            "presets": {k: v["mask_consistency"] for k, v in m["presets"].items()},
            "frechet_distance_segmenter_features": m["frechet_distance_segmenter_features"],
        }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
