"""CSG sampling: throughput against steps and resolution, latent vs pixel-space diffusion, and mask consistency of
few-step against 50-step DDIM with the shipped weights.

Throughput uses the bundle's architectures with random weights (speed does not depend on the weight values, so 128
and 256 are timed alike) and dual guidance (3 conditioned passes per step, batched). Pixel-space diffusion is the
same translator run on the image itself (1 channel at full resolution, a ControlNet without downsampling), i.e. what
the latent autoencoder saves. Mask consistency needs the shipped weights and segmenter (bundles/csg/models).

    python benchmarks/csg_sampling.py --threads 1 2 --out benchmarks/results/csg_sampling.json

Networks run in ``channels_last`` memory format with MONAI's fused attention (``use_flash_attention``), as the
inference config loads them; one contiguous run and one run with MONAI's default attention at the fewest steps give
the two ratios. ``--consistency-pairs 0`` skips the mask-consistency part. ``--threads`` lists torch intra-op thread
counts (2 = both cores of the project's machine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from monai.bundle import ConfigParser

from usgen_monai.data.simulator import UNIFIED_CLASSES
from usgen_monai.engines import DDIMSchedule, DualGuidance, LatentSampler, simulator_vocabulary
from usgen_monai.engines.evaluation import unified_target
from usgen_monai.metrics import segmentation_dice

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "bundles" / "csg" / "configs"


def _parser(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config([str(CONFIGS / "common.json"), str(CONFIGS / "inference.json")])
    parser.update({"bundle_root": str(REPO / "bundles" / "csg"), "progress": False, **overrides})
    return parser


def _conditions(translator, batch: int, size: int, vocab):
    label = torch.randint(0, len(UNIFIED_CLASSES), (batch, 1, size, size))
    semantic = torch.nn.functional.one_hot(label[:, 0], len(UNIFIED_CLASSES)).permute(0, 3, 1, 2).float()
    cat, sca = vocab.encode([{"preset": "breast", "finding": "benign", "gain_db": 0.0}] * batch)
    tokens = translator.encode_context(cat, sca, None)
    return {"semantic": semantic, "context": tokens}


@torch.no_grad()
def time_sampling(translator, decoder, latent_shape, size: int, steps: int, repeats: int) -> float:
    """Median seconds to sample one pair (batch 1, dual guidance, decode included)."""
    vocab = simulator_vocabulary()
    sampler = LatentSampler(DDIMSchedule(prediction_type="v_prediction"), translator, DualGuidance(2.0, 1.5),
                            decoder=decoder, latent_shape=latent_shape, num_inference_steps=steps)
    cond = _conditions(translator, 1, size, vocab)
    null = translator.null_conditions(cond)
    times = []
    for r in range(repeats + 1):
        start = time.perf_counter()
        sampler(conditions=cond, null_conditions=null, generator=torch.Generator().manual_seed(r))
        times.append(time.perf_counter() - start)
    return statistics.median(times[1:])


def throughput(args, threads: int) -> dict:
    torch.set_num_threads(threads)
    out = {}
    channels_last = {"memory_format": torch.channels_last}
    for size in args.sizes:
        latent = [3, size // 4, size // 4]
        parser = _parser(latent_shape=latent)
        translator = parser.get_parsed_content("translator_def").eval().to(**channels_last)
        autoencoder = parser.get_parsed_content("autoencoder_def").eval().to(**channels_last)
        for steps in args.steps:
            t = time_sampling(translator, autoencoder, latent, size, steps, args.repeats)
            out[f"latent_{size}_steps{steps}_pairs_per_s"] = round(1.0 / t, 3)
            print(threads, "threads", size, "latent", steps, round(1 / t, 3), flush=True)
        steps = min(args.steps)
        t_contiguous = time_sampling(
            translator.to(memory_format=torch.contiguous_format),
            autoencoder.to(memory_format=torch.contiguous_format),
            latent,
            size,
            steps,
            args.repeats,
        )
        out[f"channels_last_speedup_{size}_steps{steps}"] = round(
            t_contiguous * out[f"latent_{size}_steps{steps}_pairs_per_s"], 2
        )
        plain = _parser(latent_shape=latent, **{"translator_def#use_flash_attention": False})
        plain_translator = plain.get_parsed_content("translator_def").eval().to(**channels_last)
        autoencoder.to(**channels_last)
        t_plain = time_sampling(plain_translator, autoencoder, latent, size, steps, args.repeats)
        out[f"fused_attention_speedup_{size}_steps{steps}"] = round(
            t_plain * out[f"latent_{size}_steps{steps}_pairs_per_s"], 2
        )
        print(threads, "threads", size, "default attention", steps, round(1 / t_plain, 3), flush=True)
        if size not in args.pixel_sizes:
            continue
        # pixel space: the same translator on 1-channel full-resolution images, no autoencoder
        pixel = _parser(latent_shape=[1, size, size], latent_channels=1)
        pixel.update({"translator_def#conditioning_embedding_num_channels": [16], "context_encoder_def#image_channels": 0})
        pixel_translator = pixel.get_parsed_content("translator_def").eval().to(**channels_last)
        t_pixel = time_sampling(pixel_translator, None, [1, size, size], size, steps, max(1, args.repeats // 2))
        t_latent = 1.0 / out[f"latent_{size}_steps{steps}_pairs_per_s"]
        out[f"pixel_{size}_steps{steps}_pairs_per_s"] = round(1.0 / t_pixel, 3)
        out[f"latent_speedup_over_pixel_{size}"] = round(t_pixel / t_latent, 2)
        print(threads, "threads", size, "pixel", steps, round(1 / t_pixel, 3), flush=True)
    return out


def consistency(args) -> dict:
    torch.set_num_threads(max(args.threads))
    models = REPO / "bundles" / "csg" / "models"
    if args.consistency_pairs < 1:
        return {"skipped": "--consistency-pairs 0"}
    if not all((models / f).exists() for f in ("model.pt", "autoencoder.pt", "segmenter.pt")):
        return {"skipped": "no shipped weights in bundles/csg/models"}
    out = {}
    parser = _parser(mask_source="procedural", output_dir="/tmp/unused")
    parser.read_config([str(CONFIGS / n) for n in ("common.json", "inference.json", "evaluate.json")])
    parser.update({"bundle_root": str(REPO / "bundles" / "csg"), "progress": False, "mask_source": "procedural",
                   "output_dir": "/tmp/unused"})
    generator = parser.get_parsed_content("generator")
    segmenter = parser.get_parsed_content("segmenter").eval()
    base = [generator.plan(i, 777) for i in range(args.consistency_pairs)]
    for steps in (50, *[s for s in args.steps if s < 50]):
        records = []
        for r in base:
            r = json.loads(json.dumps(r))
            r["sampler"]["num_inference_steps"] = steps
            records.append(r)
        pairs = [generator.generate(r) for r in records]
        images = torch.stack([p.image[None] for p in pairs])
        maps = torch.stack([p.label[None] for p in pairs])
        presets = [p.context["preset"] for p in pairs]
        out[f"dice_steps{steps}"] = round(segmentation_dice(segmenter, images, unified_target(maps, presets)), 4)
        print("consistency", steps, out[f"dice_steps{steps}"], flush=True)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    p.add_argument("--steps", type=int, nargs="+", default=[50, 20, 8, 4])
    p.add_argument("--repeats", type=int, default=3)
    # pixel space at 256 runs out of memory here (23 GB): its attention levels see 128x128 and 64x64 tokens
    p.add_argument("--pixel-sizes", type=int, nargs="+", default=[128])
    p.add_argument("--consistency-pairs", type=int, default=24)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--out", default=None)
    args = p.parse_args()
    report = {
        "benchmark": "csg_sampling",
        "memory_format": "channels_last",
        "throughput": {f"threads_{n}": throughput(args, n) for n in args.threads},
        "mask_consistency": consistency(args),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}",
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
