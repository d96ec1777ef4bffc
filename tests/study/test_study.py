"""The study command: its protocol (one split, held-out test set, nested labelled sets), resumable cells, the report,
and tiny end-to-end runs on the simulator and on BUSI- and HC18-layout folders (bundles run in process)."""

import json
from pathlib import Path

import numpy as np
import pytest
from fire import parser as fire_parser
from PIL import Image

from usgen_monai.cli import main
from usgen_monai.data.layouts import simulate_dataset
from usgen_monai.study import (
    ARMS,
    Cell,
    StudySettings,
    bundle_command,
    labeled_subset,
    prepare_study_data,
    run_cell,
    run_study,
    summarize,
)

TINY = dict(
    labeled_sizes=(4,), seeds=(0,), image_size=64, segmenter_iterations=2, generator_iterations=1, num_synthetic=4,
    num_test=4, num_labeled_pool=6, num_unlabeled_pool=8, in_process=True,
)  # fmt: skip


def _images(items):
    return {i["image"] for i in items}


def test_simulator_split_is_recorded_disjoint_and_reread(tmp_path):
    settings = StudySettings(anatomies=("breast",), **TINY)
    data = prepare_study_data(tmp_path, settings)["breast"]
    assert (len(data.test), len(data.labeled_pool), len(data.unlabeled_pool)) == (4, 6, 8)
    assert not _images(data.test) & (_images(data.labeled_pool) | _images(data.unlabeled_pool))
    assert not _images(data.labeled_pool) & _images(data.unlabeled_pool)
    # the three parts come from different simulator seeds: no image is repeated across them
    pixels = [np.asarray(Image.open(p)).tobytes() for p in _images(data.test) | _images(data.unlabeled_pool)]
    assert len(set(pixels)) == len(pixels)
    recorded = json.loads((tmp_path / "split.json").read_text())
    assert all("label" not in i for i in recorded["anatomies"]["breast"]["unlabeled_pool"])  # masks never recorded
    # the record holds paths relative to the study folder, which can then move (or be committed) as a whole
    assert recorded["anatomies"]["breast"]["test"][0]["image"].startswith("data/breast/test/")
    again = prepare_study_data(tmp_path, settings)["breast"]
    assert again.test == data.test and again.labeled_pool == data.labeled_pool
    moved = tmp_path.parent / (tmp_path.name + "_moved")
    tmp_path.rename(moved)
    reread = prepare_study_data(moved, settings)["breast"]
    assert all(Path(i["image"]).is_file() and Path(i["label"]).is_file() for i in reread.test + reread.labeled_pool)
    assert [Path(i["image"]).name for i in reread.test] == [Path(i["image"]).name for i in data.test]
    moved.rename(tmp_path)
    with pytest.raises(ValueError, match="records the anatomies"):
        prepare_study_data(tmp_path, StudySettings(anatomies=("fetal_head",), **TINY))


def test_labeled_sets_are_nested_and_seeded(tmp_path):
    data = prepare_study_data(tmp_path, StudySettings(anatomies=("breast",), **TINY))["breast"]
    small, large = labeled_subset(data, 2, seed=0), labeled_subset(data, 5, seed=0)
    assert len(small) == 2 and len(large) == 5
    assert _images(small) <= _images(large)
    assert _images(labeled_subset(data, 5, seed=1)) != _images(large)
    with pytest.raises(ValueError, match="7 labelled pairs asked"):
        labeled_subset(data, 7, seed=0)


def test_user_hc18_masks_are_filled_and_split(tmp_path):
    simulate_dataset(tmp_path / "hc18", preset="fetal_head", num=12, layout="hc18", size=(64, 64), seed=3)
    settings = StudySettings(anatomies=("fetal_head",), **{**TINY, "labeled_sizes": (3,)})
    data = prepare_study_data(tmp_path / "out", settings, dataset_dir=tmp_path / "hc18")["fetal_head"]
    everything = data.test + data.labeled_pool + data.unlabeled_pool
    assert len(everything) == 12 and len(_images(everything)) == 12
    item = data.labeled_pool[0]
    mask = np.asarray(Image.open(item["label"]))
    image = Path(item["image"])
    outline = np.asarray(Image.open(image.with_name(image.stem + "_Annotation.png"))) > 0
    assert set(np.unique(mask)) <= {0, 1} and mask.shape == outline.shape
    assert mask[outline].all() and mask.sum() > 2 * outline.sum()  # filled, not the outline
    with pytest.raises(ValueError, match="one anatomy"):
        prepare_study_data(tmp_path / "o2", StudySettings(anatomies=("breast", "msk"), **TINY), tmp_path / "hc18")


def test_run_cell_keeps_results_and_reports_failures(tmp_path):
    cell = Cell("breast", 4, 0, "supervised")
    calls = []

    def fails(folder):
        calls.append(folder)
        raise RuntimeError("no such file")

    result = run_cell(cell, tmp_path, fails)
    assert result["error"] == "RuntimeError: no such file" and (cell.folder(tmp_path) / "error.json").is_file()
    result = run_cell(cell, tmp_path, lambda folder: {"dice": 0.5})  # retried, then kept
    assert result["dice"] == 0.5 and not (cell.folder(tmp_path) / "error.json").exists()
    assert run_cell(cell, tmp_path, fails)["dice"] == 0.5 and len(calls) == 1


def test_bundle_command_overrides_parse_back():
    overrides = {"max_epochs": 3, "presets": ["breast"], "image_size": [64, 64], "reset_semantic_branch": True,
                 "consistency_max_weight": 0.0, "dataset_dir": "/d/x.json", "train#optimizer#params": "$@n.f()"}  # fmt: skip
    command = bundle_command(["a.json", "b.json"], overrides)
    assert fire_parser.DefaultParseValue(command[command.index("--config_file") + 1]) == ["a.json", "b.json"]
    for key, value in overrides.items():
        assert fire_parser.DefaultParseValue(command[command.index(f"--{key}") + 1]) == value


def test_context_control_follows_the_recorded_masks_and_contexts(tmp_path):
    from usgen_monai.study.report import context_control, context_sweep_grid

    def png(name, value):
        array = np.full((16, 16), value, np.uint8)
        array[4:9, 4:9] = 255 if name.startswith("mask") else value
        Image.fromarray(array).save(tmp_path / name)
        return str(tmp_path / name)

    items = []
    for k, (mask, brightness) in enumerate([("mask_a.png", 40), ("mask_a.png", 200), ("mask_b.png", 120)]):
        items.append({"image": Path(png(f"gen_{k}.png", brightness // 2 + 10)).name,
                      "provenance": {"mask_source": {"path": png(mask, 0)},
                                     "context_image": {"path": png(f"ctx_{k}.png", brightness)}}})  # fmt: skip
    (tmp_path / "datalist.json").write_text(json.dumps({"training": items}))
    control = context_control(tmp_path / "datalist.json")
    assert control["num_pairs"] == 3 and control["brightness_correlation"] == pytest.approx(1.0)
    assert [len(v) for v in control["by_mask"].values()] == [2, 1]
    grid = context_sweep_grid(control["by_mask"], tmp_path / "sweep.png", side=16)
    assert grid is not None and Image.open(grid).size[1] > 16  # one row: the mask used with two contexts
    assert context_sweep_grid({"m": [("c", "i")]}, tmp_path / "none.png") is None


def test_summarize_mean_and_sd_over_seeds():
    cells = [{"anatomy": "breast", "arm": "unet", "num_labeled": 8, "seed": s, "dice": d, "iterations": 10}
             for s, d in enumerate([0.5, 0.7])]  # fmt: skip
    cells.append({"anatomy": "breast", "arm": "unet", "num_labeled": 8, "seed": 2, "error": "x"})
    (row,) = summarize(cells)
    assert row["dice_mean"] == pytest.approx(0.6) and row["dice_sd"] == pytest.approx(0.1414, abs=1e-4)
    assert (row["num_seeds"], row["num_failed"], row["iterations"]) == (2, 1, [10])


def test_study_on_the_simulator_end_to_end_and_resumes(tmp_path, monkeypatch):
    settings = StudySettings(anatomies=("breast",), **TINY)
    document = run_study(tmp_path, settings, progress=False)
    assert {c["arm"] for c in document["cells"]} == set(ARMS) and not document["failures"]
    for cell in document["cells"]:
        assert 0.0 <= cell["dice"] <= 1.0 and cell["iterations"] == 2
    (generator,) = document["generators"]
    synthetic = json.loads(Path(generator["datalist"]).read_text())
    assert synthetic["synthetic"] is True and len(synthetic["training"]) == 4
    (quality,) = document["generator_quality"]
    assert 0.0 <= quality["c2st_auc"] <= 1.0 and 0.0 <= quality["c2st_real_vs_real_auc"] <= 1.0
    assert quality["c2st_images_per_set"] == 4 and quality["high_frequency_ratio"] > 0
    assert quality["mask_consistency_images"] + quality["empty_conditioning_masks"] == 4
    assert 0.0 <= quality["mask_consistency_dice_real"] <= 1.0
    (summary,) = document["quality_summary"]
    assert summary["c2st_auc_mean"] == pytest.approx(quality["c2st_auc"])
    report = (tmp_path / "report.md").read_text()
    assert "## Generator fidelity" in report and "result(s) computed" in report
    assert "## Generator speed" in report and "s per generated pair" in report
    size = generator["image_size"]  # what the cell's generator learnt and wrote at, as the report says
    assert f"generators, {size} x {size}," in report
    assert "## Context control" in report and "brightness of each pair's context image" in report
    assert (tmp_path / "generator_speed.png").is_file()  # from the committed CSG sampling benchmark
    assert "| 4 |" in report and "mgcc_csg" in report and "held out from everything" in report
    assert (tmp_path / "dice_breast.png").is_file() and (tmp_path / "samples_breast.png").is_file()
    # a second run trains nothing: every finished cell is read back
    import usgen_monai.study.arms as arms

    monkeypatch.setattr(arms, "run_bundle", lambda *a, **k: pytest.fail("a finished cell was run again"))
    again = run_study(tmp_path, settings, progress=False)
    assert [c["dice"] for c in again["cells"]] == [c["dice"] for c in document["cells"]]
    runs = json.loads((tmp_path / "runs.json").read_text())
    assert [r["results_computed"] for r in runs] == [len(ARMS) + 2, 0]  # the arms, the generator, its fidelity


def test_study_workers_run_cell_groups_in_processes(tmp_path):
    settings = StudySettings(anatomies=("breast",), **{**TINY, "seeds": (0, 1), "arms": ("supervised",), "workers": 2})
    document = run_study(tmp_path, settings, progress=False)
    assert [(c["seed"], c["arm"]) for c in document["cells"]] == [(0, "supervised"), (1, "supervised")]
    assert not document["failures"] and all(0.0 <= c["dice"] <= 1.0 for c in document["cells"])
    sequential = run_study(tmp_path, StudySettings(anatomies=("breast",), **{**TINY, "seeds": (0, 1),
                                                   "arms": ("supervised",)}), progress=False)  # fmt: skip
    assert [c["dice"] for c in sequential["cells"]] == [c["dice"] for c in document["cells"]]  # read back


def test_segmenters_train_under_torchrun(tmp_path):
    # two CPU processes on gloo through the MGCC bundle's multi_gpu_train.json, one process per bundle run
    settings = StudySettings(anatomies=("breast",), **{**TINY, "arms": ("supervised",), "in_process": False,
                                                       "nproc_per_node": 2})  # fmt: skip
    document = run_study(tmp_path, settings, progress=False)
    (cell,) = document["cells"]
    assert not document["failures"] and 0.0 <= cell["dice"] <= 1.0
    log = (tmp_path / "cells" / "breast" / "n004" / "seed0" / "supervised" / "train.log").read_text()
    assert "torch.distributed.run" in log and "--nproc_per_node=2" in log and "multi_gpu_train.json" in log
    with pytest.raises(ValueError, match="no-in-process"):
        run_study(tmp_path / "x", StudySettings(anatomies=("breast",), **{**TINY, "nproc_per_node": 2}))


def test_quick_settings_are_the_documented_ones():
    quick = StudySettings.quick()
    assert quick.labeled_sizes == (8, 16) and quick.anatomies == ("breast", "fetal_head")
    assert {"supervised", "strong_augmentation", "mgcc_csg", "sam_real", "sam_csg"} == set(quick.arms)
    assert (quick.image_size, quick.simulator_image_size, quick.in_process, quick.sam_architecture) == (64, 128, True, "tiny")


@pytest.mark.parametrize(
    "layout,preset,arms", [("busi", "breast", "supervised,mgcc_csg"), ("hc18", "fetal_head", "mgcc_real,sam_csg")]
)
def test_study_command_on_user_folders(tmp_path, layout, preset, arms, capsys):
    simulate_dataset(tmp_path / "data", preset=preset, num=14, layout=layout, size=(64, 64), seed=5)
    argv = ["study", "--out", str(tmp_path / "out"), "--dataset-dir", str(tmp_path / "data"), "--anatomy", preset,
            "--labeled-sizes", "3", "--seeds", "0", "--arms", arms, "--image-size", "64",
            "--segmenter-iterations", "1", "--generator-iterations", "1", "--num-synthetic", "2", "--in-process"]  # fmt: skip
    assert main(argv) == 0
    assert "2 cell(s), 0 failed" in capsys.readouterr().out
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["split"][preset] == str((tmp_path / "data").resolve())
    assert {c["arm"] for c in results["cells"]} == set(arms.split(","))
    if layout == "hc18":  # HC18's pixel sizes reach the SAM bundle's head-circumference error (mm)
        (sam,) = [c for c in results["cells"] if c["arm"] == "sam_csg"]
        assert "hc_abs_error_mm" in sam or sam["dice"] == 0.0


def test_study_command_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["study", "--out", str(tmp_path), "--dataset-dir", str(tmp_path)])  # no --anatomy
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:  # a missing data set: a usage error naming it, not a traceback
        main(["study", "--out", str(tmp_path / "o"), "--dataset-dir", str(tmp_path / "nothing"), "--anatomy", "breast"])
    assert e.value.code == 2 and "nothing" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown SAM architecture 'vit_q'"):
        run_study(tmp_path / "y", StudySettings(anatomies=("breast",), **{**TINY, "sam_architecture": "vit_q"}))
    with pytest.raises(ValueError, match="segmenter_optimizer"):
        run_study(tmp_path / "z", StudySettings(anatomies=("breast",), **{**TINY, "segmenter_optimizer": "rmsprop"}))
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()  # refused before any data is made
    with pytest.raises(ValueError, match="unknown arm"):
        run_study(tmp_path / "x", StudySettings(anatomies=("breast",), **{**TINY, "arms": ("sam_magic",)}))


def test_device_reaches_every_bundle_run_and_a_missing_one_is_refused(tmp_path, monkeypatch):
    import torch

    from usgen_monai.study import arms

    seen, sizes, real_run_bundle = [], [], arms.run_bundle

    def recording(config_files, overrides, *args, **kwargs):
        seen.append((Path(config_files[-1]).name, (overrides or {}).get("device")))
        if Path(config_files[-1]).name == "train_diffusion.json":
            sizes.append(overrides["image_size"])
        return real_run_bundle(config_files, overrides, *args, **kwargs)

    monkeypatch.setattr(arms, "run_bundle", recording)
    settings = StudySettings(anatomies=("breast",), **{**TINY, "arms": ("supervised", "sam_csg"), "device": "cpu"})
    document = run_study(tmp_path / "cpu", settings, progress=False)
    assert not document["failures"] and len(seen) >= 4  # generator training and sampling, two arms
    assert {device for _, device in seen} == {"$torch.device('cpu')"}, seen
    # the cell's generator learns at the simulated images' size, not at the CSG bundle's default (256)
    assert sizes == [[64, 64]]
    with pytest.raises(ValueError, match="not a device torch knows"):
        run_study(tmp_path / "bad", StudySettings(anatomies=("breast",), **{**TINY, "device": "gpu0"}))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA device on this machine"):
            run_study(tmp_path / "cuda", StudySettings(anatomies=("breast",), **{**TINY, "device": "cuda:0"}))
    assert not (tmp_path / "bad").exists() and not (tmp_path / "cuda").exists()


def test_sam_arms_fine_tune_a_given_checkpoint(tmp_path):
    import torch

    from usgen_monai.networks import build_sam

    start = build_sam("tiny")
    checkpoint = tmp_path / "foundation.pt"
    torch.save(start.state_dict(), checkpoint)
    settings = StudySettings(anatomies=("breast",), **{**TINY, "arms": ("sam_real",), "sam_architecture": "tiny",
                                                       "sam_checkpoint": str(checkpoint)})  # fmt: skip
    document = run_study(tmp_path / "out", settings, progress=False)
    assert not document["failures"]
    tuned = torch.load(tmp_path / "out" / "cells" / "breast" / "n004" / "seed0" / "sam_real" / "model.pt",
                       weights_only=True)  # fmt: skip
    # the bundle's fine-tuning of a checkpoint: image and prompt encoders frozen, mask decoder trained
    encoder = [k for k in tuned if k.startswith("image_encoder.")]
    assert encoder and all(torch.equal(tuned[k], start.state_dict()[k]) for k in encoder)
    decoder = [k for k in tuned if k.startswith("mask_decoder.") and tuned[k].is_floating_point()]
    assert any(not torch.equal(tuned[k], start.state_dict()[k]) for k in decoder)
    assert "fine-tuned from `foundation.pt`" in (tmp_path / "out" / "report.md").read_text()
    # sam_train_mode full: the encoders learn as well
    full = StudySettings(anatomies=("breast",), **{**TINY, "arms": ("sam_real",), "sam_architecture": "tiny",
                                                   "sam_checkpoint": str(checkpoint), "sam_train_mode": "full",
                                                   "sam_synthetic_fraction": 0.25})  # fmt: skip
    assert not run_study(tmp_path / "full", full, progress=False)["failures"]
    command = (tmp_path / "full" / "cells" / "breast" / "n004" / "seed0" / "sam_real" / "train.log").read_text()
    assert "--synthetic_fraction 0.25" in command.splitlines()[0]
    tuned = torch.load(tmp_path / "full" / "cells" / "breast" / "n004" / "seed0" / "sam_real" / "model.pt",
                       weights_only=True)  # fmt: skip
    assert any(not torch.equal(tuned[k], start.state_dict()[k]) for k in encoder if tuned[k].is_floating_point())
    assert "all of it trained" in (tmp_path / "full" / "report.md").read_text()
    assert "`sam_csg` draws 25% of each batch from synthetic pairs" in (tmp_path / "full" / "report.md").read_text()
    with pytest.raises(ValueError, match="no such file"):
        run_study(tmp_path / "x", StudySettings(anatomies=("breast",), **{**TINY, "sam_checkpoint": str(tmp_path / "no.pt")}))
    with pytest.raises(ValueError, match="sam_train_mode must be"):
        run_study(tmp_path / "y", StudySettings(anatomies=("breast",), **{**TINY, "sam_train_mode": "encoder"}))
    with pytest.raises(ValueError, match="sam_synthetic_fraction must lie between 0 and 1"):
        run_study(tmp_path / "z", StudySettings(anatomies=("breast",), **{**TINY, "sam_synthetic_fraction": 1.5}))
