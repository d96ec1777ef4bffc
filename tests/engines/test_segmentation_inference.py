"""The model-agnostic inference runner: inputs from a folder or a datalist, the resizing inferer (images and cines),
the mask writer in each format, and a run over a mixed folder with a corrupt file, using a tiny threshold "model"."""

from __future__ import annotations

import json
import logging

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.transforms import Activationsd, AsDiscreted, Compose, Invertd, LoadImaged, ScaleIntensityd
from PIL import Image

from tests.dicom_factory import build_variant
from usgen_monai.data import UltrasoundDicomReader, pil_to_grey
from usgen_monai.engines.segmentation_inference import MaskWriter, ResizeInferer, SegmentationInference, inference_inputs
from usgen_monai.transforms import CropToUltrasoundRegiond, UltrasoundToGreyd


def dark_is_foreground(x: torch.Tensor) -> torch.Tensor:
    """A stand-in model: logits that are positive where the image is dark (lesions are dark)."""
    return 0.4 - x


def _preprocessing() -> Compose:
    reader = [UltrasoundDicomReader()]
    from monai.data import PILReader

    reader.insert(0, PILReader(converter=pil_to_grey))
    return Compose(
        [
            LoadImaged("image", reader=reader, image_only=True, ensure_channel_first=True),
            UltrasoundToGreyd("image"),
            CropToUltrasoundRegiond("image"),
            ScaleIntensityd("image"),
        ]
    )


def _runner(out, output_format="png", **kwargs) -> SegmentationInference:
    pre = _preprocessing()
    post = Compose(
        [
            Activationsd("pred", sigmoid=True),
            AsDiscreted("pred", threshold=0.5),
            Invertd("pred", transform=pre, orig_keys="image", nearest_interp=True),
        ]
    )
    writer = MaskWriter(out, output_format=output_format, label_classes={"0": "background", "1": "lesion"})
    return SegmentationInference(
        dark_is_foreground,
        pre,
        ResizeInferer((16, 16)),
        post,
        writer,
        progress=False,
        summary_path=out / "inference_summary.json",
        **kwargs,
    )


@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """PNG (grey, RGB, palette), JPEG, NIfTI, a grey DICOM with a region, a multi-frame colour cine, a corrupt PNG."""
    d = tmp_path_factory.mktemp("mixed")
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (20, 28), dtype=np.uint8)).save(d / "grey.png")
    Image.fromarray(rng.integers(0, 255, (18, 24, 3), dtype=np.uint8)).save(d / "colour.png")
    Image.fromarray(rng.integers(0, 255, (22, 10), dtype=np.uint8)).convert("P").save(d / "palette.png")
    Image.fromarray(rng.integers(0, 255, (12, 30, 3), dtype=np.uint8)).save(d / "photo.jpg")
    nib.save(nib.Nifti1Image(rng.random((26, 14)).astype(np.float32), np.diag([0.2, 0.3, 1, 1])), d / "scan.nii.gz")
    build_variant("mono2_explicit", d)  # 48 x 64 with an ultrasound region
    build_variant("ybr_full_422_jpeg_multiframe_overflow", d)  # 3 colour frames
    (d / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (d / "notes.txt").write_text("not an image")
    return d


def test_inputs_from_a_folder_and_a_datalist(mixed, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        items = inference_inputs(dataset_dir=mixed)
    names = [p["image"].rsplit("/", 1)[-1] for p in items]
    assert "notes.txt" not in names and len(names) == 8 and "left out 1 file" in caplog.text
    suffixless = tmp_path / "dicomfolder"
    suffixless.mkdir()
    (suffixless / "IM0001").write_bytes((mixed / "mono2_explicit.dcm").read_bytes())
    assert [p["image"] for p in inference_inputs(dataset_dir=suffixless)] == [str(suffixless / "IM0001")]
    (tmp_path / "list.json").write_text(json.dumps({"test": [str(mixed / "grey.png"), "missing.png"]}))  # Decathlon
    listed = inference_inputs(dataset_dir=mixed, datalist=tmp_path / "list.json")  # the datalist wins
    assert [i["image"] for i in listed] == [str(mixed / "grey.png"), str(tmp_path / "missing.png")]
    with pytest.raises(ValueError, match="--dataset_dir"):
        inference_inputs()
    with pytest.raises(ValueError, match="does not exist"):
        inference_inputs(dataset_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="no images in"):
        inference_inputs(dataset_dir=tmp_path, recursive=False)


@pytest.mark.parametrize("shape", [(2, 1, 20, 28), (1, 1, 20, 28, 3), (1, 1, 16, 16)])
def test_resize_inferer_returns_logits_on_the_input_grid(shape):
    calls = []

    def net(x):
        calls.append(tuple(x.shape))
        return torch.cat([x, -x], dim=1)

    out = ResizeInferer((16, 16), batch_size=2)(torch.rand(shape), net)
    assert out.shape == (shape[0], 2, *shape[2:])
    assert all(c[2:] == (16, 16) and c[0] <= 2 for c in calls)
    if len(shape) == 5:  # frames went through the network in batches of 2 and came back in order
        assert [c[0] for c in calls] == [2, 1]
    with pytest.raises(ValueError, match="cines"):
        ResizeInferer((16, 16))(torch.rand(1, 16, 16), net)


def test_run_over_a_mixed_folder(mixed, tmp_path):
    out = tmp_path / "out"
    summary = _runner(out, batch_size=3).run(inference_inputs(dataset_dir=mixed))
    assert summary.total == 8 and len(summary.failed) == 1
    assert summary.failed[0]["input"].endswith("broken.png") and "broken.png" in summary.failed[0]["reason"]
    written = json.loads((out / "inference_summary.json").read_text())
    assert (written["num_succeeded"], written["num_failed"]) == (7, 1)
    rows_cols = {
        "grey": (20, 28), "colour": (18, 24), "palette": (22, 10), "photo": (12, 30), "scan": (14, 26),
        "mono2_explicit": (48, 64),
    }  # fmt: skip
    for stem, shape in rows_cols.items():
        mask = np.asarray(Image.open(out / f"{stem}_seg.png"))
        assert mask.shape == shape and set(np.unique(mask)) <= {0, 255}, stem
    frames = sorted(out.glob("ybr_full_422_jpeg_multiframe_overflow_seg_frame*.png"))
    assert len(frames) == 3 and all(np.asarray(Image.open(f)).shape == (48, 64) for f in frames)
    # the DICOM region crop is undone: nothing outside the imaging region (x >= 8, y >= 6) is segmented
    mono = np.asarray(Image.open(out / "mono2_explicit_seg.png"))
    assert mono[:, :8].max() == 0 and mono[:6].max() == 0 and mono.max() == 255
    grey = np.asarray(Image.open(mixed / "grey.png")).astype(float)
    scaled = (grey - grey.min()) / (grey.max() - grey.min())
    agree = (np.asarray(Image.open(out / "grey_seg.png")) > 0) == (scaled < 0.4)
    assert agree.mean() > 0.6  # resized to 16x16 and back: the dark parts are the mask


def test_parallel_batches_write_what_one_at_a_time_writes(mixed, tmp_path):
    inputs = inference_inputs(dataset_dir=mixed)
    (tmp_path / "twin").mkdir()
    (tmp_path / "twin" / "grey.png").write_bytes((mixed / "grey.png").read_bytes())  # a stem taken twice
    inputs = [*inputs, {"image": str(tmp_path / "twin" / "grey.png")}]
    serial = _runner(tmp_path / "serial", batch_size=2).run(inputs)
    threads = torch.get_num_threads()
    parallel = _runner(tmp_path / "parallel", batch_size=2, parallel_batches=3).run(inputs)
    assert torch.get_num_threads() == threads  # the run's division of torch threads is undone
    strip = lambda records: [{**r, "outputs": [o.rsplit("/", 1)[-1] for o in r.get("outputs", [])]} for r in records]  # noqa: E731
    assert strip(parallel.succeeded) == strip(serial.succeeded)
    assert parallel.failed == serial.failed and parallel.failed[0]["input"].endswith("broken.png")
    assert (tmp_path / "parallel" / "grey_2_seg.png").is_file()  # names in input order whatever finishes first
    for record in serial.succeeded:
        for path in record["outputs"]:
            name = path.rsplit("/", 1)[-1]
            if name.endswith(".png"):
                assert np.array_equal(
                    np.asarray(Image.open(path)), np.asarray(Image.open(tmp_path / "parallel" / name))
                ), name
    with pytest.raises(ValueError, match="parallel_batches"):
        _runner(tmp_path, parallel_batches=0)


def test_dicom_output_references_its_source(mixed, tmp_path):
    out = tmp_path / "out"
    summary = _runner(out, output_format="dicom").run(
        [mixed / "ybr_full_422_jpeg_multiframe_overflow.dcm", mixed / "grey.png"]
    )
    seg = pydicom.dcmread(out / "ybr_full_422_jpeg_multiframe_overflow_seg.dcm")
    source = pydicom.dcmread(mixed / "ybr_full_422_jpeg_multiframe_overflow.dcm", stop_before_pixels=True)
    assert seg.Modality == "SEG" and seg.SegmentSequence[0].SegmentLabel == "lesion"
    refs = {r.ReferencedSOPInstanceUID for s in seg.ReferencedSeriesSequence for r in s.ReferencedInstanceSequence}
    assert refs == {source.SOPInstanceUID}
    png = next(r for r in summary.succeeded if r["input"].endswith("grey.png"))
    assert png["format"] == "png" and "not a DICOM input" in png["note"] and (out / "grey_seg.png").is_file()
    strict = MaskWriter(tmp_path / "strict", output_format="dicom", non_dicom_format="error")
    with pytest.raises(ValueError, match="must reference a source DICOM"):
        strict(torch.zeros(1, 4, 4), source=mixed / "grey.png", stem="grey")


def test_nifti_output_keeps_the_affine_and_cines_are_one_volume(mixed, tmp_path):
    out = tmp_path / "out"
    _runner(out, output_format="nifti").run(
        [mixed / "scan.nii.gz", mixed / "ybr_full_422_jpeg_multiframe_overflow.dcm"]
    )
    scan = nib.load(out / "scan_seg.nii.gz")
    assert scan.shape == (26, 14) and np.allclose(np.diag(scan.affine)[:2], [0.2, 0.3])
    assert set(np.unique(np.asarray(scan.dataobj))) <= {0, 1}
    assert nib.load(out / "ybr_full_422_jpeg_multiframe_overflow_seg.nii.gz").shape == (64, 48, 3)


def test_same_stems_get_distinct_names_and_prompts_reach_the_inferer(mixed, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "grey.png").write_bytes((mixed / "grey.png").read_bytes())
    seen = []

    def inferer(x, network, threshold=None):
        seen.append(threshold)
        return network(x)

    runner = _runner(tmp_path / "out", prompt_keys=["threshold"])
    runner.inferer = inferer
    summary = runner.run([{"image": str(mixed / "grey.png"), "threshold": 1}, {"image": str(other / "grey.png")}])
    assert [r["outputs"][0].rsplit("/", 1)[-1] for r in summary.succeeded] == ["grey_seg.png", "grey_2_seg.png"]
    assert seen == [1, None] and runner.batch_size == 1


def test_a_run_where_everything_fails_raises(mixed, tmp_path):
    with pytest.raises(RuntimeError, match="every input failed"):
        _runner(tmp_path).run([mixed / "broken.png"])
    with pytest.raises(ValueError, match="no inputs"):
        _runner(tmp_path).run([])


def test_writer_rejects_bad_settings_and_masks(tmp_path):
    with pytest.raises(ValueError, match="output_format"):
        MaskWriter(tmp_path, output_format="jpeg")
    with pytest.raises(ValueError, match="non_dicom_format"):
        MaskWriter(tmp_path, non_dicom_format="dicom")
    with pytest.raises(ValueError, match="integer labels"):
        MaskWriter(tmp_path)(torch.full((1, 4, 4), 0.5), source="x.png", stem="x")
    labels = torch.tensor([[[0, 1], [2, 3]]])
    MaskWriter(tmp_path, label_classes=["background", "a", "b", "c"])(labels, source="x.png", stem="multi")
    assert np.asarray(Image.open(tmp_path / "multi_seg.png")).T.tolist() == [[0, 1], [2, 3]]  # class indices
