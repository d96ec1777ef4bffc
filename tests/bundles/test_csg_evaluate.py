"""evaluate.json (an overlay on common.json + inference.json) computes every metric of issue 4 on tiny networks."""

from __future__ import annotations

import json

from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run

from tests.bundles.test_csg_inference import CONFIGS, INFERENCE_FILES, REPO, TINY, models  # noqa: F401 (fixture)
from usgen_monai.engines import save_checkpoint

EVALUATE = CONFIGS / "evaluate.json"


SEGMENTER = {"segmenter_def#channels": [4, 4, 4, 4]}


def _evaluate(models, out, **overrides) -> dict:  # noqa: F811 (the fixture, passed on)
    """evaluate.json on the tiny models (a random tiny segmenter), 2 sampling steps; returns metrics.json."""
    parser = ConfigParser()
    parser.read_config([*INFERENCE_FILES, str(EVALUATE)])
    parser.update({**TINY, **SEGMENTER})
    save_checkpoint(models / "segmenter.pt", {"segmenter": parser.get_parsed_content("segmenter_def")},
                    {"image_size": [32, 32]})  # fmt: skip
    bundle_run(
        config_file=[*INFERENCE_FILES, str(EVALUATE)],
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        bundle_root=str(REPO / "bundles" / "csg"),
        ckpt_dir=str(models),
        output_dir=str(out.parent / "unused"),
        evaluation_dir=str(out),
        num_real=4,
        num_generated=4,
        c2st_folds=2,
        c2st_epochs=1,
        num_inference_steps=2,
        progress=False,
        **{**TINY, **SEGMENTER, **overrides},
    )
    return json.loads((out / "metrics.json").read_text())


def test_evaluate_overlay_writes_all_metrics(models, tmp_path):  # noqa: F811
    out = tmp_path / "eval"
    metrics = _evaluate(models, out, num_diversity_masks=2, samples_per_mask=2, bank_size=3,
                        evaluation_presets=["breast", "msk"])  # fmt: skip
    assert set(metrics["presets"]) == {"breast", "msk"}
    for preset in ("breast", "msk"):
        m = metrics["presets"][preset]
        assert {"dice_generated", "dice_real", "ratio"} <= set(m["mask_consistency"])
        assert 0 <= m["ms_ssim_within_mask"] <= 1 and 0 <= m["ms_ssim_across_masks"] <= 1
        assert {"mean_a", "mean_b", "effect_size"} <= set(m["gain_effect"])
        assert {"mean_a", "mean_b", "effect_size"} <= set(m["gain_effect_without_context_image"])
        dark, bright = m["context_image_effect"]["context_image_means"]
        assert dark < bright  # the darkest and the brightest image of the bank
        assert m["speckle_statistics"], "no class in common between generated and real images"
        for key in ("c2st_auc", "c2st_auc_real_vs_real", "c2st_auc_reconstruction", "c2st_auc_decoder"):
            assert 0 <= m[key]["auc"] <= 1 and len(m[key]["aucs"]) == 2, key
        assert m["high_frequency_energy_ratio"] > 0 and m["reconstruction_high_frequency_energy_ratio"] > 0
    assert metrics["frechet_distance_segmenter_features"] >= 0
    assert (out / "real_vs_generated.png").stat().st_size > 0


def test_mask_consistency_alone_compares_models(models, tmp_path):  # noqa: F811
    metrics = _evaluate(models, tmp_path / "eval", num_diversity_masks=0, samples_per_mask=1, bank_size=2,
                        evaluation_presets=["msk"])["presets"]["msk"]  # fmt: skip
    assert {"dice_generated", "dice_real", "ratio"} <= set(metrics["mask_consistency"])
    assert "gain_effect" not in metrics and "ms_ssim_within_mask" not in metrics


def test_samplers_compare_without_the_stage1_tests(models, tmp_path):  # noqa: F811
    """``--c2st_stage1 false``: generated vs real and its floor only (stage 1 does not depend on the sampler)."""
    metrics = _evaluate(models, tmp_path / "eval", num_diversity_masks=0, samples_per_mask=1, bank_size=2,
                        evaluation_presets=["msk"], c2st_stage1="false")["presets"]["msk"]  # fmt: skip
    assert {"c2st_auc", "c2st_auc_real_vs_real"} <= set(metrics)
    assert not {"c2st_auc_reconstruction", "c2st_auc_decoder"} & set(metrics)
