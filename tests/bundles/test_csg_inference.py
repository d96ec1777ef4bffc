"""The CSG inference config: its networks are the training configs' networks, every ``_target_`` is a documented
callable, and ``monai.bundle run`` writes the pairs and the datalist for each mask source, context source and output
format, in-process, on tiny networks with 2 sampling steps."""

from __future__ import annotations

import json
import os
import pydoc
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ComponentLocator, ConfigParser
from monai.bundle import run as bundle_run
from PIL import Image

from usgen_monai.data.datasets import load_json_datalist
from usgen_monai.data.simulator import UNIFIED_CLASSES
from usgen_monai.engines import DDIMSchedule, sampling_constants, save_checkpoint, simulator_vocabulary
from usgen_monai.engines import file_sha256

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "bundles" / "csg" / "configs"
COMMON = CONFIGS / "common.json"
INFERENCE = CONFIGS / "inference.json"
#: the inference command's config files, common definitions first (as the bundle docs list them)
INFERENCE_FILES = [str(COMMON), str(INFERENCE)]

# 32x32 images, a 2-level autoencoder (16x16 latents), a 16x16 mask prior
TINY = {
    "autoencoder_def#channels": [8, 16],
    "autoencoder_def#attention_levels": [False, False],
    "autoencoder_def#norm_num_groups": 8,
    "context_encoder_def#embed_dim": 16,
    "context_encoder_def#image_hidden_channels": 8,
    "translator_def#channels": [8, 16],
    "translator_def#attention_levels": [False, True],
    "translator_def#num_head_channels": 8,
    "translator_def#norm_num_groups": 8,
    "translator_def#conditioning_embedding_num_channels": [8, 16],
    "mask_prior_def#channels": [16, 16],
    "mask_prior_def#attention_levels": [False, False],
    "mask_prior_def#norm_num_groups": 8,
}
SMALL_RUN = {"num_samples": 2, "num_inference_steps": 2, "few_step_steps": 2, "bank_size": 3, "progress": False}


def _config(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


def test_every_network_is_defined_once():
    """Networks, sizes, class names, paths and the vocabulary live in common.json; no other config redefines them
    (inference takes its image size from the translator checkpoint instead)."""
    common = _config("common.json")
    assert {"autoencoder_def", "translator_def", "spade_translator_def", "mask_prior_def", "segmenter_def",
            "context_encoder_def", "image_size", "latent_channels", "class_names"} <= set(common)  # fmt: skip
    for path in sorted(CONFIGS.glob("*.json")):
        if path.name in ("common.json", "metadata.json"):
            continue
        config = json.loads(path.read_text())
        # overrides that belong to one command: inference reads its image size from the checkpoint, multi-GPU
        # training puts each process on its own device
        allowed = {"inference.json": {"image_size"}, "multi_gpu_train.json": {"device"},
                   "multi_gpu_inference.json": {"device"}}.get(path.name, set())
        repeated = sorted(set(config) & set(common) - allowed)
        assert not repeated, f"{path.name} repeats {repeated} of common.json"
        defs = [k for k, v in config.items() if k.endswith("_def") and isinstance(v, dict)]
        assert defs in ([], ["discriminator_def"]), f"{path.name} defines networks {defs}"
    assert _config("inference.json")["network_def"] == "@translator_def"


def _targets(node):
    if isinstance(node, dict):
        if "_target_" in node:
            yield node["_target_"]
        for value in node.values():
            yield from _targets(value)
    elif isinstance(node, list):
        for value in node:
            yield from _targets(value)


def test_every_target_is_a_documented_public_callable():
    targets = sorted({t for path in CONFIGS.glob("*.json") for t in _targets(json.loads(path.read_text()))})
    assert "usgen_monai.engines.PairGenerator" in targets and "usgen_monai.data.PairWriter" in targets
    locator = ComponentLocator()
    for target in targets:
        if "." not in target:  # MONAI's short names ("Compose", "StatsHandler"), found as the config parser finds them
            module = locator.get_component_module_name(target)
            assert isinstance(module, str), f"{target}: no single MONAI component of that name ({module})"
            target = f"{module}.{target}"
        obj = pydoc.locate(target)
        assert callable(obj), target
        assert not any(part.startswith("_") for part in target.split(".")), target
        assert (obj.__doc__ or "").strip(), f"{target} has no docstring"
        # MONAI's own stack: PyTorch optimisers (as the model-zoo bundles use) and Ignite's progress bar
        assert target.startswith(("usgen_monai.", "monai.", "torch.optim.", "ignite.handlers.")), target
        if target.startswith("usgen_monai."):
            module, name = target.rsplit(".", 1)
            assert name in pydoc.locate(module).__all__, f"{target} is not in its module's __all__"


def test_ids_follow_the_model_zoo_order():
    keys = list(_config("common.json")) + list(_config("inference.json"))
    order = ["bundle_root", "dataset_dir", "device", "output_dir", "network_def", "network", "sampler", "writer",
             "generator", "initialize", "run"]  # fmt: skip
    assert [k for k in keys if k in order] == order
    assert keys[-2:] == ["initialize", "run"]
    # MONAI's ids mean MONAI's objects (an Inferer, an Ignite evaluator, post-transforms): this bundle has none
    assert not {"inferer", "postprocessing", "evaluator", "checkpointloader"} & set(keys)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Random tiny weights built from the inference config's own network definitions (with the TINY overrides)."""
    d = tmp_path_factory.mktemp("models")
    parser = ConfigParser()
    parser.read_config(INFERENCE_FILES)
    parser.update(TINY)
    vocab = simulator_vocabulary()
    torch.manual_seed(0)
    save_checkpoint(
        d / "autoencoder.pt",
        {"autoencoder": parser.get_parsed_content("autoencoder_def")},
        {"latent_scale_factor": 0.9, "image_size": [32, 32]},
    )
    save_checkpoint(
        d / "model.pt",
        {"translator": parser.get_parsed_content("translator_def")},
        sampling_constants(
            latent_scale_factor=0.9,
            scheduler=DDIMSchedule(prediction_type="v_prediction"),
            class_names=UNIFIED_CLASSES,
            context_vocabulary=vocab,
            image_size=[32, 32],
            latent_shape=[3, 16, 16],
            semantic_mode="controlnet",
        ),
    )
    refiner = parser.get_parsed_content("refiner_def")
    torch.nn.init.normal_(refiner.out.weight, std=0.05)  # not the identity an untrained refiner is
    save_checkpoint(d / "refiner.pt", {"refiner": refiner}, {"image_size": [32, 32]})
    save_checkpoint(
        d / "mask_prior.pt",
        {"mask_prior": parser.get_parsed_content("mask_prior_def")},
        sampling_constants(
            scheduler=DDIMSchedule(prediction_type="v_prediction", clip_sample=True),
            class_names=UNIFIED_CLASSES,
            context_vocabulary=vocab,
            image_size=[16, 16],
            condition_fields=["preset", "finding"],
        ),
    )
    return d


def _run(models: Path, out: Path, **overrides) -> list[dict]:
    bundle_run(
        config_file=INFERENCE_FILES,
        meta_file=str(CONFIGS / "metadata.json"),
        logging_file=False,
        bundle_root=str(REPO / "bundles" / "csg"),
        ckpt_dir=str(models),
        output_dir=str(out),
        **TINY,
        **{**SMALL_RUN, **overrides},
    )
    assert json.loads((out / "dataset.json").read_text())["synthetic"] is True
    return load_json_datalist(out / "datalist.json")


def test_default_run_writes_pairs_and_datalist(models, tmp_path):
    assert _config("inference.json")["mask_source"] == "procedural"  # the shipped default (see the bundle docs)
    items = _run(models, tmp_path / "out", mask_source="prior")
    assert sorted(os.listdir(tmp_path / "out")) == sorted(
        ["datalist.json", "dataset.json", "items"]
        + [f"sample_{i:06d}_{k}.png" for i in range(2) for k in ("image", "label")]
    )
    record = items[0]["provenance"]
    assert record["bundle_version"] == _config("metadata.json")["version"]
    assert record["checkpoints"] == {name: file_sha256(models / name) for name in ("model.pt", "autoencoder.pt",
                                                                                    "refiner.pt", "mask_prior.pt")}  # fmt: skip
    assert record["refiner"] == {"noise_channels": 4} and "refiner" in record["seeds"]
    assert record["mask_source"]["type"] == "prior" and record["context_image"]["type"] == "bank"
    assert record["guidance"]["semantic_scale"] == 2.0 and record["guidance"]["context_scale"] == 1.5
    assert (record["sampler"]["name"], record["sampler"]["num_inference_steps"], record["seed"]) == ("few_step", 2, 0)  # the default since 0.2.1
    assert [item["context"]["preset"] for item in items] == ["breast", "fetal_head"]  # presets cycle

    # regeneration through the config, as the module docstring of usgen_monai.engines.generation shows
    parser = ConfigParser()
    parser.read_config(INFERENCE_FILES)
    parser.update({**TINY, "bundle_root": str(REPO / "bundles" / "csg"), "ckpt_dir": str(models),
                   "mask_source": record["mask_source"]["type"], "few_step_steps": 50})  # fmt: skip
    pair = parser.get_parsed_content("generator").regenerate(items[1])
    with Image.open(items[1]["image"]) as im:
        np.testing.assert_array_equal(np.asarray(im), np.round(pair.image.double().numpy() * 255).astype(np.uint8))
    with Image.open(items[1]["label"]) as im:
        np.testing.assert_array_equal(np.asarray(im), pair.label.numpy())


def test_pairs_at_another_size_than_the_weights_were_trained_at(models, tmp_path):
    """``--image_size`` generates at another size (weights trained at 32x32 here, as 256 weights give 128 pairs):
    the latent grid scales, the record says the size and regenerates at it; a size the autoencoder cannot divide
    is refused by name."""
    items = _run(models, tmp_path / "out", image_size=[48, 64])
    with Image.open(items[0]["image"]) as im:
        assert im.size == (64, 48)  # PIL: (width, height)
    with Image.open(items[0]["label"]) as im:
        assert im.size == (64, 48)
    assert items[0]["provenance"]["image_size"] == [48, 64]
    parser = ConfigParser()
    parser.read_config(INFERENCE_FILES)
    parser.update({**TINY, "bundle_root": str(REPO / "bundles" / "csg"), "ckpt_dir": str(models),
                   "image_size": [48, 64], "few_step_steps": 2})  # fmt: skip
    pair = parser.get_parsed_content("generator").regenerate(items[0])
    with Image.open(items[0]["image"]) as im:
        np.testing.assert_array_equal(np.asarray(im), np.round(pair.image.double().numpy() * 255).astype(np.uint8))
    parser["image_size"] = [33, 64]
    with pytest.raises(RuntimeError) as error:
        parser.get_parsed_content("generator", lazy=False)
    assert "image_size [33, 64] must be divisible by 2" in str(error.value.__cause__)


def test_overrides_reach_the_pairs(models, tmp_path):
    items = _run(
        models,
        tmp_path / "out",
        preset="msk",
        finding="tendon_tear",
        mask_source="procedural",
        output_format="dicom",
        semantic_guidance=3.0,
        context_guidance=1.25,
        gain_db=6,
        finding_count=1,
        sampling="few_step",
        seed=5,
    )
    for item in items:
        assert (item["context"]["preset"], item["context"]["finding"], item["context"]["gain_db"]) == (
            "msk",
            "tendon_tear",
            6,
        )
        record = item["provenance"]
        assert record["guidance"]["semantic_scale"] == 3.0 and record["guidance"]["context_scale"] == 1.25
        assert record["mask_source"]["controls"] == {"count": 1} and record["seed"] == 5
        assert record["sampler"]["name"] == "few_step"
        assert pydicom.dcmread(item["image"])[0x0008, 0x001C].value == "YES"
        assert pydicom.dcmread(item["label_seg"]).Modality == "SEG"


def test_user_masks_and_context_image(models, tmp_path):
    first = _run(models, tmp_path / "first", mask_source="procedural", preset="breast")
    masks = tmp_path / "masks"
    masks.mkdir()
    for item in first:
        os.link(item["label"], masks / Path(item["label"]).name)
    (masks / "README.txt").write_text("my masks")
    items = _run(
        models,
        tmp_path / "out",
        masks=str(masks),
        context_image=first[0]["image"],
        output_format="nifti",
        num_samples=2,
    )
    manifest = json.loads((tmp_path / "out" / "dataset.json").read_text())
    assert [Path(s["file"]).name for s in manifest["skipped_masks"]] == ["README.txt"]
    for item, source in zip(items, first):
        assert Path(item["label"]).name.endswith("_label.nii.gz")
        with Image.open(source["label"]) as im:
            expected = np.asarray(im)
        np.testing.assert_array_equal(np.asarray(nib.load(item["label"]).dataobj).T, expected)  # the user's mask
        assert item["provenance"]["context_image"]["path"] == str(Path(first[0]["image"]).resolve())
        assert item["provenance"]["mask_source"]["type"] == "files"


def test_user_dataset_bank_and_binary_masks_without_anatomy(models, tmp_path):
    from usgen_monai.data.layouts import simulate_dataset

    busi = tmp_path / "busi"
    simulate_dataset(busi, preset="breast", num=4, layout="busi", size=(40, 40), seed=1)
    (busi / "benign" / "broken (9).png").write_bytes(b"junk")  # skipped by the bank, not fatal
    masks = tmp_path / "masks"
    masks.mkdir()
    mask = np.zeros((32, 32), np.uint8)
    mask[10:20, 12:22] = 255
    Image.fromarray(mask).save(masks / "lesion.png")
    items = _run(
        models, tmp_path / "out", dataset_dir=str(busi), masks=str(masks), preset="breast", mask_anatomy="none"
    )
    images = {str(p.resolve()) for p in busi.glob("*/*).png")} - {str((busi / "benign" / "broken (9).png").resolve())}
    lesion = UNIFIED_CLASSES.index("lesion")
    for item in items:
        context = item["provenance"]["context_image"]
        assert context["type"] == "bank" and context["dataset_dir"] == str(busi.resolve())
        assert context["path"] in images and context["sha256"] == file_sha256(context["path"])
        with Image.open(item["label"]) as im:
            np.testing.assert_array_equal(np.asarray(im), np.where(mask > 0, lesion, 0))  # no simulated anatomy
        assert item["provenance"]["mask_source"]["anatomy"] == "none"


def _torchrun_args(models: Path, out: Path, num_samples: int, master_port: int) -> list[str]:
    """The scale-out command (torchrun, 2 CPU processes) with the TINY models writing ``num_samples`` pairs to out."""
    overrides = {**TINY, **SMALL_RUN, "num_samples": num_samples, "bundle_root": str(REPO / "bundles" / "csg"),
                 "ckpt_dir": str(models), "output_dir": str(out)}  # fmt: skip
    args = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(master_port),
        "-m", "monai.bundle", "run",
        "--config_file", str(INFERENCE_FILES + [str(CONFIGS / "multi_gpu_inference.json")]),
        "--meta_file", str(CONFIGS / "metadata.json"),
    ]  # fmt: skip
    for key, value in overrides.items():
        args += [f"--{key}", value if isinstance(value, str) else repr(value)]  # Python literals, as fire reads them
    return args


def test_multi_process_generation_writes_what_one_process_writes(models, tmp_path):
    """torchrun with 2 CPU processes (gloo) shards the pairs by index; the files and the datalist are those of one
    process, and a rerun into the same folder keeps every pair."""
    single = _run(models, tmp_path / "single", num_samples=3)
    out = tmp_path / "sharded"
    args = _torchrun_args(models, out, num_samples=3, master_port=29519)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sharded = load_json_datalist(out / "datalist.json")
    assert [item["provenance"] for item in sharded] == [item["provenance"] for item in single]
    for a, b in zip(single, sharded):
        for key in ("image", "label"):
            assert Path(a[key]).read_bytes() == Path(b[key]).read_bytes()
    assert "rank 1 of 2" in proc.stdout + proc.stderr
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "kept 2 pair(s)" in proc.stdout + proc.stderr  # rank 0 holds pairs 0 and 2


def test_killed_multi_process_generation_resumes(models, tmp_path):
    """Both torchrun processes killed (SIGKILL, no cleanup) once a few pairs are written: a rerun into the same folder
    keeps those pairs, generates the rest and ends with exactly the files and datalist of one uninterrupted process."""
    num = 48
    single = _run(models, tmp_path / "single", num_samples=num)
    out = tmp_path / "sharded"
    args = _torchrun_args(models, out, num_samples=num, master_port=29521)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    items = out / "items"
    deadline = time.monotonic() + 600
    try:
        while not (items.is_dir() and len(os.listdir(items)) >= 4) and proc.poll() is None:
            assert time.monotonic() < deadline, "no pair written in 600 s"
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # torchrun and both ranks
        proc.wait()
    assert not (out / "datalist.json").exists(), "the run ended before it was killed: nothing was resumed"
    written = len(os.listdir(items))
    assert 0 < written < num
    proc = subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    kept = [int(n) for n in re.findall(r"kept (\d+) pair\(s\)", proc.stdout + proc.stderr)]
    assert kept and sum(kept) >= written - 2  # at most the pair each rank was writing when killed is redone
    sharded = load_json_datalist(out / "datalist.json")
    assert [item["provenance"] for item in sharded] == [item["provenance"] for item in single]
    for a, b in zip(single, sharded):
        for key in ("image", "label"):
            assert Path(a[key]).read_bytes() == Path(b[key]).read_bytes()
