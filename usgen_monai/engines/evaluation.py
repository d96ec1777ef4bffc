"""Evaluation of the CSG generator against (simulated) real images: mask consistency, realism, diversity and
controllability, as issue 4 defines them. The metric formulas are the pure functions of :py:mod:`usgen_monai.metrics`;
this module runs the generator and the segmenter to feed them."""

from __future__ import annotations

import copy
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from usgen_monai.data.simulator import PRESET_TARGETS, UNIFIED_CLASSES, UltrasoundSimulator, sample_seed
from usgen_monai.engines.context_sources import NoContextImageSource
from usgen_monai.engines.generation import PairGenerator
from usgen_monai.metrics import (
    classifier_two_sample_test,
    compare_speckle_statistics,
    context_effect,
    extract_features,
    frechet_distance,
    high_frequency_energy,
    mask_consistency,
    pairwise_ms_ssim,
    segmentation_dice,
)
from usgen_monai.utils import as_flag, module_device, to_uint8, write_json_atomic

__all__ = ["DownsamplingFeatures", "GeneratorEvaluation", "unified_target"]

logger = logging.getLogger(__name__)


def unified_target(label_maps: torch.Tensor, presets: Sequence[str]) -> torch.Tensor:
    """(N, 1, H, W) unified label maps -> binary targets of each sample's preset (lesion, head, tendon)."""
    out = torch.zeros_like(label_maps, dtype=torch.float32)
    for i, preset in enumerate(presets):
        ids = torch.tensor([UNIFIED_CLASSES.index(c) for c in PRESET_TARGETS[preset]], device=label_maps.device)
        out[i] = torch.isin(label_maps[i], ids).float()
    return out


class DownsamplingFeatures:
    """Feature function for the Fréchet distance: global-average-pooled activations of every strided (downsampling)
    convolution of a network, concatenated (a multi-scale texture and layout descriptor of a segmenter trained here).
    """

    def __init__(self, network: nn.Module) -> None:
        self.network = network
        self.layers = [m for m in network.modules() if isinstance(m, nn.Conv2d) and max(m.stride) > 1]
        if not self.layers:
            raise ValueError(f"{type(network).__name__} has no strided convolution to take features from.")

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        feats: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda _m, _i, o: feats.append(o.mean((2, 3)))) for m in self.layers]
        try:
            self.network(images)
        finally:
            for h in hooks:
                h.remove()
        return torch.cat(feats, dim=1)


class GeneratorEvaluation:
    """Runs the metrics of a :py:class:`~usgen_monai.engines.generation.PairGenerator` and writes them as JSON.

    Real images are simulated (the simulator is this project's stand-in for real data), with seeds that training
    never used.

    Args:
        generator: the pair generator (its mask source provides the conditioning masks).
        segmenter: binary segmenter trained on real images (logits, one channel), e.g. the bundle's ``segmenter.pt``.
        presets: presets evaluated.
        num_real: real images per preset.
        num_generated: generated pairs per preset (mask consistency, realism).
        num_diversity_masks: masks per preset for the diversity and controllability measurements (0 skips them, e.g.
            to compare models by mask consistency alone).
        samples_per_mask: generated images per mask for the diversity measurement.
        gain_db: (low, high) gain overrides for the controllability measurement, made with the sample's context
            image and without one (tabular context alone); the context image's own effect is measured with the
            darkest and the brightest image of the preset's context bank.
        seed: seeds the real images (offset far from training seeds) and the generated ones.
        output_dir: where ``metrics.json`` and a sample grid are written; None writes nothing.
        c2st_folds: folds of the classifier two-sample tests (0 skips them).
        c2st_epochs: training epochs of each fold's classifier.
        c2st_stage1: also test the stage-1 reconstructions (decoder, decoder + refiner) against real images; they do
            not depend on the sampler or the translator, so ``False`` halves the cost of comparing samplers.

    Realism, per preset: the classifier two-sample test (C2ST) ROC AUC of generated vs real images, with real vs
    other real images as its noise floor and the stage-1 reconstructions of real images vs real ones (what the
    autoencoder and the speckle refiner lose); the high-frequency energy (speckle) of generated images, of
    reconstructions and of the decoder's reconstructions before the refiner, over that of real images; speckle
    statistics per tissue class.
    """

    def __init__(
        self,
        generator: PairGenerator,
        segmenter: nn.Module,
        presets: Sequence[str] = ("breast", "fetal_head", "msk"),
        num_real: int = 32,
        num_generated: int = 32,
        num_diversity_masks: int = 4,
        samples_per_mask: int = 4,
        gain_db: tuple[float, float] = (-8.0, 8.0),
        seed: int = 12345,
        output_dir: str | os.PathLike | None = None,
        c2st_folds: int = 4,
        c2st_epochs: int = 30,
        c2st_stage1: bool = True,
    ) -> None:
        if num_diversity_masks > 0 and samples_per_mask < 2:
            raise ValueError(f"samples_per_mask must be >= 2 for pairwise diversity, got {samples_per_mask}.")
        self.generator = generator
        self.segmenter = segmenter.eval()
        self.presets = tuple(presets)
        self.num_real = int(num_real)
        self.num_generated = int(num_generated)
        self.num_diversity_masks = int(num_diversity_masks)
        self.samples_per_mask = int(samples_per_mask)
        self.gain_db = tuple(float(g) for g in gain_db)
        self.seed = int(seed)
        self.output_dir = Path(output_dir) if output_dir else None
        if c2st_folds == 1 or c2st_folds < 0:
            raise ValueError(f"c2st_folds must be 0 (skip) or >= 2, got c2st_folds={c2st_folds}.")
        self.c2st_folds = int(c2st_folds)
        self.c2st_epochs = int(c2st_epochs)
        self.c2st_stage1 = as_flag(c2st_stage1)

    def _real(self, preset: str, offset: int = 1_000_000):
        sim = UltrasoundSimulator(preset, size=self.generator.image_size)
        images, maps = [], []
        for i in range(self.num_real):
            s = sim.sample(seed=sample_seed(self.seed + offset, i))
            images.append(torch.from_numpy(s.image)[None])
            maps.append(torch.from_numpy(sim.to_unified(s.label).astype(np.int64))[None])
        return torch.stack(images), torch.stack(maps)

    def _generate(self, records) -> tuple[torch.Tensor, torch.Tensor]:
        pairs = [self.generator.generate(r) for r in records]
        return torch.stack([p.image[None] for p in pairs]), torch.stack([p.label[None] for p in pairs])

    def _contrasting_context_images(self, preset: str) -> list[tuple[dict, float]]:
        """``(request, mean intensity)`` of the darkest and the brightest image of the preset's context bank."""
        source = self.generator.context_source
        bank = source.bank(preset)
        pool = bank.candidates(preset=preset) if source.simulated else np.arange(len(bank))
        means = bank.images[pool].mean(dim=(1, 2, 3))
        picks = [int(pool[int(torch.argmin(means))]), int(pool[int(torch.argmax(means))])]
        return [(source.request(k, preset), float(bank.images[k].mean())) for k in picks]

    @torch.no_grad()
    def _reconstruct(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Stage-1 reconstructions of ``images``: the decoder's, and after the speckle refiner (the decoder's again
        without one), with seeded refiner noise."""
        autoencoder, refiner = self.generator.autoencoder, self.generator.refiner
        device = module_device(autoencoder)
        decoded, refined = [], []
        generator = torch.Generator().manual_seed(self.seed)
        for i in range(0, len(images), 8):
            x = autoencoder.reconstruct(images[i : i + 8].to(device)).clamp(0, 1).contiguous()
            decoded.append(x.cpu())
            if refiner is not None and self.generator.refine_speckle:
                x = refiner(x, torch.randn(refiner.noise_shape(x), generator=generator).to(device))
            refined.append(x.cpu())
        return torch.cat(decoded), torch.cat(refined)

    def _realism(self, preset: str, real: torch.Tensor, gen: torch.Tensor) -> dict[str, Any]:
        """C2ST AUCs and high-frequency energy ratios of generated and reconstructed images against real ones."""
        other_real, _ = self._real(preset, offset=2_000_000)
        decoded, reconstructed = self._reconstruct(other_real)
        real_energy = high_frequency_energy(real)
        out: dict[str, Any] = {
            "high_frequency_energy_real": real_energy,
            "high_frequency_energy_ratio": high_frequency_energy(gen) / real_energy,
            "reconstruction_high_frequency_energy_ratio": high_frequency_energy(reconstructed) / real_energy,
            "decoder_high_frequency_energy_ratio": high_frequency_energy(decoded) / real_energy,
        }
        if self.c2st_folds:
            settings = {"folds": self.c2st_folds, "epochs": self.c2st_epochs, "seed": self.seed}
            out["c2st_auc"] = classifier_two_sample_test(real, gen, **settings)
            out["c2st_auc_real_vs_real"] = classifier_two_sample_test(real, other_real, **settings)
            if self.c2st_stage1:
                out["c2st_auc_reconstruction"] = classifier_two_sample_test(real, reconstructed, **settings)
            if self.c2st_stage1 and self.generator.refine_speckle:  # the decoder's reconstructions alone
                out["c2st_auc_decoder"] = classifier_two_sample_test(real, decoded, **settings)
        return out

    def _records(self, preset: str, count: int, offset: int) -> list[dict]:
        return [self.generator.plan(offset + i, self.seed, presets=(preset,), finding=None) for i in range(count)]

    def _diversity_and_controllability(self, preset: str) -> dict[str, Any]:
        """MS-SSIM among samples of one mask (several noises and context images), and the effects of gain (with the
        sample's context image and without one) and of a dark vs bright context image, on the same masks."""
        base = self._records(preset, self.num_diversity_masks, 10_000)
        within, gain_low, gain_high, tabular_low, tabular_high, dark, bright = [], [], [], [], [], [], []
        contrast = self._contrasting_context_images(preset)
        for record in base:
            variants = []
            for j in range(self.samples_per_mask):
                r = copy.deepcopy(record)
                r["seeds"]["noise"] = sample_seed(record["sample_seed"], 100 + j)
                r["context_image"] = self.generator.context_source.plan(
                    j, sample_seed(record["sample_seed"], 200 + j), preset
                )
                variants.append(r)
            images, _ = self._generate(variants)
            within.append(pairwise_ms_ssim(images))
            for gain, with_image, without_image in zip(
                self.gain_db, (gain_low, gain_high), (tabular_low, tabular_high)
            ):
                r = copy.deepcopy(record)
                r["context_overrides"] = {**r.get("context_overrides", {}), "gain_db": gain}
                with_image.append(self._generate([r])[0])
                r["context_image"] = NoContextImageSource().plan(0, 0, preset)
                without_image.append(self._generate([r])[0])
            for (request, _), bucket in zip(contrast, (dark, bright)):
                r = copy.deepcopy(record)
                r["context_image"] = request
                bucket.append(self._generate([r])[0])
        return {
            "ms_ssim_within_mask": float(np.mean(within)),
            "gain_effect": context_effect(torch.cat(gain_low), torch.cat(gain_high)),
            "gain_effect_without_context_image": context_effect(torch.cat(tabular_low), torch.cat(tabular_high)),
            "context_image_effect": {
                **context_effect(torch.cat(dark), torch.cat(bright)),
                "context_image_means": [mean for _, mean in contrast],
            },
        }

    @torch.no_grad()
    def run(self) -> dict[str, Any]:
        results: dict[str, Any] = {"presets": {}}
        all_real, all_gen = [], []
        for preset in self.presets:
            logger.info(f"evaluating preset {preset}")
            real, real_maps = self._real(preset)
            records = self._records(preset, self.num_generated, 0)
            gen, gen_maps = self._generate(records)
            presets = [preset] * len(gen)
            consistency = mask_consistency(
                self.segmenter,
                gen,
                unified_target(gen_maps, presets),
                real,
                unified_target(real_maps, [preset] * len(real)),
            )
            speckle = compare_speckle_statistics(gen, gen_maps, real, real_maps, len(UNIFIED_CLASSES), UNIFIED_CLASSES)
            real_dice = segmentation_dice(self.segmenter, real, unified_target(real_maps, [preset] * len(real)))
            results["presets"][preset] = {
                **self._realism(preset, real, gen),
                "mask_consistency": consistency,
                "segmenter_dice_real": real_dice,
                "speckle_statistics": speckle,
                "ms_ssim_across_masks": pairwise_ms_ssim(gen[: max(2, min(len(gen), 16))]),
            }
            if self.num_diversity_masks > 0:
                results["presets"][preset].update(self._diversity_and_controllability(preset))
            all_real.append(real)
            all_gen.append(gen)
        features = DownsamplingFeatures(self.segmenter)
        real_f = extract_features(features, torch.cat(all_real))
        gen_f = extract_features(features, torch.cat(all_gen))
        results["frechet_distance_segmenter_features"] = frechet_distance(gen_f, real_f)
        results["frechet_distance_real_vs_real_halves"] = frechet_distance(real_f[::2], real_f[1::2])
        per = results["presets"].values()
        results["mask_consistency_ratio_mean"] = float(np.mean([p["mask_consistency"]["ratio"] for p in per]))
        logger.info(
            "mask consistency (generated / real Dice): "
            + ", ".join(f"{k} {v['mask_consistency']['ratio']:.3f}" for k, v in results["presets"].items())
            + "; C2ST AUC (0.5 = indistinguishable): "
            + ", ".join(f"{k} {v['c2st_auc']['auc']:.3f}" for k, v in results["presets"].items() if "c2st_auc" in v)
            + f"; Fréchet distance {results['frechet_distance_segmenter_features']:.3f} "
            f"(real vs real {results['frechet_distance_real_vs_real_halves']:.3f})"
        )
        if self.output_dir is not None:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self.output_dir / "metrics.json", results)
            self._figure(all_real, all_gen, results["presets"])
        return results

    def _figure(self, real: list[torch.Tensor], gen: list[torch.Tensor], metrics: dict[str, dict]) -> None:
        """Six real and six generated images per preset; with C2ST, the generated rows carry their AUC and the
        real rows the real-vs-real floor, so the figure shows how separable what it shows is."""
        from usgen_monai.visualize import image_grid, save_png

        rows, titles = [], []
        for preset, r, g in zip(self.presets, real, gen):
            c2st = metrics[preset]
            for name, x, key, label in (
                ("real (simulated)", r, "c2st_auc_real_vs_real", "real vs real"),
                ("generated", g, "c2st_auc", "C2ST"),
            ):
                tiles = [np.repeat(to_uint8(x[i, 0])[..., None], 3, -1) for i in range(min(6, len(x)))]
                rows.append(tiles)
                auc = f"\n{label} {c2st[key]['auc']:.2f}" if key in c2st else ""
                titles.append(f"{preset}\n{name}{auc}")
        save_png(image_grid(rows, titles), str(self.output_dir / "real_vs_generated.png"))
