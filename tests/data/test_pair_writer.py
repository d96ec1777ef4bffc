"""PairWriter (usgen_monai.data.pair_writer): the files of generated pairs, read back format by format.

Pairs are simulated label maps with images made from them (no networks), so every value written is known.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from PIL import Image

import usgen_monai
from usgen_monai.data.datasets import load_json_datalist
from usgen_monai.data.pair_writer import OUTPUT_FORMATS, PairWriter
from usgen_monai.data.simulator import PRESET_TARGETS, UNIFIED_CLASSES, UltrasoundSimulator

SIZE = (32, 40)
SPACING = (0.25, 0.2)  # (row, column) mm


def _pair(seed: int = 3, finding: str = "tendon_tear") -> tuple[torch.Tensor, torch.Tensor, dict]:
    sim = UltrasoundSimulator("msk", size=SIZE)
    sample = sim.sample(seed=seed, finding=finding)
    label = torch.as_tensor(sim.to_unified(sample.label).astype(np.int64))
    image = torch.as_tensor(sample.image, dtype=torch.float32)
    record = {"seed": 4, "index": 1, "sample_seed": 12345, "mask_source": {"type": "procedural"}, "gain_db": 6.0}
    return image, label, record


def _png(path: Path) -> tuple[np.ndarray, dict]:
    with Image.open(path) as im:
        return np.asarray(im), dict(im.text)


def test_formats_and_arguments(tmp_path):
    assert OUTPUT_FORMATS == ("png", "nifti", "dicom")
    from usgen_monai.data import OUTPUT_FORMATS as exported, PairWriter as Exported

    assert exported is OUTPUT_FORMATS and Exported is PairWriter
    writer = PairWriter(tmp_path / "out", "nifti", class_names=("background", "lesion"), name_prefix="pair_")
    assert (writer.output_dir, writer.output_format, writer.class_names) == (tmp_path / "out", "nifti",
                                                                          ("background", "lesion"))  # fmt: skip
    assert (writer.model_name, writer.model_version, writer.name_prefix) == ("usgen-monai CSG",
                                                                          usgen_monai.__version__, "pair_")  # fmt: skip
    assert writer.stem(7) == "pair_000007" and not writer.output_dir.exists()  # created on the first write
    with pytest.raises(ValueError, match="output_format must be one of"):
        PairWriter(tmp_path, "jpeg")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"output_dir .*file exists and is not a folder"):
        PairWriter(tmp_path / "file")


def test_png_pixels_and_text_chunks(tmp_path):
    image, label, record = _pair()
    writer = PairWriter(tmp_path, "png", model_version="9.9.9")
    paths = writer.write(1, image, label, SPACING, record)
    assert paths == {"image": "sample_000001_image.png", "label": "sample_000001_label.png"}
    pixels, text = _png(tmp_path / paths["image"])
    assert pixels.dtype == np.uint8 and pixels.shape == SIZE
    np.testing.assert_array_equal(pixels, np.round(image.double().numpy() * 255).astype(np.uint8))
    labels, label_text = _png(tmp_path / paths["label"])
    np.testing.assert_array_equal(labels, label.numpy())
    assert list(text) == ["Synthetic", "Software", "Description", "usgen-monai provenance"] and text == label_text
    assert text["Synthetic"] == "YES" and text["Software"] == "usgen-monai CSG 9.9.9"
    assert "SYNTHETIC" in text["Description"] and json.loads(text["usgen-monai provenance"]) == record
    assert sorted(os.listdir(tmp_path)) == sorted(paths.values())  # no temporary files left
    with pytest.raises(ValueError, match="NaN"):
        writer.write(2, torch.full(SIZE, float("nan")), label, SPACING, record)


def test_nifti_values_affine_description_and_provenance(tmp_path):
    image, label, record = _pair()
    writer = PairWriter(tmp_path, "nifti", model_version="9.9.9")
    paths = writer.write(0, image, label, SPACING, record)
    assert paths == {"image": "sample_000000_image.nii.gz", "label": "sample_000000_label.nii.gz"}
    stored, stored_label = nib.load(tmp_path / paths["image"]), nib.load(tmp_path / paths["label"])
    assert stored.get_data_dtype() == np.float32 and stored_label.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(np.asarray(stored.dataobj).T, image.numpy())  # first axis = column
    np.testing.assert_array_equal(np.asarray(stored_label.dataobj).T, label.numpy())
    for nifti in (stored, stored_label):
        np.testing.assert_allclose(nifti.affine, np.diag([SPACING[1], SPACING[0], 1.0, 1.0]), rtol=1e-7)  # float32
        assert nifti.header["descrip"].tobytes().rstrip(b"\0") == b"SYNTHETIC usgen-monai CSG 9.9.9"
        (extension,) = nifti.header.extensions
        assert extension.get_code() == 6 and json.loads(extension.get_content()) == record  # comment
    writer.write(1, image, label, None, record)
    np.testing.assert_array_equal(nib.load(tmp_path / "sample_000001_image.nii.gz").affine, np.eye(4))


@pytest.mark.filterwarnings("ignore:SaveDicomSeg. no SNOMED CT code")
def test_dicom_is_flagged_synthetic_and_the_seg_references_the_image(tmp_path):
    image, label, record = _pair(finding="effusion")
    writer = PairWriter(tmp_path, "dicom", model_version="9.9.9")
    paths = writer.write(0, image, label, SPACING, record)
    assert paths == {
        "image": "sample_000000_image.dcm",
        "label": "sample_000000_label.png",
        "label_seg": "sample_000000_label.dcm",
    }
    ds = pydicom.dcmread(tmp_path / paths["image"])
    assert ds[0x0008, 0x001C].value == "YES" and ds.Modality == "US" and "SYNTHETIC" in ds.SeriesDescription
    assert (ds.Manufacturer, ds.ManufacturerModelName, ds.SoftwareVersions) == ("usgen-monai", "usgen-monai CSG",
                                                                               "9.9.9")  # fmt: skip
    assert '"seed": 12345' in ds.ImageComments and '"gain_db"' not in ds.ImageComments  # conditioning keys only
    np.testing.assert_array_equal(ds.pixel_array, np.round(image.double().numpy() * 255).astype(np.uint8))
    region = ds.SequenceOfUltrasoundRegions[0]
    assert (region.PhysicalDeltaX, region.PhysicalDeltaY) == pytest.approx((SPACING[1] / 10, SPACING[0] / 10))
    seg = pydicom.dcmread(tmp_path / paths["label_seg"])
    assert seg.Modality == "SEG" and seg[0x0008, 0x001C].value == "YES"
    assert seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == ds.SOPInstanceUID
    assert [s.SegmentLabel for s in seg.SegmentSequence] == list(UNIFIED_CLASSES[1:])  # stable segment numbers
    segments = {
        f.SegmentIdentificationSequence[0].ReferencedSegmentNumber for f in seg.PerFrameFunctionalGroupsSequence
    }
    assert segments == {v for v in label.unique().tolist() if v != 0}  # frames of the classes present
    labels, text = _png(tmp_path / paths["label"])
    np.testing.assert_array_equal(labels, label.numpy())
    assert text["Synthetic"] == "YES" and json.loads(text["usgen-monai provenance"]) == record


def test_finalize_writes_the_datalist_then_the_manifest(tmp_path):
    image, label, record = _pair()
    writer = PairWriter(tmp_path, "png", model_version="9.9.9")
    items = [{**writer.write(i, image, label, SPACING, record), "context": {"preset": "msk"}} for i in range(2)]
    datalist_path, manifest_path = writer.finalize(items, {"num": 2, "seed": 4})
    assert (datalist_path, manifest_path) == (tmp_path / "datalist.json", tmp_path / "dataset.json")
    datalist = json.loads(datalist_path.read_text())
    assert list(datalist) == ["name", "description", "synthetic", "tensorImageSize", "modality", "labels",
                              "target_labels", "numTraining", "training"]  # fmt: skip
    assert datalist["name"] == "usgen-monai CSG synthetic (image, label) pairs" and datalist["synthetic"] is True
    assert datalist["labels"] == {str(i): name for i, name in enumerate(UNIFIED_CLASSES)}
    assert datalist["target_labels"] == {
        preset: [UNIFIED_CLASSES.index(c) for c in classes] for preset, classes in PRESET_TARGETS.items()
    }
    assert datalist["numTraining"] == 2 and datalist["training"] == items
    assert [Path(i["image"]).name for i in load_json_datalist(datalist_path)] == [i["image"] for i in items]
    manifest = json.loads(manifest_path.read_text())
    assert list(manifest.items()) == [
        ("name", "usgen-monai CSG synthetic (image, label) pairs"),
        ("synthetic", True),
        ("output_format", "png"),
        ("file_naming", "<stem>_image.<ext>, <stem>_label.<ext>"),
        ("datalist", "datalist.json"),
        ("num", 2),
        ("seed", 4),
    ]
    assert manifest_path.read_text().endswith("}\n")


def test_outputs_are_atomic(tmp_path, monkeypatch):
    image, label, record = _pair()
    calls = []

    def failing_save(self, fp, *args, **kwargs):
        calls.append(fp)
        Path(fp).write_bytes(b"\x89PNG half written")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        PairWriter(tmp_path / "out").write(0, image, label, SPACING, record)
    assert len(calls) == 1 and Path(calls[0]).parent == tmp_path / "out"
    assert os.listdir(tmp_path / "out") == []  # not the half-written file
