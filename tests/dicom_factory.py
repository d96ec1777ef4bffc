"""Build the DICOM files the DICOM tests need, from nothing.

Every variant the ultrasound reader supports is produced here with pydicom and encoders installed from the package
registries, so the tests never depend on files checked into the repository:

- uncompressed (explicit and implicit VR little endian) and deflated data sets: pydicom;
- JPEG baseline (grey, YBR_FULL_422 and YBR_FULL colour, single- and multi-frame): Pillow's JPEG encoder;
- JPEG-LS lossless and near-lossless: ``pyjpegls`` (module ``jpeg_ls``);
- JPEG 2000 lossless (grey, and RGB with the reversible colour transform, YBR_RCT) and lossy (YBR_ICT):
  ``pylibjpeg-openjpeg`` (module ``openjpeg``);
- RLE lossless: pydicom's own RLE encoder (``Dataset.compress``).

The helpers work with pydicom 2.4 and 3.x. Pixel content is a smooth synthetic B-mode-like image (a textured imaging
region, a dark "lesion" that moves from frame to frame and a block of burned-in "text" outside the region), so lossy
codecs stay close to the source and the crop to the imaging region is visible in the pixels.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence as DicomSequence
from pydicom.uid import (
    JPEG2000,
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
    generate_uid,
)

__all__ = [
    "COMPREHENSIVE_SR_STORAGE",
    "DEFAULT_REGIONS",
    "H264_TRANSFER_SYNTAX",
    "OVERFLOW_REGIONS",
    "PYDICOM_MAJOR",
    "SECONDARY_CAPTURE_STORAGE",
    "SOURCE_PATIENT",
    "US_IMAGE_STORAGE",
    "US_MULTIFRAME_IMAGE_STORAGE",
    "VARIANTS",
    "Region",
    "bmode_frames",
    "build_variant",
    "frame_level",
    "frame_numbered_cine",
    "linear_window",
    "make_image_dataset",
    "make_sr_dataset",
    "rgb_to_ybr_full",
    "save_dataset",
    "with_doppler",
    "write_image",
]

PYDICOM_MAJOR = int(pydicom.__version__.split(".")[0])

US_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.6.1")
US_MULTIFRAME_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.3.1")
SECONDARY_CAPTURE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.7")
COMPREHENSIVE_SR_STORAGE = UID("1.2.840.10008.5.1.4.1.1.88.33")
H264_TRANSFER_SYNTAX = UID("1.2.840.10008.1.2.4.102")  # MPEG-4 AVC/H.264 High Profile / Level 4.1

# identifiers a writer must never copy into synthetic output unless asked to
SOURCE_PATIENT = {
    "PatientName": "Doe^Jane^Q",
    "PatientID": "MRN-8675309",
    "PatientBirthDate": "19800101",
    "PatientSex": "F",
    "OtherPatientIDs": "ALT-4242",
    "AccessionNumber": "ACC-20240317-01",
    "InstitutionName": "Springfield General Hospital",
    "ReferringPhysicianName": "House^Gregory",
    "StudyDate": "20240317",
    "StudyTime": "101500",
    "SeriesDate": "20240317",
    "ContentDate": "20240317",
    "ContentTime": "101512",
    "StudyID": "STUDY-77",
    "OperatorsName": "Sonographer^Sam",
    "DeviceSerialNumber": "SN-US-000123",
}


@dataclass(frozen=True)
class Region:
    """One item of the Sequence of Ultrasound Regions, corners inclusive as DICOM stores them."""

    x0: int
    y0: int
    x1: int
    y1: int
    delta_x: float = 0.01  # physical units per pixel (cm when units == 3)
    delta_y: float = 0.02
    data_type: int = 1  # 1 = tissue (B-mode), 2 = colour flow, 3 = PW spectral Doppler
    spatial_format: int = 1  # 1 = 2D
    units_x: int = 3  # 3 = cm
    units_y: int = 3

    def to_item(self) -> Dataset:
        item = Dataset()
        item.RegionSpatialFormat = self.spatial_format
        item.RegionDataType = self.data_type
        item.RegionFlags = 0
        item.RegionLocationMinX0 = self.x0
        item.RegionLocationMinY0 = self.y0
        item.RegionLocationMaxX1 = self.x1
        item.RegionLocationMaxY1 = self.y1
        item.PhysicalUnitsXDirection = self.units_x
        item.PhysicalUnitsYDirection = self.units_y
        item.PhysicalDeltaX = self.delta_x
        item.PhysicalDeltaY = self.delta_y
        return item


# image of 48 rows x 64 columns: a tissue region plus a small spectral Doppler strip below it
DEFAULT_REGIONS = (Region(8, 6, 55, 37, delta_x=0.01, delta_y=0.02), Region(8, 40, 40, 46, data_type=3, units_y=7))
# regions recorded for a larger screen: the tissue region runs past the right and bottom edges,
# and one colour-flow region lies entirely outside the image
OVERFLOW_REGIONS = (
    Region(10, 4, 95, 70, delta_x=0.005, delta_y=0.005),
    Region(4, 2, 20, 12, data_type=2),
    Region(100, 80, 140, 120, data_type=2),
)


def bmode_frames(rows: int = 48, cols: int = 64, frames: int = 1, seed: int = 0, region: Region | None = None):
    """Smooth B-mode-like uint8 frames, shape ``(frames, rows, cols)``.

    Inside the region (default: the first of ``DEFAULT_REGIONS``, clipped to the image) there is a smooth speckle-like
    texture and a dark ellipse that moves one pixel per frame; outside it the image is black except for a
    bright block of burned-in "text" in the top-left corner.
    """
    rng = np.random.default_rng(seed)
    region = region or DEFAULT_REGIONS[0]
    yy, xx = np.mgrid[0:rows, 0:cols].astype(np.float64)
    out = np.zeros((frames, rows, cols), dtype=np.uint8)
    x0, y0 = max(region.x0, 0), max(region.y0, 0)
    x1, y1 = min(region.x1, cols - 1), min(region.y1, rows - 1)
    coarse = rng.uniform(60, 200, size=(4, 5))
    # bilinear upsampling of a coarse grid: smooth, so lossy JPEG stays within a few grey levels
    gy = np.linspace(0, coarse.shape[0] - 1, rows)
    gx = np.linspace(0, coarse.shape[1] - 1, cols)
    iy, ix = np.clip(gy.astype(int), 0, coarse.shape[0] - 2), np.clip(gx.astype(int), 0, coarse.shape[1] - 2)
    fy, fx = (gy - iy)[:, None], (gx - ix)[None, :]
    base = (
        coarse[iy][:, ix] * (1 - fy) * (1 - fx)
        + coarse[iy + 1][:, ix] * fy * (1 - fx)
        + coarse[iy][:, ix + 1] * (1 - fy) * fx
        + coarse[iy + 1][:, ix + 1] * fy * fx
    )
    for f in range(frames):
        cy, cx = (y0 + y1) / 2 + 0.5 * f, (x0 + x1) / 2 + f
        lesion = ((yy - cy) / max((y1 - y0) / 5, 1)) ** 2 + ((xx - cx) / max((x1 - x0) / 5, 1)) ** 2 < 1
        frame = np.zeros((rows, cols))
        frame[y0 : y1 + 1, x0 : x1 + 1] = base[y0 : y1 + 1, x0 : x1 + 1]
        frame[lesion & (frame > 0)] = 25
        frame[1:4, 1:6] = 255  # burned-in annotation outside the imaging region
        out[f] = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    return out


def frame_level(frame: int) -> int:
    """The grey level of the imaging region in frame ``frame`` of :py:func:`frame_numbered_cine`."""
    return 40 + 5 * int(frame)


def frame_numbered_cine(frames: int = 30, rows: int = 48, cols: int = 64, region: Region | None = None) -> np.ndarray:
    """B-mode stored as colour, ``(frames, rows, cols, 3)`` uint8 with R = G = B, whose frames tell themselves apart:
    the imaging region (default the first of ``DEFAULT_REGIONS``) of frame ``f`` is uniform at
    ``frame_level(f)``, the rest black but for a block of burned-in "text" (255) in the top-left corner. A reader that
    picks frame ``f`` and crops to the region sees exactly ``frame_level(f)`` everywhere."""
    if frame_level(frames - 1) > 254:
        raise ValueError(f"frame_numbered_cine holds at most 43 frames, got frames={frames}.")
    region = region or DEFAULT_REGIONS[0]
    grey = np.zeros((frames, rows, cols), np.uint8)
    for f in range(frames):
        grey[f, region.y0 : region.y1 + 1, region.x0 : region.x1 + 1] = frame_level(f)
    grey[:, 1:4, 1:6] = 255
    return np.repeat(grey[..., None], 3, axis=-1)


def with_doppler(grey: np.ndarray) -> np.ndarray:
    """Grey frames ``(F, R, C)`` -> RGB ``(F, R, C, 3)`` with a red/blue colour-flow blob in the middle."""
    rgb = np.repeat(grey[..., None], 3, axis=-1).astype(np.int16)
    _, r, c = grey.shape
    rgb[:, r // 3 : r // 3 + 6, c // 3 : c // 3 + 8] = (200, 30, 30)
    rgb[:, r // 3 + 6 : r // 3 + 10, c // 3 : c // 3 + 8] = (30, 40, 210)
    return rgb.astype(np.uint8)


def rgb_to_ybr_full(rgb: np.ndarray) -> np.ndarray:
    """RGB -> YBR_FULL (ITU-R BT.601 full range, as in DICOM PS3.3 C.7.6.3.1.2), uint8."""
    rgb = rgb.astype(np.float64)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = -0.168736 * r - 0.331264 * g + 0.5 * b + 128
    cr = 0.5 * r - 0.418688 * g - 0.081312 * b + 128
    return np.clip(np.round(np.stack([y, cb, cr], axis=-1)), 0, 255).astype(np.uint8)


def _ybr_full_422_bytes(ybr: np.ndarray) -> bytes:
    """Uncompressed YBR_FULL_422 layout: for each pair of pixels Y0 Y1 Cb Cr (chroma averaged over the pair)."""
    f, r, c, _ = ybr.shape
    y = ybr[..., 0].reshape(f, r, c // 2, 2)
    cb = ybr[..., 1].reshape(f, r, c // 2, 2).mean(axis=-1).round().astype(np.uint8)
    cr = ybr[..., 2].reshape(f, r, c // 2, 2).mean(axis=-1).round().astype(np.uint8)
    return np.stack([y[..., 0], y[..., 1], cb, cr], axis=-1).tobytes()


def _uid(uid_seed: str | None, what: str) -> UID:
    """A random UID, or a reproducible one derived from ``uid_seed`` (so a file's bytes are the same every run)."""
    return generate_uid() if uid_seed is None else generate_uid(entropy_srcs=[uid_seed, what])


def _base_dataset(
    sop_class: UID, transfer_syntax: UID, patient: dict | None, modality: str, uid_seed: str | None = None
) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = _uid(uid_seed, "sop")
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = UID("1.2.826.0.1.3680043.8.498.1")
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = _uid(uid_seed, "study")
    ds.SeriesInstanceUID = _uid(uid_seed, "series")
    ds.Modality = modality
    ds.Manufacturer = "Factory Scanner Inc"
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    for key, value in (SOURCE_PATIENT if patient is None else patient).items():
        setattr(ds, key, value)
    return ds


def make_image_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    transfer_syntax: str = "explicit",
    sop_class: UID | None = None,
    regions: Sequence[Region] | None = DEFAULT_REGIONS,
    bits_stored: int | None = None,
    patient: dict | None = None,
    frame_of_reference: bool = False,
    extra: dict | None = None,
    uid_seed: str | None = None,
) -> Dataset:
    """Wrap ``pixels`` in an image data set and encode it.

    Args:
        pixels: ``(frames, rows, cols)`` grey / palette indices, or ``(frames, rows, cols, 3)`` RGB. The RGB data is
            converted to the requested colour ``photometric`` (``YBR_FULL``, ``YBR_FULL_422``) before encoding.
        photometric: PhotometricInterpretation to store. For JPEG 2000 colour use ``"YBR_RCT"`` (lossless) or
            ``"YBR_ICT"`` (lossy); for JPEG baseline colour ``"YBR_FULL_422"`` or ``"YBR_FULL"``.
        transfer_syntax: one of ``explicit``, ``implicit``, ``deflate``, ``jpeg_baseline``, ``jpeg_ls``,
            ``jpeg_ls_near``, ``j2k_lossless``, ``j2k``, ``rle`` or ``h264`` (bytes that no decoder can read).
        sop_class: defaults to US (multi-frame) Image Storage.
        regions: Sequence of Ultrasound Regions, ``None`` for none.
        bits_stored: defaults to the dtype's size.
        patient: patient/study attributes to embed, defaults to ``SOURCE_PATIENT``.
        frame_of_reference: add a FrameOfReferenceUID.
        extra: more attributes to set (keyword -> value).
        uid_seed: derive the UIDs from this string (reproducible files) instead of random ones.
    """
    pixels = np.asarray(pixels)
    if pixels.ndim == 2:
        pixels = pixels[None]
    frames = pixels.shape[0]
    color = pixels.ndim == 4
    if sop_class is None:
        sop_class = US_MULTIFRAME_IMAGE_STORAGE if frames > 1 else US_IMAGE_STORAGE
    ts = {
        "explicit": ExplicitVRLittleEndian,
        "implicit": ImplicitVRLittleEndian,
        "deflate": DeflatedExplicitVRLittleEndian,
        "jpeg_baseline": JPEGBaseline8Bit,
        "jpeg_ls": JPEGLSLossless,
        "jpeg_ls_near": JPEGLSNearLossless,
        "j2k_lossless": JPEG2000Lossless,
        "j2k": JPEG2000,
        "rle": RLELossless,
        "h264": H264_TRANSFER_SYNTAX,
    }[transfer_syntax]
    modality = "OT" if sop_class == SECONDARY_CAPTURE_STORAGE else "US"
    ds = _base_dataset(sop_class, ts, patient, modality, uid_seed)
    if sop_class == SECONDARY_CAPTURE_STORAGE:
        ds.ConversionType = "WSD"
    if frame_of_reference:
        ds.FrameOfReferenceUID = _uid(uid_seed, "frame_of_reference")
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Rows, ds.Columns = int(pixels.shape[1]), int(pixels.shape[2])
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    bits_allocated = pixels.dtype.itemsize * 8
    ds.BitsAllocated = bits_allocated
    ds.BitsStored = bits_stored or bits_allocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if color:
        ds.PlanarConfiguration = 0
    if frames > 1 or sop_class == US_MULTIFRAME_IMAGE_STORAGE:
        ds.NumberOfFrames = frames
        ds.FrameTime = 33.3
        ds.FrameIncrementPointer = pydicom.tag.Tag("FrameTime")
    if regions:
        ds.SequenceOfUltrasoundRegions = DicomSequence([r.to_item() for r in regions])
    ds.BurnedInAnnotation = "YES"
    ds.LossyImageCompression = "01" if transfer_syntax in ("jpeg_baseline", "jpeg_ls_near", "j2k") else "00"
    for key, value in (extra or {}).items():
        setattr(ds, key, value)
    _encode_pixels(ds, pixels, transfer_syntax, photometric)
    return ds


def _encode_pixels(ds: Dataset, pixels: np.ndarray, transfer_syntax: str, photometric: str) -> None:
    color = pixels.ndim == 4
    if transfer_syntax in ("explicit", "implicit", "deflate"):
        if photometric == "YBR_FULL":
            ds.PixelData = rgb_to_ybr_full(pixels).tobytes()
        elif photometric == "YBR_FULL_422":
            ds.PixelData = _ybr_full_422_bytes(rgb_to_ybr_full(pixels))
        else:
            ds.PixelData = np.ascontiguousarray(pixels).tobytes()
        if len(ds.PixelData) % 2:
            ds.PixelData += b"\x00"
        return
    if transfer_syntax == "rle":
        # pydicom's own RLE encoder; keep the SOP Instance UID (pydicom 3 would replace it)
        uid = ds.SOPInstanceUID
        arr = pixels if pixels.shape[0] > 1 else pixels[0]
        ds.compress(RLELossless, arr, encoding_plugin="pydicom")
        ds.SOPInstanceUID = uid
        ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.PhotometricInterpretation = photometric
        return
    fragments = []
    for frame in pixels:
        if transfer_syntax == "jpeg_baseline":
            from PIL import Image

            buf = io.BytesIO()
            if color:
                subsampling = {"YBR_FULL_422": 1, "YBR_FULL": 0}[photometric]
                Image.fromarray(frame, mode="RGB").save(buf, format="JPEG", quality=95, subsampling=subsampling)
            else:
                Image.fromarray(frame, mode="L").save(buf, format="JPEG", quality=95)
            fragments.append(buf.getvalue())
        elif transfer_syntax in ("jpeg_ls", "jpeg_ls_near"):
            import jpeg_ls

            fragments.append(bytes(jpeg_ls.encode_array(frame, lossy_error=0 if transfer_syntax == "jpeg_ls" else 2)))
        elif transfer_syntax in ("j2k_lossless", "j2k"):
            import openjpeg

            kwargs = {"compression_ratios": [4]} if transfer_syntax == "j2k" else {}
            pi = 1 if color else 2  # sRGB (MCT applied -> YBR_RCT / YBR_ICT) or greyscale
            fragments.append(openjpeg.encode(frame, photometric_interpretation=pi, use_mct=color, **kwargs))
        elif transfer_syntax == "h264":
            fragments.append(b"\x00\x00\x00\x01\x67" + bytes(range(200)))  # an H.264 NAL start, then junk
        else:  # pragma: no cover - guarded by make_image_dataset
            raise ValueError(f"unknown transfer syntax {transfer_syntax!r}")
    ds.PixelData = encapsulate(fragments)
    ds["PixelData"].VR = "OB"
    if PYDICOM_MAJOR < 3:
        ds["PixelData"].is_undefined_length = True


def make_sr_dataset() -> Dataset:
    """A minimal Comprehensive SR document: a valid DICOM object with no pixel data."""
    ds = _base_dataset(COMPREHENSIVE_SR_STORAGE, ExplicitVRLittleEndian, None, "SR")
    ds.ValueType = "CONTAINER"
    ds.ContinuityOfContent = "SEPARATE"
    concept = Dataset()
    concept.CodeValue, concept.CodingSchemeDesignator, concept.CodeMeaning = (
        "126000",
        "DCM",
        "Imaging Measurement Report",
    )
    ds.ConceptNameCodeSequence = DicomSequence([concept])
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    return ds


def save_dataset(ds: Dataset, path: str | Path) -> Path:
    """Write ``ds`` as a DICOM Part 10 file (with preamble and file meta), on pydicom 2.4 or 3.x."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if PYDICOM_MAJOR >= 3:
        ds.save_as(path, enforce_file_format=True)
    else:
        ts = ds.file_meta.TransferSyntaxUID
        ds.is_little_endian = True
        ds.is_implicit_VR = ts == ImplicitVRLittleEndian
        ds.save_as(str(path), write_like_original=False)
    return path


def write_image(path: str | Path, pixels: np.ndarray, **kwargs) -> Path:
    """``make_image_dataset(pixels, **kwargs)`` written to ``path``."""
    return save_dataset(make_image_dataset(pixels, **kwargs), path)


@dataclass
class Variant:
    """A file to build and what reading it should give back (grey, in row/column order)."""

    name: str
    kwargs: dict
    pixels: str = "grey"  # grey | rgb_grey (grey stored as colour) | doppler | palette | mono1 | window
    frames: int = 1
    tolerance: float = 0.0  # max mean absolute error against the expected grey image
    lossy: bool = False


# name -> how to build it; `expected_grey` in build_variant gives the pixels the reader must return
VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in [
        Variant("mono2_explicit", {"transfer_syntax": "explicit"}),
        Variant("mono2_implicit", {"transfer_syntax": "implicit"}),
        Variant("mono2_deflate", {"transfer_syntax": "deflate"}),
        Variant("mono2_secondary_capture", {"transfer_syntax": "explicit", "sop_class": SECONDARY_CAPTURE_STORAGE}),
        Variant("mono1_16bit", {"transfer_syntax": "explicit", "photometric": "MONOCHROME1"}, pixels="mono1"),
        Variant("mono2_window", {"transfer_syntax": "explicit"}, pixels="window"),
        Variant("rgb_explicit", {"transfer_syntax": "explicit", "photometric": "RGB"}, pixels="rgb_grey"),
        Variant("ybr_full_explicit", {"transfer_syntax": "explicit", "photometric": "YBR_FULL"}, "rgb_grey", 1, 0.6),
        Variant("ybr_full_422_explicit", {"photometric": "YBR_FULL_422"}, "rgb_grey", 1, 0.6),
        Variant("palette_color", {"transfer_syntax": "explicit", "photometric": "PALETTE COLOR"}, pixels="palette"),
        Variant("mono2_rle", {"transfer_syntax": "rle"}),
        Variant("rgb_rle", {"transfer_syntax": "rle", "photometric": "RGB"}, pixels="rgb_grey"),
        Variant("mono2_jpeg_baseline", {"transfer_syntax": "jpeg_baseline"}, tolerance=2.0, lossy=True),
        Variant(
            "ybr_full_422_jpeg_baseline",
            {"transfer_syntax": "jpeg_baseline", "photometric": "YBR_FULL_422"},
            "rgb_grey",
            tolerance=2.5,
            lossy=True,
        ),
        Variant(
            "ybr_full_jpeg_baseline",
            {"transfer_syntax": "jpeg_baseline", "photometric": "YBR_FULL"},
            "rgb_grey",
            tolerance=2.5,
            lossy=True,
        ),
        Variant("mono2_jpeg_ls", {"transfer_syntax": "jpeg_ls"}),
        Variant("mono2_jpeg_ls_near", {"transfer_syntax": "jpeg_ls_near"}, tolerance=2.0, lossy=True),
        Variant("mono2_j2k_lossless", {"transfer_syntax": "j2k_lossless"}),
        Variant("ybr_rct_j2k_lossless", {"transfer_syntax": "j2k_lossless", "photometric": "YBR_RCT"}, "rgb_grey"),
        Variant(
            "ybr_ict_j2k", {"transfer_syntax": "j2k", "photometric": "YBR_ICT"}, "rgb_grey", tolerance=3.0, lossy=True
        ),
        Variant("mono2_multiframe", {"transfer_syntax": "explicit"}, frames=4),
        Variant(
            "ybr_full_422_jpeg_multiframe_overflow",
            {"transfer_syntax": "jpeg_baseline", "photometric": "YBR_FULL_422", "regions": OVERFLOW_REGIONS},
            "rgb_grey",
            frames=3,
            tolerance=2.5,
            lossy=True,
        ),
    ]
}

# palette: index i -> grey level PALETTE_LEVELS[i] stored in all three 16-bit LUTs
PALETTE_LEVELS = np.arange(256, dtype=np.uint16)[::-1].copy()


def linear_window(x: np.ndarray, center: float, width: float, y_min: float, y_max: float) -> np.ndarray:
    """The LINEAR VOI windowing function of DICOM PS3.3 C.11.2.1.2.1, written out independently of pydicom."""
    lo, hi = center - 0.5 - (width - 1) / 2, center - 0.5 + (width - 1) / 2
    y = ((x - (center - 0.5)) / (width - 1) + 0.5) * (y_max - y_min) + y_min
    return np.where(x <= lo, y_min, np.where(x > hi, y_max, y))


def build_variant(name: str, folder: str | Path, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Write variant ``name`` into ``folder``; return its path and the expected grey pixels ``(F, R, C)`` float.

    The file is the same, byte for byte, on every call (UIDs derived from ``name`` and ``seed``)."""
    v = VARIANTS[name]
    regions = v.kwargs.get("regions", DEFAULT_REGIONS)
    grey = bmode_frames(frames=v.frames, seed=seed, region=regions[0] if regions else None)
    kwargs = dict(v.kwargs)
    expected = grey.astype(np.float64)
    if v.pixels == "grey":
        pixels = grey
    elif v.pixels == "rgb_grey":
        pixels = np.repeat(grey[..., None], 3, axis=-1)
    elif v.pixels == "palette":
        pixels = (255 - grey).astype(np.uint8)  # indices into a reversed ramp: LUT[255 - g] == g
        desc = [256, 0, 16]
        lut = (PALETTE_LEVELS.astype(np.uint32) * 257).astype(np.uint16)  # 8-bit level -> full 16-bit range
        extra = {
            "RedPaletteColorLookupTableDescriptor": desc,
            "GreenPaletteColorLookupTableDescriptor": desc,
            "BluePaletteColorLookupTableDescriptor": desc,
            "RedPaletteColorLookupTableData": lut.tobytes(),
            "GreenPaletteColorLookupTableData": lut.tobytes(),
            "BluePaletteColorLookupTableData": lut.tobytes(),
        }
        kwargs["extra"] = extra
        expected = grey.astype(np.float64) * 257
    elif v.pixels == "mono1":
        # 12-bit MONOCHROME1: stored = 4095 - 16 * g, so the reader's inversion gives 16 * g back
        pixels = (4095 - grey.astype(np.uint16) * 16).astype(np.uint16)
        kwargs["bits_stored"] = 12
        expected = grey.astype(np.float64) * 16
    elif v.pixels == "window":
        # 16-bit data 0..4080 with a window that maps 1000..3000 linearly onto the output range
        pixels = (grey.astype(np.uint16) * 16).astype(np.uint16)
        kwargs["bits_stored"] = 12
        kwargs["extra"] = {"WindowCenter": 2000, "WindowWidth": 2000}
        expected = linear_window(pixels.astype(np.float64), 2000, 2000, 0.0, 4095.0)
    else:
        raise ValueError(f"unknown pixel kind {v.pixels!r}")
    path = write_image(Path(folder) / f"{name}.dcm", pixels, uid_seed=f"{name}-{seed}", **kwargs)
    return path, expected
