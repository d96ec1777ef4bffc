"""Writers: synthetic DICOM images, DICOM SEG (highdicom), NIfTI/PNG; round trips, flags, validation (dciodvfy, dcmdump)."""

from __future__ import annotations

import re
import shutil
import subprocess
import warnings
from pathlib import Path

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
import torch
from monai.data import MetaTensor
from monai.transforms import Compose, EnsureChannelFirstd, Invertd, LoadImaged
from PIL import Image
from pydicom.dataset import Dataset

from tests.dicom_factory import (
    PYDICOM_MAJOR,
    SOURCE_PATIENT,
    bmode_frames,
    build_variant,
    make_sr_dataset,
    save_dataset,
    write_image,
)
from usgen_monai.data.dicom_reader import UltrasoundDicomReader
from usgen_monai.data.dicom_seg import (
    GENERIC_SEGMENT_CODE,
    ULTRASOUND_SEGMENT_CODES,
    SaveDicomSeg,
    SaveDicomSegd,
    segment_code_for,
)
from usgen_monai.data.image_savers import SaveUltrasoundImage, SaveUltrasoundImaged
from usgen_monai.data.synthetic_dicom import SaveSyntheticDicom, SaveSyntheticDicomd
from usgen_monai.data.writer_common import SYNTHETIC_DATA_TAG, ultrasound_name_formatter
from usgen_monai.transforms.ultrasound import CropToUltrasoundRegiond, SelectFramesd

SEG_CLASS = "1.2.840.10008.5.1.4.1.1.66.4"
US_IMAGE = "1.2.840.10008.5.1.4.1.1.6.1"
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
SC_IMAGE = "1.2.840.10008.5.1.4.1.1.7"


def read_back(path, **kwargs):
    reader = UltrasoundDicomReader(**kwargs)
    return reader.get_data(reader.read(path))


def load_source(name, folder):
    """A factory file as the reader returns it (MetaTensor, channel-first), with its path."""
    path, _ = build_variant(name, folder)
    arr, meta = read_back(path)
    return path, MetaTensor(torch.as_tensor(arr)[None], meta=meta)


def seg_contents(path) -> tuple[Dataset, dict[tuple[int, int], np.ndarray]]:
    """Decode a SEG with pydicom only: {(segment number, referenced source frame number): bits}."""
    ds = pydicom.dcmread(path)
    px = ds.pixel_array
    if px.ndim == 2:
        px = px[None]
    shared = ds.SharedFunctionalGroupsSequence[0] if "SharedFunctionalGroupsSequence" in ds else Dataset()
    out = {}
    for i, item in enumerate(ds.PerFrameFunctionalGroupsSequence):
        seg_item = item.get("SegmentIdentificationSequence") or shared.get("SegmentIdentificationSequence")
        derivation = item.get("DerivationImageSequence") or shared.get("DerivationImageSequence")
        ref = derivation[0].SourceImageSequence[0]
        out[(int(seg_item[0].ReferencedSegmentNumber), int(ref.get("ReferencedFrameNumber", 1)))] = px[i]
    assert len(out) == int(ds.NumberOfFrames)
    return ds, out


def mask_from(labels_frc: np.ndarray) -> MetaTensor:
    """(F, rows, cols) labels -> channel-first (1, X, Y[, F])."""
    a = np.moveaxis(labels_frc, 0, -1).swapaxes(0, 1)
    if a.shape[-1] == 1:
        a = a[..., 0]
    return MetaTensor(torch.as_tensor(a, dtype=torch.float32)[None])


# ------------------------------------------------------------------------------------------- synthetic DICOM


def test_synthetic_dicom_is_flagged_deidentified_and_carries_provenance(tmp_path):
    src_path, src = load_source("mono2_explicit", tmp_path / "src")
    src_ds = pydicom.dcmread(src_path)
    writer = SaveSyntheticDicom(
        output_dir=tmp_path / "out",
        model_name="csg-ldm",
        model_version="1.2.3",
        seed=42,
        conditioning={"finding": "tendon_tear", "mask": "case7_mask.png"},
    )
    img = MetaTensor(src / 255.0, meta=src.meta)  # an image that came through a pipeline from a real file
    writer(img)
    path = Path(img.meta["saved_to"])
    assert path == tmp_path / "out" / "mono2_explicit_synthetic.dcm"
    ds = pydicom.dcmread(path)
    raw = path.read_bytes()
    # nothing identifying from the source: no patient/study values, no source UIDs
    for key, value in SOURCE_PATIENT.items():
        assert str(ds.get(key, "")) != value, f"copied {key}"
        if len(value) > 3:
            assert value.encode() not in raw, f"leaked {value!r}"
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"):
        assert str(src_ds[key].value).encode() not in raw
    assert ds.SOPClassUID == US_IMAGE and ds.Modality == "US"
    assert ds[SYNTHETIC_DATA_TAG].value == "YES"
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert "SYNTHETIC" in ds.SeriesDescription.upper()
    assert ds.PatientIdentityRemoved == "YES" and ds.BurnedInAnnotation == "NO"
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    assert ds.PatientName == "SYNTHETIC^IMAGE" and ds.PatientBirthDate == "" and ds.StudyDate == ""
    equipment = ds.ContributingEquipmentSequence[0]
    assert equipment.ManufacturerModelName == "csg-ldm" and equipment.SoftwareVersions == "1.2.3"
    assert equipment.PurposeOfReferenceCodeSequence[0].CodeValue == "109102"
    for text in (ds.DerivationDescription, ds.ImageComments):
        assert "csg-ldm" in text and "1.2.3" in text and "42" in text and "tendon_tear" in text
    assert ds.file_meta.TransferSyntaxUID == pydicom.uid.ExplicitVRLittleEndian
    # pixels and spacing survive the trip through the reader
    arr, meta = read_back(path)
    np.testing.assert_array_equal(arr, np.round(src[0].numpy()))
    np.testing.assert_allclose(meta["spacing"], src.meta["spacing"])


def test_synthetic_intensity_mapping_and_per_call_provenance(tmp_path):
    writer = SaveSyntheticDicom(output_dir=tmp_path, intensity_range=(-1, 1), seed=1, conditioning={"a": 1})
    x = torch.linspace(-1.5, 1.5, 64 * 48).reshape(1, 64, 48)
    path = writer.write(x, seed=9, conditioning={"b": torch.zeros(2, 3)})
    arr, meta = read_back(path)
    expected = np.clip(np.round((x[0].numpy().astype(np.float64) + 1) / 2 * 255), 0, 255)
    np.testing.assert_array_equal(arr, expected)
    ds = pydicom.dcmread(path)
    assert "seed 9" in ds.DerivationDescription and '"a": 1' in ds.DerivationDescription
    assert "tensor(2, 3)" in ds.DerivationDescription
    assert meta["us_spacing_source"] == "none"  # no spacing given: no region written
    assert "SequenceOfUltrasoundRegions" not in ds


def test_synthetic_multiframe_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 64, 48, 4)).astype(np.float32)
    path = SaveSyntheticDicom(output_dir=tmp_path, spacing_mm=(0.2, 0.3), frame_time_ms=50).write(rgb)
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == US_MULTIFRAME and int(ds.NumberOfFrames) == 4 and float(ds.FrameTime) == 50
    assert ds.PhotometricInterpretation == "RGB" and ds.SamplesPerPixel == 3
    arr, meta = read_back(path, keep_color=True)
    np.testing.assert_array_equal(np.moveaxis(arr, -1, 0), rgb)
    np.testing.assert_allclose(meta["spacing"], [0.2, 0.3, 1.0])


def test_secondary_capture_synthetic(tmp_path):
    path = SaveSyntheticDicom(output_dir=tmp_path, sop_class="secondary_capture").write(
        torch.rand(1, 64, 48), meta_data={"spacing": np.array([0.1, 0.2])}
    )
    ds = pydicom.dcmread(path)
    assert ds.SOPClassUID == SC_IMAGE and ds.ConversionType == "SYN" and ds.Modality == "OT"
    assert [float(v) for v in ds.PixelSpacing] == [0.2, 0.1]  # row spacing, column spacing
    _, meta = read_back(path)
    np.testing.assert_allclose(meta["spacing"], [0.1, 0.2])
    with pytest.raises(ValueError, match="single frames"):
        SaveSyntheticDicom(output_dir=tmp_path, sop_class="secondary_capture").write(torch.rand(1, 8, 8, 2))


def test_patient_attributes_only_when_given_on_purpose(tmp_path):
    path = SaveSyntheticDicom(
        output_dir=tmp_path, patient_name="Phantom^Study", patient_id="PH-1", patient_sex="O", study_date="20250101"
    ).write(torch.rand(1, 8, 8))
    ds = pydicom.dcmread(path)
    assert (ds.PatientName, ds.PatientID, ds.PatientSex, ds.StudyDate) == ("Phantom^Study", "PH-1", "O", "20250101")


def test_uid_policy_and_instance_numbers(tmp_path):
    shared = SaveSyntheticDicom(output_dir=tmp_path / "a")
    a = [pydicom.dcmread(shared.write(torch.rand(1, 8, 8))) for _ in range(2)]
    assert a[0].StudyInstanceUID == a[1].StudyInstanceUID and a[0].SeriesInstanceUID == a[1].SeriesInstanceUID
    assert a[0].SOPInstanceUID != a[1].SOPInstanceUID and [d.InstanceNumber for d in a] == [1, 2]
    separate = SaveSyntheticDicom(output_dir=tmp_path / "b", one_series=False)
    b = [pydicom.dcmread(separate.write(torch.rand(1, 8, 8))) for _ in range(2)]
    assert b[0].StudyInstanceUID != b[1].StudyInstanceUID and b[0].SeriesInstanceUID != b[1].SeriesInstanceUID


def test_naming_scheme(tmp_path):
    assert ultrasound_name_formatter({"filename_or_obj": "/data/case12.nii.gz"}, None)["subject"] == "case12"
    assert ultrasound_name_formatter({"filename_or_obj": "/data/IM_0001"}, None)["subject"] == "IM_0001"
    assert ultrasound_name_formatter({"sample_index": 7}, None)["subject"] == "sample_000007"
    writer = SaveSyntheticDicom(output_dir=tmp_path)
    names = [writer.write(torch.rand(1, 8, 8)).name for _ in range(2)]
    assert names == ["sample_000000_synthetic.dcm", "sample_000001_synthetic.dcm"]
    assert writer.write(torch.rand(1, 8, 8), meta_data={"sample_index": 41}).name == "sample_000041_synthetic.dcm"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names + ["sample_000041_synthetic.dcm"])


def test_writes_are_atomic(tmp_path, monkeypatch):
    target = tmp_path / "x_synthetic.dcm"
    target.write_bytes(b"old content")

    def failing_save(self, filename, *args, **kwargs):
        Path(filename).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(pydicom.dataset.Dataset, "save_as", failing_save)
    with pytest.raises(OSError, match="disk full"):
        SaveSyntheticDicom(output_dir=tmp_path).write(torch.rand(1, 8, 8), filename=target)
    assert target.read_bytes() == b"old content"
    assert [p.name for p in tmp_path.iterdir()] == [target.name]  # no temporary file left behind


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sop_class": "ct"}, "sop_class"),
        ({"intensity_range": (1, 0)}, "intensity_range"),
        ({"spacing_mm": (0.1,)}, "spacing_mm"),
        ({"frame_time_ms": 0}, "frame_time_ms"),
    ],
)
def test_synthetic_writer_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SaveSyntheticDicom(**kwargs)


def test_synthetic_writer_rejects_bad_images(tmp_path):
    writer = SaveSyntheticDicom(output_dir=tmp_path)
    with pytest.raises(ValueError, match="got 2 channels"):
        writer.write(torch.rand(2, 8, 8))
    with pytest.raises(ValueError, match="NaN"):
        writer.write(torch.full((1, 8, 8), float("nan")))


# ------------------------------------------------------------------------------------------------------ SEG


def test_seg_codes_are_the_dicom_dictionary_codes():
    """Every SNOMED CT code in the table has the meaning DICOM's content mapping resource (pydicom's copy) gives it."""
    from pydicom.sr._concepts_dict import concepts

    meanings: dict[str, set[str]] = {}
    for entry in concepts["SCT"].values():
        for value, (meaning, _cids) in entry.items():
            meanings.setdefault(value, set()).add(meaning.lower())
    codes = [c for sc in [*ULTRASOUND_SEGMENT_CODES.values(), GENERIC_SEGMENT_CODE] for c in (sc.category, sc.type)]
    codes += [sc.region for sc in ULTRASOUND_SEGMENT_CODES.values() if sc.region]
    for value, meaning in codes:
        if value not in meanings and PYDICOM_MAJOR < 3:
            continue  # pydicom 2.4 ships an older copy of the code tables; pydicom 3's copy has them all
        assert value in meanings, f"{value} ({meaning}) is not a DICOM SNOMED CT code"
        assert meaning.lower() in meanings[value], f"{value}: {meaning!r} not in {meanings[value]}"
    assert segment_code_for("Fetal Head")[0] == ULTRASOUND_SEGMENT_CODES["fetal_head"]
    assert segment_code_for("tear")[0] == ULTRASOUND_SEGMENT_CODES["tendon_tear"]
    assert segment_code_for("weird thing") == (GENERIC_SEGMENT_CODE, False)


def test_seg_single_frame_round_trip(tmp_path):
    src_path, src = load_source("mono2_explicit", tmp_path / "src")
    src_ds = pydicom.dcmread(src_path)
    labels = np.zeros((1, 48, 64), dtype=np.int64)
    labels[0, 10:20, 12:30] = 1
    labels[0, 25:35, 5:9] = 3
    mask = mask_from(labels)
    mask.meta = dict(src.meta)  # a prediction carries its image's metadata
    writer = SaveDicomSeg(output_dir=tmp_path / "out", label_classes={"0": "background", "1": "lesion", "3": "tendon"})
    writer(mask)
    path = Path(mask.meta["saved_to"])
    assert path.name == "mono2_explicit_seg.dcm"
    ds, frames = seg_contents(path)
    assert ds.SOPClassUID == SEG_CLASS and ds.SegmentationType == "BINARY"
    assert ds.StudyInstanceUID == src_ds.StudyInstanceUID  # a SEG belongs to its source's study
    assert ds.SeriesInstanceUID != src_ds.SeriesInstanceUID
    ref_series = ds.ReferencedSeriesSequence[0]
    assert ref_series.SeriesInstanceUID == src_ds.SeriesInstanceUID
    assert ref_series.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src_ds.SOPInstanceUID
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["lesion", "tendon"]
    lesion, tendon = ds.SegmentSequence
    assert lesion.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"
    assert lesion.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
    assert tendon.SegmentedPropertyTypeCodeSequence[0].CodeValue == "13024002"
    assert all(s.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT" for s in ds.SegmentSequence)
    assert lesion.SegmentAlgorithmType == "AUTOMATIC"
    np.testing.assert_array_equal(frames[(1, 1)], labels[0] == 1)
    np.testing.assert_array_equal(frames[(2, 1)], labels[0] == 3)
    seg = hd.seg.segread(path)
    assert seg.number_of_segments == 2
    assert seg.get_segment_description(2).segment_label == "tendon"


@pytest.mark.parametrize("keep_empty", [False, True])
def test_seg_multiframe_source_without_frame_of_reference(tmp_path, keep_empty):
    src_path, _ = build_variant("ybr_full_422_jpeg_multiframe_overflow", tmp_path / "src")
    src_ds = pydicom.dcmread(src_path, stop_before_pixels=True)
    assert "FrameOfReferenceUID" not in src_ds and int(src_ds.NumberOfFrames) == 3
    labels = np.zeros((3, 48, 64), dtype=np.int64)
    labels[0, 5:15, 20:30] = 1
    labels[2, 20:30, 10:25] = 2
    labels[2, 2:4, 2:4] = 1
    writer = SaveDicomSeg(
        output_dir=tmp_path / "out", label_classes=["background", "fetal head", "skull"], keep_empty_frames=keep_empty
    )
    path = writer.write(mask_from(labels), source=src_path)
    ds, frames = seg_contents(path)
    expected_keys = {(s, f + 1) for s in (1, 2) for f in range(3) if keep_empty or (labels[f] == s).any()}
    assert set(frames) == expected_keys
    assert len(frames) == (6 if keep_empty else 3)
    for (s, f), bits in frames.items():
        np.testing.assert_array_equal(bits, labels[f - 1] == s, err_msg=f"segment {s} frame {f}")
    for item in ds.PerFrameFunctionalGroupsSequence:
        ref = item.DerivationImageSequence[0].SourceImageSequence[0]
        assert ref.ReferencedSOPInstanceUID == src_ds.SOPInstanceUID
        assert ref.ReferencedSOPClassUID == US_MULTIFRAME
        content = item.FrameContentSequence[0]
        assert content.TemporalPositionIndex == int(ref.ReferencedFrameNumber)
        assert list(content.DimensionIndexValues) == [
            int(item.SegmentIdentificationSequence[0].ReferencedSegmentNumber),
            int(ref.ReferencedFrameNumber),
        ]
    pointers = [int(d.DimensionIndexPointer) for d in ds.DimensionIndexSequence]
    assert pointers == [0x0062000B, 0x00209128]  # ReferencedSegmentNumber, TemporalPositionIndex
    assert ds.LossyImageCompression == "01"  # carried over from the JPEG source
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["fetal head", "skull"]
    assert hd.seg.segread(path).number_of_segments == 2


def test_seg_all_empty_mask_keeps_its_frames(tmp_path):
    src_path, _ = build_variant("mono2_multiframe", tmp_path / "src")
    path = SaveDicomSeg(output_dir=tmp_path, label_classes={1: "lesion"}).write(
        mask_from(np.zeros((4, 48, 64))), source=src_path
    )
    ds, frames = seg_contents(path)
    assert set(frames) == {(1, f) for f in range(1, 5)} and not any(b.any() for b in frames.values())
    single, _ = build_variant("mono2_explicit", tmp_path / "src")
    _, frames = seg_contents(
        SaveDicomSeg(output_dir=tmp_path, label_classes={1: "lesion"}).write(
            mask_from(np.zeros((1, 48, 64))), source=single
        )
    )
    assert list(frames) == [(1, 1)]


def test_seg_label_inputs(tmp_path):
    src_path, _ = build_variant("mono2_explicit", tmp_path / "src")
    labels = np.zeros((1, 48, 64), dtype=np.int64)
    labels[0, 5:10, 5:10] = 2
    # no label_classes: one segment per value present, generic code with a warning
    with pytest.warns(UserWarning, match="no SNOMED CT code for label class 'label_2'"):
        path = SaveDicomSeg(output_dir=tmp_path / "a").write(mask_from(labels), source=src_path)
    ds, frames = seg_contents(path)
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["label_2"]
    assert ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == GENERIC_SEGMENT_CODE.type[0]
    # one-hot / probabilities: arg-max over channels
    onehot = torch.zeros(3, 64, 48)
    onehot[0] = 0.5
    onehot[2, 5:10, 5:10] = 0.9
    ds, frames = seg_contents(
        SaveDicomSeg(output_dir=tmp_path / "b", label_classes=["background", "mass", "cyst"]).write(
            onehot, source=src_path
        )
    )
    assert [s.SegmentLabel for s in ds.SegmentSequence] == ["mass", "cyst"]
    np.testing.assert_array_equal(frames[(2, 1)], labels[0] == 2)
    assert (1, 1) not in frames  # "mass" is empty: described, no frame
    with pytest.raises(ValueError, match=r"label value\(s\) \[2\] that label_classes does not name"):
        SaveDicomSeg(output_dir=tmp_path, label_classes={1: "lesion"}).write(mask_from(labels), source=src_path)
    with pytest.raises(ValueError, match="integer labels"):
        SaveDicomSeg(output_dir=tmp_path).write(torch.full((1, 64, 48), 0.5), source=src_path)
    with pytest.raises(ValueError, match="duplicate"):
        SaveDicomSeg(label_classes={1: "a", "1": "b"})


def test_seg_errors_name_the_problem(tmp_path):
    src_path, _ = build_variant("mono2_explicit", tmp_path / "src")
    multi, _ = build_variant("mono2_multiframe", tmp_path / "src")
    writer = SaveDicomSeg(output_dir=tmp_path, label_classes={1: "lesion"})
    with pytest.raises(
        ValueError, match=r"mask is 40 rows x 30 columns but the source .*mono2_explicit\.dcm is 48 x 64"
    ):
        writer.write(torch.zeros(1, 30, 40), source=src_path)
    with pytest.raises(ValueError, match="mask has 2 frame"):
        writer.write(torch.zeros(1, 64, 48, 2), source=multi)
    with pytest.raises(ValueError, match="needs the source DICOM image"):
        writer.write(torch.zeros(1, 64, 48))
    sr = save_dataset(make_sr_dataset(), tmp_path / "sr.dcm")
    with pytest.raises(ValueError, match="not an image"):
        writer.write(torch.zeros(1, 64, 48), source=sr)


def test_synthetic_image_and_seg_pipeline_dict_forms(tmp_path):
    """Generation output: write the synthetic image, then its mask as a SEG referencing it."""
    image = MetaTensor(torch.rand(1, 64, 48), meta={"spacing": np.array([0.1, 0.1])})
    label = torch.zeros(1, 64, 48)
    label[0, 10:30, 5:20] = 1
    data = {"image": image, "label": label, "seed": torch.tensor(11), "finding": "effusion"}
    data = SaveSyntheticDicomd(
        keys="image", output_dir=tmp_path, seed_key="seed", conditioning_keys=["finding", "label"], model_name="csg"
    )(data)
    data = SaveDicomSegd(keys="label", source_key="image", output_dir=tmp_path, label_classes={1: "effusion"})(data)
    image_path = Path(data["image"].meta["saved_to"])
    seg_path = tmp_path / "sample_000000_synthetic_seg.dcm"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([image_path.name, seg_path.name])
    img_ds = pydicom.dcmread(image_path)
    assert "seed 11" in img_ds.DerivationDescription and "effusion" in img_ds.DerivationDescription
    seg_ds, frames = seg_contents(seg_path)
    assert seg_ds.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == (
        img_ds.SOPInstanceUID
    )
    assert seg_ds[SYNTHETIC_DATA_TAG].value == "YES"  # a SEG of a synthetic image is synthetic too
    assert seg_ds.PatientName == "SYNTHETIC^IMAGE"
    np.testing.assert_array_equal(frames[(1, 1)], label[0].numpy().T == 1)
    assert seg_ds.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "41699000"


def test_prediction_mapped_back_with_invertd_and_written_as_seg(tmp_path):
    """Inference path: load a cine, crop to the region, keep two frames, predict, invert, write a SEG."""
    src_path, expected = build_variant("ybr_full_422_jpeg_multiframe_overflow", tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pre = Compose(
            [
                LoadImaged(keys="image", reader=UltrasoundDicomReader(), image_only=True),
                EnsureChannelFirstd(keys="image"),
                CropToUltrasoundRegiond(keys="image"),
                SelectFramesd(keys="image", frames=[0, 2]),
            ]
        )
        data = pre({"image": str(src_path)})
    assert tuple(data["image"].shape) == (1, 54, 44, 2)
    data["pred"] = (data["image"] < 60).float()  # "lesion": the dark ellipse
    data = Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=True)(data)
    pred = data["pred"]
    assert tuple(pred.shape) == (1, 64, 48, 3)
    assert pred[..., 1].sum() == 0  # the frame that was not selected comes back empty
    path = SaveDicomSegd(keys="pred", output_dir=tmp_path / "seg", label_classes={1: "lesion"})(data)["pred"].meta[
        "saved_to"
    ]
    _, frames = seg_contents(path)
    assert set(frames) == {(1, 1), (1, 3)}
    dark = (expected < 60) & (np.arange(64)[None, None, :] >= 10) & (np.arange(48)[None, :, None] >= 4)
    for f in (1, 3):
        assert (frames[(1, f)] != dark[f - 1]).mean() < 0.02  # JPEG noise at the threshold only


# ---------------------------------------------------------------------------------------------- NIfTI / PNG


def test_save_nifti_and_png_with_predictable_names(tmp_path):
    img = MetaTensor(torch.rand(1, 64, 48), meta={"filename_or_obj": "/data/case3.dcm"})
    SaveUltrasoundImage(output_dir=tmp_path, output_postfix="image", output_ext=".nii.gz")(img)
    nii = nib.load(tmp_path / "case3_image.nii.gz")
    np.testing.assert_allclose(np.squeeze(nii.get_fdata()), img[0].numpy(), atol=1e-6)
    label = MetaTensor((torch.rand(1, 64, 48) > 0.5).float() * 255, meta={"filename_or_obj": "/data/case3.dcm"})
    SaveUltrasoundImaged(keys="label", output_dir=tmp_path, output_postfix="mask", output_ext=".png")({"label": label})
    png = np.asarray(Image.open(tmp_path / "case3_mask.png"))
    assert png.shape == (48, 64)  # rows, columns
    np.testing.assert_array_equal(png, label[0].numpy().T.astype(np.uint8))
    unnamed = SaveUltrasoundImage(output_dir=tmp_path, output_postfix="image", output_ext="png")
    unnamed(torch.zeros(1, 8, 8, dtype=torch.uint8))
    assert (tmp_path / "sample_000000_image.png").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "case3_image.nii.gz",
        "case3_mask.png",
        "sample_000000_image.png",
    ]
    with pytest.raises(ValueError, match="output_ext"):
        SaveUltrasoundImage(output_ext=".jpg")


# ---------------------------------------------------------------------------------------------- validators


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """One file of every kind the writers produce."""
    root = tmp_path_factory.mktemp("written")
    out = {}
    long_name = "a-very-long-generator-name-" * 4  # every LO/SH value must still fit its VR
    out["synthetic_grey_us"] = SaveSyntheticDicom(
        output_dir=root, seed=1, conditioning={"finding": "cyst"}, model_name=long_name, model_version="9" * 80
    ).write(torch.rand(1, 64, 48), meta_data={"spacing": [0.1, 0.2], "filename_or_obj": "grey"})
    out["synthetic_rgb_multiframe"] = SaveSyntheticDicom(output_dir=root, spacing_mm=(0.2, 0.2)).write(
        torch.rand(3, 64, 48, 3), meta_data={"filename_or_obj": "rgb"}
    )
    out["synthetic_secondary_capture"] = SaveSyntheticDicom(output_dir=root, sop_class="secondary_capture").write(
        torch.rand(1, 64, 48), meta_data={"spacing": [0.1, 0.2], "filename_or_obj": "sc"}
    )
    mask = torch.zeros(1, 64, 48)
    mask[0, 10:30, 10:20] = 1
    with pytest.warns(UserWarning, match="no SNOMED CT code"):
        out["seg_of_synthetic"] = SaveDicomSeg(
            output_dir=root, label_classes={1: "lesion " * 20}, algorithm_name=long_name, algorithm_version="9" * 80
        ).write(mask, source=out["synthetic_grey_us"])
    real, _ = build_variant("mono2_explicit", root / "src")
    out["seg_of_real_single_frame"] = SaveDicomSeg(output_dir=root, label_classes={1: "mass", 2: "cyst"}).write(
        mask * 2, source=real
    )
    cine, _ = build_variant("ybr_full_422_jpeg_multiframe_overflow", root / "src")
    labels = torch.zeros(1, 64, 48, 3)
    labels[0, 10:20, 10:20, 0] = 1
    labels[0, 30:40, 5:15, 2] = 2
    out["seg_of_cine"] = SaveDicomSeg(output_dir=root, label_classes=["background", "tendon", "bone"]).write(
        labels, source=cine
    )
    out["seg_of_cine_keep_empty"] = SaveDicomSeg(
        output_dir=root,
        output_postfix="segkeep",
        label_classes=["background", "tendon", "bone"],
        keep_empty_frames=True,
    ).write(labels, source=cine)
    for frames in (1, 3):
        src = write_image(root / "src" / f"for{frames}.dcm", bmode_frames(frames=frames), frame_of_reference=True)
        out[f"seg_of_{frames}_frame_source_with_frame_of_reference"] = SaveDicomSeg(
            output_dir=root, label_classes={1: "muscle"}
        ).write((labels[..., :frames] == 1).float() if frames > 1 else labels[..., 0], source=src)
    return out


def test_seg_of_sources_with_a_frame_of_reference_but_no_positions(written):
    """Ultrasound files often carry a Frame of Reference UID without any plane positions; the SEG still works."""
    for frames in (1, 3):
        ds, contents = seg_contents(written[f"seg_of_{frames}_frame_source_with_frame_of_reference"])
        assert "FrameOfReferenceUID" not in ds and ds.PatientOrientation == ""
        assert set(contents) == {(1, 1)}
        expected = np.zeros((48, 64), dtype=bool)
        expected[10:20, 10:20] = True
        np.testing.assert_array_equal(contents[(1, 1)], expected)


KINDS = [
    "synthetic_grey_us",
    "synthetic_rgb_multiframe",
    "synthetic_secondary_capture",
    "seg_of_synthetic",
    "seg_of_real_single_frame",
    "seg_of_cine",
    "seg_of_cine_keep_empty",
    "seg_of_1_frame_source_with_frame_of_reference",
    "seg_of_3_frame_source_with_frame_of_reference",
]


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (Debian package dicom3tools)")
@pytest.mark.parametrize("kind", KINDS)
def test_writer_output_passes_dciodvfy(written, kind):
    result = subprocess.run(
        ["dciodvfy", "-new", str(written[kind])], capture_output=True, text=True, timeout=60, check=False
    )
    lines = (result.stdout + result.stderr).splitlines()
    # the one error allowed: Synthetic Data (0008,001C) is newer than dciodvfy's dictionary
    errors = [
        line for line in lines if line.startswith("Error") and not re.search(r"\(0008,001c\)", line, re.IGNORECASE)
    ]
    assert errors == [], "\n".join(lines)
    if kind.startswith("synthetic") or kind == "seg_of_synthetic":
        assert any(re.search(r"\(0008,001c\)", line, re.IGNORECASE) for line in lines)  # the attribute is really there


@pytest.mark.skipif(shutil.which("dcmdump") is None, reason="dcmdump not installed (Debian package dcmtk)")
@pytest.mark.parametrize("kind", KINDS)
def test_writer_output_is_read_by_dcmdump(written, kind):
    result = subprocess.run(
        ["dcmdump", "-q", str(written[kind])], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "E:" not in result.stderr, result.stderr
    assert "(0008,0018)" in result.stdout and "(7fe0,0010)" in result.stdout.lower()


def test_documentation_example_runs(tmp_path, monkeypatch):
    """The code example in docs/ultrasound_dicom.md works as written."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "ultrasound_dicom.md"
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1
    src, _ = build_variant("ybr_full_422_jpeg_multiframe_overflow", tmp_path)
    shutil.copy(src, tmp_path / "cine.dcm")
    monkeypatch.chdir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(blocks[0], str(doc), "exec"), {"__name__": "doc_example"})  # noqa: S102 - the documented code
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["cine_seg.dcm", "sample_000000_synthetic.dcm", "sample_000000_synthetic_seg.dcm"]
    seg = pydicom.dcmread(tmp_path / "out" / "sample_000000_synthetic_seg.dcm")
    image = pydicom.dcmread(tmp_path / "out" / "sample_000000_synthetic.dcm")
    assert (
        seg.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == image.SOPInstanceUID
    )
    assert seg.SegmentSequence[0].SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # tendon tear: lesion


def test_former_module_still_exports_every_writer():
    """``usgen_monai.data.dicom_writers`` re-exports the writers for one release; ``usgen_monai.data`` exports them."""
    import usgen_monai.data
    import usgen_monai.data.dicom_writers as former

    for name in former.__all__:
        assert getattr(former, name) is getattr(usgen_monai.data, name), name
