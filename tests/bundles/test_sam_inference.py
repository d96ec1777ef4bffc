"""The SAM bundle's inference config and model-zoo checks: the command-line contract with a prompts list (several
items on one image, boxes, points, both; bad items reported and skipped), masks on the original grid checked against
the interactive predictor, the cached embedding, a MONAI datalist dict with DICOM input and DICOM SEG / NIfTI
output, automatic prompts from a (temporary) MGCC bundle, the message without weights, a published ViT-B checkpoint
layout loaded through ``--checkpoint``, metadata and ids."""

from __future__ import annotations

import json
import os
import pydoc
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ComponentLocator, ConfigParser
from monai.bundle import run as bundle_run
from PIL import Image

from tests.dicom_factory import build_variant
from usgen_monai.engines.sam_inference import AutoBoxPromptd
from usgen_monai.engines.sam_predictor import PromptPredictor

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "sam"
CONFIGS = BUNDLE / "configs"
INFERENCE = CONFIGS / "inference.json"
TINY = {"architecture": "tiny"}  # 64 px model frame


def _config(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


def _parser(**overrides) -> ConfigParser:
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    parser.update({**TINY, **overrides})
    return parser


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """Random tiny weights of the inference config's own network definition, saved as training writes them."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("sam_models") / "model.pt"
    torch.save(_parser().get_parsed_content("network_def").state_dict(), path)
    return path


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> Path:
    """A wide grey PNG (40 rows x 60 columns), a tall colour PNG, a NIfTI and an ultrasound DICOM (48 x 64)."""
    d = tmp_path_factory.mktemp("sam_images")
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 120, (40, 60), dtype=np.uint8)
    wide[8:30, 10:35] = 230  # something to point at
    Image.fromarray(wide).save(d / "wide.png")
    Image.fromarray(rng.integers(0, 255, (50, 30, 3), dtype=np.uint8)).save(d / "tall.png")
    nib.save(nib.Nifti1Image(rng.random((26, 14)).astype(np.float32), np.diag([0.2, 0.3, 1, 1])), d / "scan.nii.gz")
    build_variant("mono2_explicit", d)
    return d


def _infer(model_path: Path, out: Path, **overrides) -> dict:
    bundle_run(config_file=str(INFERENCE), logging_file=False, output_dir=str(out), model_path=str(model_path),
               progress=False, **TINY, **overrides)  # fmt: skip
    return json.loads((out / "inference_summary.json").read_text())


def _predictor_masks(model_path: Path, image: Path, **prompts) -> np.ndarray:
    """The interactive predictor's mask (rows x columns) for one prompt: the reference the bundle must match."""
    net = _parser().get_parsed_content("network_def")
    net.load_state_dict(torch.load(model_path, weights_only=True))
    pixels = np.asarray(Image.open(image).convert("L"), dtype=np.float32)
    pixels = (pixels - pixels.min()) / (pixels.max() - pixels.min())  # ScaleIntensityd
    predictor = PromptPredictor(net.eval(), reverse_indexing=False)
    predictor.set_image(pixels[None])
    masks, _ = predictor.predict_prompts(**prompts)
    return masks[0].numpy()


def test_command_line_contract_with_a_prompts_list(images, model_path, tmp_path):
    prompts = [
        {"image": "wide.png", "roi": [10, 8, 34, 29]},
        {"image": "wide.png", "foreground": [[20, 15]], "background": [[50, 35]]},  # points only, same image
        {"image": "wide.png", "roi": [5, 5, 40, 30], "foreground": [[20, 15]]},  # both
        {"image": "tall.png", "roi": [2, 3, 25, 44]},
        {"image": "wide.png", "roi": [10, 8, 70, 29]},  # outside the image (60 columns)
        {"image": "wide.png", "roi": [30, 8, 30, 29]},  # an empty box
        {"roi": [1, 2, 3, 4]},  # malformed: no image
        {"image": "tall.png"},  # no prompt, and no MGCC weights in the bundle folder given
    ]
    shutil.copy(images / "wide.png", tmp_path / "wide.png")
    shutil.copy(images / "tall.png", tmp_path / "tall.png")
    (tmp_path / "prompts.json").write_text(json.dumps(prompts))
    out = tmp_path / "out"
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(INFERENCE),
            "--datalist", str(tmp_path / "prompts.json"), "--output_dir", str(out), "--model_path", str(model_path),
            "--progress", "false", "--auto_prompt_bundle", str(tmp_path / "no_mgcc"),
            "--architecture", "tiny"]  # fmt: skip
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "segmented 4 of 8 input(s)" in proc.stdout + proc.stderr
    summary = json.loads((out / "inference_summary.json").read_text())
    assert [r["item"] for r in summary["succeeded"]] == [0, 1, 2, 3]
    names = [Path(r["outputs"][0]).name for r in summary["succeeded"]]
    assert names == ["wide_item0_seg.png", "wide_item1_seg.png", "wide_item2_seg.png", "tall_item3_seg.png"]
    for record, prompt in zip(summary["succeeded"], prompts):
        written = np.asarray(Image.open(record["outputs"][0])) > 0
        assert written.shape == tuple(record["shape"]) == np.asarray(Image.open(tmp_path / prompt["image"])).shape[:2]
        reference = _predictor_masks(model_path, tmp_path / prompt["image"],
                                     **{k: v for k, v in prompt.items() if k != "image"})  # fmt: skip
        np.testing.assert_array_equal(written, reference)  # same mask, same grid, same orientation
    failed = {r["item"]: r["reason"] for r in summary["failed"]}
    assert summary["num_failed"] == 4 and sorted(failed) == [4, 5, 6, 7]
    assert "wide.png" in failed[4] and "outside the image of width 60 and height 40" in failed[4]
    assert "wide.png" in failed[5] and "empty box" in failed[5]
    assert "prompts.json item 6" in failed[6] and "no 'image'" in failed[6]
    assert "tall.png" in failed[7] and "no prompt given" in failed[7] and "model.pt" in failed[7]


def test_items_on_one_image_share_its_embedding(images, model_path, tmp_path):
    items = [{"image": str(images / "wide.png"), "roi": [4 * k, 2, 30 + 4 * k, 30]} for k in range(3)]
    items.append({"image": str(images / "tall.png"), "roi": [2, 3, 25, 44]})
    items.append({"image": str(images / "wide.png"), "foreground": [[20, 15]]})
    parser = _parser(model_path=str(model_path), output_dir=str(tmp_path), progress=False)
    summary = parser.get_parsed_content("inference").run(items)
    inferer = parser.get_parsed_content("inferer")
    assert summary.total == 5 and not summary.failed
    assert (inferer.misses, inferer.hits) == (2, 3)  # the image encoder ran once per image
    masks = [np.asarray(Image.open(r["outputs"][0])) for r in summary.succeeded]
    assert not np.array_equal(masks[0], masks[2])  # other boxes, other masks, none overwritten
    assert len({r["outputs"][0] for r in summary.succeeded}) == 5


def test_datalist_dict_with_dicom_input_dicom_seg_and_nifti_output(images, model_path, tmp_path):
    datalist = {"test": [{"image": str(images / "mono2_explicit.dcm"), "roi": [10, 10, 50, 40]},
                         {"image": str(images / "scan.nii.gz"), "foreground": [[5, 10]]}]}  # fmt: skip
    (tmp_path / "datalist.json").write_text(json.dumps(datalist))
    summary = _infer(model_path, tmp_path / "seg", datalist=str(tmp_path / "datalist.json"), output_format="dicom")
    assert summary["num_succeeded"] == 2
    dicom = summary["succeeded"][0]
    assert dicom["shape"] == [48, 64] and dicom["format"] == "dicom"  # the DICOM's own grid (region crop not applied)
    seg = pydicom.dcmread(dicom["outputs"][0])
    source = pydicom.dcmread(images / "mono2_explicit.dcm", stop_before_pixels=True)
    refs = [r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence]
    assert refs == [source.SOPInstanceUID] and seg.SegmentSequence[0].SegmentLabel == "object"
    assert Path(dicom["outputs"][0]).name == "mono2_explicit_item0_seg.dcm"
    summary = _infer(model_path, tmp_path / "nii", datalist=str(tmp_path / "datalist.json"), output_format="nifti")
    nifti = summary["succeeded"][1]["outputs"][0]
    assert Path(nifti).name == "scan_item1_seg.nii.gz" and nib.load(nifti).shape[:2] == (26, 14)


def _mgcc_bundle(root: Path, head_bias: float) -> Path:
    """A copy of the MGCC bundle's configs with random weights whose main decoder's output is biased to all
    foreground (+) or all background (-)."""
    bundle = root / "mgcc"
    shutil.copytree(REPO / "bundles" / "mgcc" / "configs", bundle / "configs")
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    torch.manual_seed(0)
    state = parser.get_parsed_content("network_def").state_dict()
    state["main_decoder.head.bias"].fill_(head_bias)
    (bundle / "models").mkdir()
    torch.save(state, bundle / "models" / "model.pt")
    return bundle


def test_auto_prompts_from_the_mgcc_bundle(images, model_path, tmp_path):
    everything = _mgcc_bundle(tmp_path / "full", 50.0)
    items = [{"image": str(images / "wide.png")}, {"image": str(images / "tall.png"), "roi": [2, 3, 25, 44]}]
    (tmp_path / "prompts.json").write_text(json.dumps(items))
    summary = _infer(model_path, tmp_path / "out", datalist=str(tmp_path / "prompts.json"),
                     auto_prompt_bundle=str(everything))  # fmt: skip
    assert summary["num_succeeded"] == 2
    written = np.asarray(Image.open(summary["succeeded"][0]["outputs"][0])) > 0
    reference = _predictor_masks(model_path, images / "wide.png", roi=[0, 0, 59, 39])  # MGCC's box: the whole image
    np.testing.assert_array_equal(written, reference)
    auto = AutoBoxPromptd(everything, margin=0)
    assert auto({"image": str(images / "wide.png")})["roi"] == [0, 0, 59, 39]
    assert auto({"image": "unused.png", "foreground": [[1, 1]]}) == {"image": "unused.png", "foreground": [[1, 1]]}
    with pytest.raises(ValueError, match="found nothing to box"):
        AutoBoxPromptd(_mgcc_bundle(tmp_path / "empty", -50.0))({"image": str(images / "wide.png")})
    with pytest.raises(ValueError, match="automatic prompts are off"):
        AutoBoxPromptd("")({"image": str(images / "wide.png")})
    # the weights rule is the bundle loader's: TorchScript alone (as MONAI Deploy ships it) is enough
    scripted_only = tmp_path / "scripted" / "mgcc"
    shutil.copytree(everything / "configs", scripted_only / "configs")
    (scripted_only / "models").mkdir()
    assert not AutoBoxPromptd(scripted_only).available
    (scripted_only / "models" / "model.ts").write_bytes(b"")
    assert AutoBoxPromptd(scripted_only).available and AutoBoxPromptd(scripted_only).weights.name == "model.ts"
    # without any prompt file: every image of a folder, prompted automatically
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(images / "wide.png", folder / "wide.png")
    summary = _infer(model_path, tmp_path / "out_folder", dataset_dir=str(folder), auto_prompt_bundle=str(everything))
    assert summary["num_succeeded"] == 1 and Path(summary["succeeded"][0]["outputs"][0]).name == "wide_item0_seg.png"


def test_without_weights_inference_names_the_file_and_the_train_command(tmp_path):
    with pytest.raises(Exception) as raised:
        _parser(model_path=str(tmp_path / "models" / "model.pt")).get_parsed_content("network")
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    message = " ".join(chain)
    assert str(tmp_path / "models" / "model.pt") in message and "configs/train.json" in message
    assert "--checkpoint" in message


def test_a_published_vit_b_checkpoint_loads_through_the_config(tmp_path):
    """The published files are ``torch.save(sam.state_dict())`` of ``segment_anything``'s ViT-B (no forward here:
    ViT-B at 1024 px is slow on 2 cores; tests/networks/test_sam.py runs the architecture)."""
    from segment_anything import sam_model_registry

    torch.manual_seed(0)
    published = sam_model_registry["vit_b"]()
    path = tmp_path / "sam_vit_b_01ec64.pth"
    torch.save(published.state_dict(), path)
    keys = ("image_encoder.patch_embed.proj.weight", "image_encoder.blocks.11.mlp.lin2.bias",
            "prompt_encoder.point_embeddings.0.weight", "mask_decoder.iou_prediction_head.layers.2.weight")  # fmt: skip
    expected = {k: published.state_dict()[k].clone() for k in keys}
    del published
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    parser.update({"architecture": "vit_b", "checkpoint": str(path), "model_path": str(tmp_path / "absent.pt")})
    network = parser.get_parsed_content("network")
    assert parser.get_parsed_content("image_size") == 1024 and not network.training
    state = network.state_dict()
    for key, value in expected.items():
        torch.testing.assert_close(state[key], value, rtol=0, atol=0)
    del network, state
    # a checkpoint of another size: the error names the file and the keys
    parser = _parser(architecture="small", checkpoint=str(path))
    with pytest.raises(Exception) as raised:
        parser.get_parsed_content("network")
    error = raised.value
    while error.__cause__ is not None:
        error = error.__cause__
    assert str(path) in str(error) and "keys" in str(error) and "vit_b" in str(error)


def test_network_in_and_out_match_the_metadata(model_path):
    """MONAI's ``verify_net_in_out`` calls ``net(image)`` and expects one tensor; a promptable model needs a prompt
    and returns (logits, IoU), so this test does the same check with a box (see the bundle README)."""
    meta = _config("metadata.json")["network_data_format"]
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    net = parser.get_parsed_content("network_def").eval()  # the shipped small configuration, built without a file
    size = meta["inputs"]["image"]["spatial_shape"]
    assert parser.get_parsed_content("image_size") == size[0] == size[1]
    with torch.no_grad():
        logits, iou = net(torch.rand(2, meta["inputs"]["image"]["num_channels"], *size),
                          boxes=torch.tensor([[[10.0, 20, 90, 120]], [[5, 5, 60, 50]]]))  # fmt: skip
    assert tuple(logits.shape) == (
        2,
        1,
        meta["outputs"]["pred"]["num_channels"],
        *meta["outputs"]["pred"]["spatial_shape"],
    )
    assert tuple(iou.shape) == (2, 1, 1)


def test_train_and_inference_define_the_same_network():
    train, inference, meta = _config("train.json"), _config("inference.json"), _config("metadata.json")
    for key in ("network_def", "architecture", "image_size"):
        assert train[key] == inference[key], key
    assert inference["label_classes"] == train["constants"]["channel_def"] == meta["network_data_format"]["outputs"][
        "pred"]["channel_def"]  # fmt: skip


def test_metadata_and_ids_follow_the_model_zoo():
    meta = _config("metadata.json")
    assert meta["version"] == next(iter(meta["changelog"])) and "0.1.0" in meta["changelog"]  # newest entry first
    inputs = meta["network_data_format"]["inputs"]
    assert set(inputs) == {"image", "boxes", "points"} and list(meta["network_data_format"]["outputs"]) == ["pred"]
    for fmt in (inputs["image"], meta["network_data_format"]["outputs"]["pred"]):
        assert fmt["modality"] == "US" and len(fmt["spatial_shape"]) == 2
    assert "roi" in inputs["boxes"]["format"] and "foreground" in inputs["points"]["format"]
    assert all(isinstance(v, (int, float)) for v in meta["eval_metrics"].values())  # measured numbers only
    assert "segment-anything" in meta["required_packages_version"]
    keys = list(_config("inference.json"))
    order = ["bundle_root", "output_dir", "dataset_dir", "device", "network_def", "network", "preprocessing",
             "inferer", "postprocessing", "initialize", "run"]  # fmt: skip
    assert [k for k in keys if k in order] == order
    parser = ConfigParser()
    parser.read_config(str(CONFIGS / "train.json"))
    for item in ("train#trainer", "train#dataset#data", "train#handlers", "validate#dataset#data", "network_def"):
        assert parser.get(item) is not None, item  # what MONAI Label's bundle train task sets and reads
    assert (BUNDLE / "LICENSE").read_text() == (REPO / "bundles" / "csg" / "LICENSE").read_text()
    readme = (BUNDLE / "docs" / "README.md").read_text()
    for section in ("Model Overview", "Data", "Training configuration", "Performance", "MONAI Bundle Commands",
                    "References", "License"):  # fmt: skip
        assert f"## {section}" in readme, section
    assert "verify_net_in_out" in readme


def test_every_target_is_a_documented_public_callable():
    found: set[str] = set()

    def collect(node: dict) -> dict:
        if "_target_" in node:
            found.add(node["_target_"])
        return node

    for path in CONFIGS.glob("*.json"):
        json.loads(path.read_text(), object_hook=collect)
    assert "usgen_monai.engines.sam_inference.PromptInferer" in found
    locator = ComponentLocator()
    for target in sorted(found):
        full = target if "." in target else f"{locator.get_component_module_name(target)}.{target}"
        obj = pydoc.locate(full)
        assert callable(obj) and (obj.__doc__ or "").strip(), full
        assert not any(part.startswith("_") for part in full.split(".")), full
        if full.startswith("usgen_monai."):
            module, name = full.rsplit(".", 1)
            assert name in pydoc.locate(module).__all__, f"{full} is not in its module's __all__"
        else:
            assert full.startswith(("monai.", "torch.optim.")), full
