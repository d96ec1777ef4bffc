"""UltrasoundDicomReader and load_dicom_folder on DICOM files the tests build themselves (tests/dicom_factory.py)."""

from __future__ import annotations

import json
import logging
import re
import warnings

import numpy as np
import pydicom
import pytest
import torch
from monai.data import list_data_collate
from monai.transforms import LoadImage, LoadImaged
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit

from tests.dicom_factory import (
    DEFAULT_REGIONS,
    OVERFLOW_REGIONS,
    PYDICOM_MAJOR,
    VARIANTS,
    Region,
    bmode_frames,
    build_variant,
    make_image_dataset,
    make_sr_dataset,
    save_dataset,
    with_doppler,
    write_image,
)
from usgen_monai.data.dicom_reader import (
    DicomFolderResult,
    UltrasoundDicomError,
    UltrasoundDicomReader,
    UltrasoundRegionWarning,
    load_dicom_folder,
)
from usgen_monai.transforms.ultrasound import UltrasoundMetaKeys as K


@pytest.fixture(scope="module")
def loader():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MONAI warns about optional readers it cannot register
        return LoadImage(reader=UltrasoundDicomReader(), image_only=True, ensure_channel_first=True)


def to_frames(arr) -> np.ndarray:
    """Reader output (X, Y[, F]) with reverse_indexing -> (F, rows, cols)."""
    a = np.asarray(arr)
    if a.ndim == 2:
        return a.T[None]
    return np.moveaxis(np.swapaxes(a, 0, 1), 2, 0)


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_every_variant_loads_through_load_image(name, tmp_path, loader):
    variant = VARIANTS[name]
    path, expected = build_variant(name, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UltrasoundRegionWarning)  # the overflow variant warns; tested below
        img = loader(path)
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    frames = variant.frames
    assert tuple(img.shape) == ((1, 64, 48, frames) if frames > 1 else (1, 64, 48))
    got = to_frames(img[0].numpy())
    err = np.abs(got - expected)
    if variant.lossy:
        assert err.mean() <= variant.tolerance, f"{name}: mean error {err.mean():.2f}"
        assert err.max() <= 40, f"{name}: max error {err.max():.1f}"
    elif variant.tolerance:
        assert err.mean() <= variant.tolerance and err.max() <= 2, f"{name}: error {err.mean():.2f} / {err.max():.1f}"
    else:
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3, err_msg=name)  # float32 output
    meta = img.meta
    for key in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        assert meta[key] == str(ds[key].value)
    assert meta["PhotometricInterpretation"] == ds.PhotometricInterpretation
    assert meta["TransferSyntaxUID"] == str(ds.file_meta.TransferSyntaxUID)
    assert meta["NumberOfFrames"] == frames
    np.testing.assert_array_equal(meta[K.ORIGINAL_SHAPE], [frames, 48, 64, ds.SamplesPerPixel])
    np.testing.assert_array_equal(meta[K.FRAME_INDICES], np.arange(frames))
    assert meta[K.COLOR] == "grey"
    assert img.dtype == torch.float32
    # patient identifiers are never put into the metadata
    assert "PatientName" not in meta and "PatientID" not in meta


def test_spacing_affine_and_region_from_ultrasound_regions(tmp_path, loader):
    path = write_image(tmp_path / "a.dcm", bmode_frames())
    img = loader(path)
    r = DEFAULT_REGIONS[0]
    # PhysicalDeltaX/Y are in cm (units code 3): 0.01 cm -> 0.1 mm, 0.02 cm -> 0.2 mm
    np.testing.assert_allclose(img.meta["spacing"], [0.1, 0.2])
    np.testing.assert_allclose(np.diag(img.affine.numpy())[:2], [0.1, 0.2])
    assert img.meta[K.SPACING_SOURCE] == "ultrasound_region"
    np.testing.assert_array_equal(img.meta[K.REGION_BOX], [r.x0, r.y0, r.x1 + 1, r.y1 + 1])
    np.testing.assert_array_equal(img.meta[K.REGION_ROI_START], [r.x0, r.y0])
    np.testing.assert_array_equal(img.meta[K.REGION_ROI_END], [r.x1 + 1, r.y1 + 1])
    assert bool(img.meta[K.REGION_FOUND]) and not bool(img.meta[K.REGIONS_CLIPPED])
    regions = json.loads(img.meta[K.REGIONS])
    assert [g["data_type_name"] for g in regions] == ["tissue", "pw_spectral_doppler"]


def test_crop_to_region_removes_burned_in_text(tmp_path):
    grey = bmode_frames()
    path = write_image(tmp_path / "a.dcm", grey)
    reader = UltrasoundDicomReader(crop_to_region=True)
    arr, meta = reader.get_data(reader.read(path))
    r = DEFAULT_REGIONS[0]
    np.testing.assert_array_equal(to_frames(arr)[0], grey[0, r.y0 : r.y1 + 1, r.x0 : r.x1 + 1])
    assert arr.max() < 255  # the burned-in block (255) sat outside the region
    assert grey.max() == 255
    np.testing.assert_allclose(meta["affine"][:2, 3], [r.x0 * 0.1, r.y0 * 0.2])
    np.testing.assert_array_equal(meta[K.REGION_ROI_START], [0, 0])
    np.testing.assert_array_equal(meta[K.REGION_ROI_END], arr.shape)
    assert bool(meta[K.CROPPED])


def test_overflowing_regions_are_clipped_with_warning_and_flag(tmp_path, loader):
    path, expected = build_variant("ybr_full_422_jpeg_multiframe_overflow", tmp_path)
    with pytest.warns(UltrasoundRegionWarning, match=r"extends past the 64 x 48 image|entirely outside") as record:
        img = loader(path)
    messages = [str(w.message) for w in record if issubclass(w.category, UltrasoundRegionWarning)]
    assert all(str(path) in m for m in messages)
    assert any("entirely outside" in m for m in messages)
    assert bool(img.meta[K.REGIONS_CLIPPED])
    tissue = OVERFLOW_REGIONS[0]
    np.testing.assert_array_equal(img.meta[K.REGION_BOX], [tissue.x0, tissue.y0, 64, 48])
    regions = json.loads(img.meta[K.REGIONS])
    assert len(regions) == 2  # the region lying wholly outside the image was dropped
    assert regions[0]["clipped"] and regions[0]["stored_box"] == [10, 4, 95, 70]
    np.testing.assert_allclose(img.meta["spacing"], [0.05, 0.05, 1.0])
    # keep going: the pixels are all there
    assert tuple(img.shape) == (1, 64, 48, 3)
    assert np.abs(to_frames(img[0].numpy()) - expected).mean() < 2.5


def test_no_warning_when_disabled_but_flag_set(tmp_path):
    path, _ = build_variant("ybr_full_422_jpeg_multiframe_overflow", tmp_path)
    reader = UltrasoundDicomReader(warn_on_region_clip=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UltrasoundRegionWarning)
        _, meta = reader.get_data(reader.read(path))
    assert meta[K.REGIONS_CLIPPED]


def test_spacing_fallbacks_without_regions(tmp_path):
    grey = bmode_frames()
    p1 = write_image(tmp_path / "ps.dcm", grey, regions=None, extra={"PixelSpacing": [0.3, 0.25]})
    p2 = write_image(tmp_path / "none.dcm", grey, regions=None)
    p3 = write_image(tmp_path / "doppler_only.dcm", grey, regions=[Region(0, 0, 20, 20, data_type=3, spatial_format=3)])
    reader = UltrasoundDicomReader(crop_to_region=True)
    arr1, meta1 = reader.get_data(reader.read(p1))
    np.testing.assert_allclose(meta1["spacing"], [0.25, 0.3])  # (column spacing, row spacing)
    assert meta1[K.SPACING_SOURCE] == "pixel_spacing"
    assert arr1.shape == (64, 48) and not meta1[K.REGION_FOUND] and not meta1[K.CROPPED]
    np.testing.assert_array_equal(meta1[K.REGION_BOX], [0, 0, 64, 48])
    _, meta2 = reader.get_data(reader.read(p2))
    np.testing.assert_allclose(meta2["spacing"], [1.0, 1.0])
    assert meta2[K.SPACING_SOURCE] == "none"
    _, meta3 = reader.get_data(reader.read(p3))
    assert not meta3[K.REGION_FOUND]  # a spectral Doppler strip is not an imaging region


def test_region_choice_prefers_largest_tissue_region(tmp_path):
    regions = [Region(0, 0, 10, 10), Region(5, 5, 60, 40), Region(0, 0, 63, 47, data_type=2)]
    path = write_image(tmp_path / "a.dcm", bmode_frames(region=regions[1]), regions=regions)
    reader = UltrasoundDicomReader()
    _, meta = reader.get_data(reader.read(path))
    np.testing.assert_array_equal(meta[K.REGION_BOX], [5, 5, 61, 41])


def test_reverse_indexing_false_gives_rows_first(tmp_path):
    grey = bmode_frames(frames=2)
    path = write_image(tmp_path / "a.dcm", grey)
    reader = UltrasoundDicomReader(reverse_indexing=False)
    arr, meta = reader.get_data(reader.read(path))
    assert arr.shape == (48, 64, 2)
    np.testing.assert_array_equal(np.moveaxis(arr, 2, 0), grey)
    np.testing.assert_allclose(meta["spacing"], [0.2, 0.1, 1.0])
    r = DEFAULT_REGIONS[0]
    np.testing.assert_array_equal(meta[K.REGION_ROI_START], [r.y0, r.x0])


@pytest.mark.parametrize(
    "frames, expected_indices, frame_axis",
    [
        (None, [0, 1, 2, 3, 4], True),
        (2, [2], False),
        (-1, [4], False),
        ([4, 0], [4, 0], True),
        (range(1, 3), [1, 2], True),
        (slice(None, None, 2), [0, 2, 4], True),
    ],
)
def test_frame_selection(tmp_path, frames, expected_indices, frame_axis):
    grey = bmode_frames(frames=5)
    path = write_image(tmp_path / "cine.dcm", grey, transfer_syntax="jpeg_ls")
    reader = UltrasoundDicomReader(frames=frames)
    arr, meta = reader.get_data(reader.read(path))
    expected = grey[expected_indices]
    if frame_axis:
        assert arr.shape == (64, 48, len(expected_indices))
        np.testing.assert_array_equal(to_frames(arr), expected)
    else:
        assert arr.shape == (64, 48)
        np.testing.assert_array_equal(to_frames(arr)[0], expected[0])
    np.testing.assert_array_equal(meta[K.FRAME_INDICES], expected_indices)
    assert meta["NumberOfFrames"] == 5
    np.testing.assert_allclose(meta[K.FRAME_TIME], 33.3)
    if frame_axis:
        assert meta["affine"][2, 3] == expected_indices[0]


def test_frame_out_of_range_names_file(tmp_path):
    path = write_image(tmp_path / "cine.dcm", bmode_frames(frames=3))
    reader = UltrasoundDicomReader(frames=7)
    with pytest.raises(UltrasoundDicomError, match=r"cine\.dcm: frame 7 requested but there are only 3"):
        reader.get_data(reader.read(path))
    with pytest.raises(ValueError, match="frames must be"):
        UltrasoundDicomReader(frames="all")


def test_keep_color_keeps_doppler_rgb(tmp_path):
    rgb = with_doppler(bmode_frames())
    path = write_image(tmp_path / "doppler.dcm", rgb, photometric="RGB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        img = LoadImage(reader=UltrasoundDicomReader(keep_color=True), image_only=True, ensure_channel_first=True)(path)
    assert tuple(img.shape) == (3, 64, 48)
    np.testing.assert_array_equal(np.moveaxis(img.numpy(), 0, -1).swapaxes(0, 1), rgb[0])
    assert img.meta[K.COLOR] == "rgb"
    # without keep_color: BT.601 luma, written out here independently
    reader = UltrasoundDicomReader()
    grey, _ = reader.get_data(reader.read(path))
    f = rgb[0].astype(np.float64)
    luma = 0.299 * f[..., 0] + 0.587 * f[..., 1] + 0.114 * f[..., 2]
    np.testing.assert_allclose(grey.T, luma, atol=1e-3)
    assert not np.allclose(grey.T, f[..., 0])  # the colour blob changes the grey level


def test_keep_color_on_ybr_jpeg_returns_rgb(tmp_path):
    rgb = with_doppler(bmode_frames(frames=2))
    path = write_image(tmp_path / "c.dcm", rgb, photometric="YBR_FULL_422", transfer_syntax="jpeg_baseline")
    reader = UltrasoundDicomReader(keep_color=True)
    arr, meta = reader.get_data(reader.read(path))
    assert arr.shape == (64, 48, 2, 3) and meta["original_channel_dim"] == -1
    got = np.moveaxis(arr, 2, 0).swapaxes(1, 2)  # (F, R, C, 3)
    assert np.abs(got - rgb).mean() < 4  # chroma is subsampled and JPEG is lossy
    red = got[:, 16:22, 21:29]
    assert red[..., 0].mean() > 150 and red[..., 2].mean() < 90  # still red, i.e. converted from YBR


def test_mono1_and_windowing_options(tmp_path):
    path, expected = build_variant("mono1_16bit", tmp_path)
    raw = UltrasoundDicomReader(invert_monochrome1=False)
    arr, _ = raw.get_data(raw.read(path))
    np.testing.assert_array_equal(arr.T, 4095 - expected[0])
    path, expected = build_variant("mono2_window", tmp_path)
    no_voi = UltrasoundDicomReader(apply_voi_lut=False)
    arr, _ = no_voi.get_data(no_voi.read(path))
    assert arr.max() == 255 * 16  # stored values, not windowed


def test_voi_lut_sequence_is_applied(tmp_path):
    grey = bmode_frames()
    lut = (4095 - np.arange(256) * 8).astype(np.uint16)  # a decreasing 12-bit lookup table for 8-bit input
    item = Dataset()
    item.LUTDescriptor = [256, 0, 12]
    item.LUTData = lut.tolist()
    item["LUTData"].VR = "US"
    path = write_image(tmp_path / "voi.dcm", grey, extra={"VOILUTSequence": pydicom.sequence.Sequence([item])})
    reader = UltrasoundDicomReader()
    arr, _ = reader.get_data(reader.read(path))
    np.testing.assert_array_equal(arr.T, lut[grey[0]])
    off = UltrasoundDicomReader(apply_voi_lut=False)
    np.testing.assert_array_equal(off.get_data(off.read(path))[0].T, grey[0])


def test_load_imaged_and_list_of_files(tmp_path):
    p1 = write_image(tmp_path / "a.dcm", bmode_frames(seed=1))
    p2 = write_image(tmp_path / "b.dcm", bmode_frames(seed=2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = LoadImaged(keys="image", reader=UltrasoundDicomReader(), image_only=True, ensure_channel_first=True)(
            {"image": [p1, p2]}
        )
    assert tuple(d["image"].shape) == (2, 64, 48)
    np.testing.assert_array_equal(d["image"][1].numpy().T, bmode_frames(seed=2)[0])


def test_metadata_collates_into_a_batch(tmp_path, loader):
    p1, _ = build_variant("mono2_multiframe", tmp_path)
    p2 = write_image(tmp_path / "other.dcm", bmode_frames(frames=4, seed=5), transfer_syntax="rle")
    batch = list_data_collate([{"image": loader(p1)}, {"image": loader(p2)}])
    assert tuple(batch["image"].shape) == (2, 1, 64, 48, 4)
    assert len(batch["image"].meta["SOPInstanceUID"]) == 2


def test_verify_suffix(tmp_path):
    reader = UltrasoundDicomReader()
    dcm = write_image(tmp_path / "a.dcm", bmode_frames())
    no_suffix = write_image(tmp_path / "IM_0001", bmode_frames())
    text = tmp_path / "notes"
    text.write_text("not dicom")
    assert reader.verify_suffix(dcm) and reader.verify_suffix(str(no_suffix))
    assert reader.verify_suffix("missing.DCM")  # by name, like MONAI's readers
    assert not reader.verify_suffix(text)
    assert not reader.verify_suffix("image.png") and not reader.verify_suffix("vol.nii.gz")
    assert reader.verify_suffix([dcm, no_suffix]) and not reader.verify_suffix([dcm, text])


def test_force_reads_files_without_preamble(tmp_path):
    ds = make_image_dataset(bmode_frames())
    path = tmp_path / "raw.dcm"
    if PYDICOM_MAJOR >= 3:
        pydicom.dcmwrite(path, ds, enforce_file_format=False, little_endian=True, implicit_vr=False)
    else:
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.preamble = None
        ds.save_as(str(path), write_like_original=True)
    assert path.read_bytes()[128:132] != b"DICM"
    with pytest.raises(UltrasoundDicomError, match=r"raw\.dcm: not a DICOM file"):
        UltrasoundDicomReader().read(path)
    reader = UltrasoundDicomReader(force=True)
    arr, _ = reader.get_data(reader.read(path))
    np.testing.assert_array_equal(arr.T, bmode_frames()[0])


# ----------------------------------------------------------------------------------------------- bad input


def _bad_files(folder):
    """name -> (path, expected reason pattern)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = write_image(folder / "good.dcm", bmode_frames())
    text = folder / "readme.txt"
    text.write_text("this is not a DICOM file\n" * 10)
    png = folder / "image.dcm"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(300))
    truncated = folder / "truncated.dcm"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) - 1500])
    header_cut = folder / "header_cut.dcm"
    header_cut.write_bytes(data[:200])
    no_pixels_ds = make_image_dataset(bmode_frames())
    del no_pixels_ds.PixelData
    no_pixels = save_dataset(no_pixels_ds, folder / "no_pixels.dcm")
    sr = save_dataset(make_sr_dataset(), folder / "report.dcm")
    h264 = write_image(folder / "video.dcm", bmode_frames(frames=2), transfer_syntax="h264")
    return {
        "not_dicom_text": (text, r"not a DICOM file"),
        "not_dicom_png": (png, r"not a DICOM file"),
        "truncated_pixels": (truncated, r"truncated|corrupt"),
        "truncated_header": (header_cut, r"truncated|corrupt|not a DICOM"),
        "no_pixel_data": (no_pixels, r"no pixel data"),
        "structured_report": (sr, r"structured report .*not an image"),
        "unsupported_syntax": (h264, r"unsupported transfer syntax .*H\.264"),
    }, good


@pytest.mark.parametrize(
    "case",
    [
        "not_dicom_text",
        "not_dicom_png",
        "truncated_pixels",
        "truncated_header",
        "no_pixel_data",
        "structured_report",
        "unsupported_syntax",
    ],
)
def test_bad_input_raises_clear_error(case, tmp_path):
    cases, _ = _bad_files(tmp_path)
    path, reason = cases[case]
    reader = UltrasoundDicomReader()
    with pytest.raises(UltrasoundDicomError, match=reason) as info:
        reader.get_data(reader.read(path))
    assert str(info.value).startswith(f"{path}: ")
    assert info.value.filename == str(path)
    assert isinstance(info.value, ValueError)


def test_bad_input_through_load_image_names_file_and_reason(tmp_path):
    cases, _ = _bad_files(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loader = LoadImage(reader=UltrasoundDicomReader(), image_only=True)
    for path, reason in cases.values():
        # read() errors come wrapped by LoadImage (it tries its other readers); get_data() errors come as they are
        with pytest.raises((UltrasoundDicomError, RuntimeError)) as info:
            loader(path)
        assert str(path) in str(info.value)
        assert any(re.search(reason, line) for line in str(info.value).splitlines()), str(info.value)


def test_missing_and_folder_paths(tmp_path):
    with pytest.raises(UltrasoundDicomError, match="file not found"):
        UltrasoundDicomReader().read(tmp_path / "nope.dcm")
    with pytest.raises(UltrasoundDicomError, match="is a folder"):
        UltrasoundDicomReader().read(tmp_path)


def test_missing_decoder_says_what_to_install(tmp_path, monkeypatch):
    path = write_image(tmp_path / "j.dcm", bmode_frames(), transfer_syntax="jpeg_baseline")
    if PYDICOM_MAJOR >= 3:
        from pydicom.pixels import get_decoder

        decoder = get_decoder(JPEGBaseline8Bit)
        monkeypatch.setattr(decoder, "_available", {})
        monkeypatch.setattr(decoder, "_unavailable", {"pylibjpeg": ("pylibjpeg-libjpeg",), "pillow": ("pillow",)})
    else:
        from pydicom.pixel_data_handlers import pillow_handler, pylibjpeg_handler

        monkeypatch.setattr(pillow_handler, "is_available", lambda: False)
        monkeypatch.setattr(pylibjpeg_handler, "is_available", lambda: False)
    reader = UltrasoundDicomReader()
    with pytest.raises(UltrasoundDicomError, match=r"j\.dcm: no decoder installed .*JPEG Baseline.*pylibjpeg-libjpeg"):
        reader.get_data(reader.read(path))


def test_load_dicom_folder_reports_skips_and_summarises(tmp_path, caplog):
    cases, good = _bad_files(tmp_path / "in")
    second = write_image(tmp_path / "in" / "IM_0002", bmode_frames(frames=2), transfer_syntax="rle")
    (tmp_path / "in" / ".hidden").write_text("ignored")
    reported = []
    with caplog.at_level(logging.WARNING, logger="usgen_monai.data.dicom_reader"):
        result = load_dicom_folder(tmp_path / "in", on_error=lambda p, r: reported.append(p.name))
    assert isinstance(result, DicomFolderResult)
    assert [p.name for p in result.paths] == ["IM_0002", "good.dcm"]
    assert tuple(result.images[0].shape) == (1, 64, 48, 2) and tuple(result.images[1].shape) == (1, 64, 48)
    assert sorted(p.name for p, _ in result.failures) == sorted(p.name for p, _ in cases.values())
    assert sorted(reported) == sorted(p.name for p, _ in cases.values())
    reasons = {p.name: r for p, r in result.failures}
    assert "structured report" in reasons["report.dcm"] and "no pixel data" in reasons["no_pixels.dcm"]
    text = caplog.text
    assert "skipped" in text and "report.dcm" in text
    assert f"loaded 2 of {2 + len(cases)} file(s), skipped {len(cases)}" in text
    assert second.exists()
    with pytest.raises(ValueError, match="is not a folder"):
        load_dicom_folder(good)


def test_mixed_png_and_dicom_pipeline(tmp_path):
    """Bundles list PILReader and this reader: DICOM files go to this reader, PNG files fall through to PIL."""
    from PIL import Image

    grey = bmode_frames()
    dcm = write_image(tmp_path / "a.dcm", grey)
    png = tmp_path / "b.png"
    Image.fromarray(grey[0]).save(png)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        load = LoadImaged(keys="image", reader=["PILReader", "usgen_monai.data.UltrasoundDicomReader"], image_only=True)
        a, b = load({"image": dcm})["image"], load({"image": png})["image"]
    np.testing.assert_array_equal(a.numpy(), b.numpy())  # same pixels, same axis order
    assert a.meta["SOPInstanceUID"] and "SOPInstanceUID" not in b.meta
