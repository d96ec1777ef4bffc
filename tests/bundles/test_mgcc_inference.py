"""The MGCC inference config and the bundle's model-zoo checks: the command-line contract on a mixed folder (PNG,
colour PNG, JPEG, NIfTI, a DICOM with a region crop, a multi-frame colour cine and a corrupt file), datalist input,
DICOM SEG output, the message without weights, MONAI's verify_net_in_out and ckpt_export (TorchScript matches the
eager model), one network definition in both self-contained configs, metadata, and public documented targets."""

from __future__ import annotations

import json
import os
import pydoc
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ComponentLocator, ConfigParser, ckpt_export, verify_net_in_out
from monai.bundle import run as bundle_run
from PIL import Image

from tests.engines.test_segmentation_inference import mixed  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "bundles" / "mgcc"
CONFIGS = BUNDLE / "configs"
INFERENCE = CONFIGS / "inference.json"
TINY = {"network_def#channels": [4, 4, 4, 8, 8], "network_def#mixer_depth": 1, "image_size": [32, 32]}


def _config(name: str) -> dict:
    return json.loads((CONFIGS / name).read_text())


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """Random tiny weights of the inference config's own network definition, saved as the bundle ships them."""
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    parser.update(TINY)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("mgcc_models") / "model.pt"
    torch.save(parser.get_parsed_content("network_def").state_dict(), path)
    return path


def _infer(model_path: Path, out: Path, **overrides) -> dict:
    bundle_run(
        config_file=str(INFERENCE), logging_file=False, output_dir=str(out), model_path=str(model_path),
        progress=False, **TINY, **overrides,
    )  # fmt: skip
    return json.loads((out / "inference_summary.json").read_text())


def test_command_line_contract_on_a_mixed_folder(mixed, model_path, tmp_path):  # noqa: F811
    out = tmp_path / "out"
    args = [sys.executable, "-m", "monai.bundle", "run", "--config_file", str(INFERENCE), "--dataset_dir", str(mixed),
            "--output_dir", str(out), "--model_path", str(model_path), "--progress", "false"]  # fmt: skip
    for key, value in TINY.items():
        args += [f"--{key}", json.dumps(value)]
    proc = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "segmented 7 of 8 input(s)" in log and "1 failed: broken.png" in log
    summary = json.loads((out / "inference_summary.json").read_text())
    assert summary["num_failed"] == 1 and summary["failed"][0]["input"] == str(mixed / "broken.png")
    for record in summary["succeeded"]:
        stem = Path(record["input"]).name.split(".")[0]
        assert record["outputs"] and all(Path(p).name.startswith(stem) for p in record["outputs"])
        for path in record["outputs"]:
            assert np.asarray(Image.open(path)).shape == tuple(record["shape"])  # the input's rows x columns
    sizes = {Path(r["input"]).name: (tuple(r["shape"]), r["frames"], len(r["outputs"])) for r in summary["succeeded"]}
    assert sizes["mono2_explicit.dcm"] == ((48, 64), 1, 1)  # the region crop undone
    assert sizes["ybr_full_422_jpeg_multiframe_overflow.dcm"] == ((48, 64), 3, 3)  # one mask per frame
    assert sizes["scan.nii.gz"][0] == (14, 26) and sizes["colour.png"][0] == (18, 24)


def test_datalist_input_and_dicom_seg_output(mixed, model_path, tmp_path):  # noqa: F811
    datalist = tmp_path / "datalist.json"
    datalist.write_text(json.dumps({"test": [{"image": str(mixed / "mono2_explicit.dcm")}, {"image": "scan.nii.gz"}]}))
    (tmp_path / "scan.nii.gz").write_bytes((mixed / "scan.nii.gz").read_bytes())
    summary = _infer(model_path, tmp_path / "out", datalist=str(datalist), output_format="dicom")
    assert summary["num_succeeded"] == 2
    seg = pydicom.dcmread(tmp_path / "out" / "mono2_explicit_seg.dcm")
    source = pydicom.dcmread(mixed / "mono2_explicit.dcm", stop_before_pixels=True)
    refs = [r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence]
    assert refs == [source.SOPInstanceUID] and seg.StudyInstanceUID == source.StudyInstanceUID
    assert seg.SOPClassUID == "1.2.840.10008.5.1.4.1.1.66.4" and seg.SegmentSequence[0].SegmentLabel == "lesion"
    nifti = next(r for r in summary["succeeded"] if r["input"].endswith("scan.nii.gz"))
    assert nifti["format"] == "png" and "not a DICOM input" in nifti["note"]


def test_without_weights_inference_names_the_file_and_the_train_command(mixed, tmp_path):  # noqa: F811
    with pytest.raises(Exception) as raised:
        _infer(tmp_path / "models" / "model.pt", tmp_path / "out", dataset_dir=str(mixed))
    chain, error = [], raised.value
    while error is not None:
        chain.append(str(error))
        error = error.__cause__
    message = " ".join(chain)
    assert str(tmp_path / "models" / "model.pt") in message and "configs/train.json" in message


def test_monai_bundle_checks_and_torchscript_export(model_path, tmp_path):
    overrides = {k: v for k, v in TINY.items() if k != "image_size"}
    verify_net_in_out(net_id="network_def", meta_file=str(CONFIGS / "metadata.json"), config_file=str(INFERENCE),
                      **overrides)  # fmt: skip
    ts_path = tmp_path / "model.ts"
    ckpt_export(net_id="network_def", filepath=str(ts_path), ckpt_file=str(model_path),
                meta_file=str(CONFIGS / "metadata.json"), config_file=str(INFERENCE), **overrides)  # fmt: skip
    extra = {"metadata.json": "", "inference.json": ""}
    scripted = torch.jit.load(str(ts_path), _extra_files=extra)
    assert json.loads(extra["metadata.json"])["version"] == _config("metadata.json")["version"]
    parser = ConfigParser()
    parser.read_config(str(INFERENCE))
    parser.update(overrides)
    eager = parser.get_parsed_content("network_def")
    eager.load_state_dict(torch.load(model_path, weights_only=True))
    x = torch.rand(2, 1, 64, 48)
    with torch.no_grad():
        torch.testing.assert_close(scripted(x), eager.eval()(x))


def test_train_and_inference_define_the_same_network():
    """MONAI Label reads inference.json and train.json each on its own, so both hold the network definition."""
    train, inference, meta = _config("train.json"), _config("inference.json"), _config("metadata.json")
    assert train["network_def"] == inference["network_def"]
    assert (
        train["image_size"]
        == inference["image_size"]
        == meta["network_data_format"]["inputs"]["image"]["spatial_shape"]
    )
    pred = meta["network_data_format"]["outputs"]["pred"]
    assert inference["label_classes"] == train["constants"]["channel_def"] == pred["channel_def"]
    assert train["network_def"]["out_channels"] == pred["num_channels"]
    assert train["network_def"]["in_channels"] == meta["network_data_format"]["inputs"]["image"]["num_channels"]


def test_metadata_and_ids_follow_the_model_zoo():
    meta = _config("metadata.json")
    assert meta["version"] == next(iter(meta["changelog"])) and "0.1.0" in meta["changelog"]  # newest entry first
    assert list(meta["network_data_format"]["inputs"]) == ["image"]
    assert list(meta["network_data_format"]["outputs"]) == ["pred"]
    for fmt in (*meta["network_data_format"]["inputs"].values(), *meta["network_data_format"]["outputs"].values()):
        assert fmt["modality"] == "US" and len(fmt["spatial_shape"]) == 2
    assert all(isinstance(v, (int, float)) for v in meta["eval_metrics"].values())  # measured numbers only
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


def test_every_target_is_a_documented_public_callable():
    found: set[str] = set()

    def collect(node: dict) -> dict:
        if "_target_" in node:
            found.add(node["_target_"])
        return node

    for path in CONFIGS.glob("*.json"):
        json.loads(path.read_text(), object_hook=collect)
    assert "usgen_monai.engines.cross_consistency.CrossConsistencyTrainer" in found
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
