"""The MONAI Deploy app end to end, run as ``python -m usgen_monai deploy`` in a subprocess on DICOM files built here:
MONOCHROME2, RGB and palette colour images, YBR_FULL_422 JPEG cines with a Sequence of Ultrasound Regions (one whose
regions run past the image), simulated breast images inside larger frames with regions and burned-in text, plus a
truncated file, a text file, a CT image, an SR document and an ultrasound cine nobody can decode. One run; the SEGs
are read back with highdicom: geometry, references, patient and study, SNOMED CT codes, agreement with the bundle's
own masks (its inference config run on the same folder), dciodvfy; and, with trained weights, Dice against the
simulator's ground truth.

Weights: the shipped ``bundles/mgcc/models/model.pt`` (or ``model.ts``) when present; else ``$USGEN_DEPLOY_TEST_WEIGHTS``
(a weights file, copied into a temporary copy of the bundle); else random weights of the bundle's own ``network_def``
(the output bias set so that about half of an image is foreground, so the masks are not trivial). The Dice check
runs only with trained weights (shipped or ``$USGEN_DEPLOY_TEST_WEIGHTS``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import torch
from monai.bundle import ConfigParser
from monai.bundle import run as bundle_run
from PIL import Image

from tests.dicom_factory import (
    DEFAULT_REGIONS,
    SOURCE_PATIENT,
    Region,
    bmode_frames,
    build_variant,
    make_sr_dataset,
    save_dataset,
    write_image,
)

REPO = Path(__file__).resolve().parents[2]
SHIPPED_BUNDLE = REPO / "bundles" / "mgcc"
SHIPPED_WEIGHTS = [SHIPPED_BUNDLE / "models" / "model.pt", SHIPPED_BUNDLE / "models" / "model.ts"]
#: a weights file to use instead of the shipped ones for the Dice check (development, before they are committed)
WEIGHTS_ENV = "USGEN_DEPLOY_TEST_WEIGHTS"
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}

# name -> number of frames of the ultrasound inputs; the bad inputs and the stage at which each is skipped
ULTRASOUND = {
    "mono2_explicit": 1,
    "rgb_explicit": 1,
    "palette_color": 1,
    "ybr_full_422_jpeg_multiframe_overflow": 3,
    "cine_ybr_full_422_jpeg": 4,
    # simulated breast images (the bundle's domain) in a 320 x 300 frame with a tissue region and burned-in text
    "sim_mono2_0": 1,
    "sim_rgb_1": 1,
    "sim_mono2_2": 1,
    "sim_rgb_3": 1,
    "sim_cine_ybr_full_422_jpeg": 4,
}
#: where the 256 x 256 simulated image sits in its 320 x 300 frame (the Sequence of Ultrasound Regions says so)
SIM_REGION = Region(20, 30, 275, 285)
BAD = {
    "broken.dcm": "load",
    "notes.txt": "load",
    "ct.dcm": "select",
    "report_sr.dcm": "select",
    "undecodable_h264_cine.dcm": "preprocess",
}


def _shipped_weights_present() -> bool:
    return any(p.is_file() for p in SHIPPED_WEIGHTS)


def _copy_bundle(dest: Path) -> Path:
    shutil.copytree(SHIPPED_BUNDLE, dest, ignore=shutil.ignore_patterns("models", "eval", "runs", "__pycache__"))
    (dest / "models").mkdir()
    return dest


def _random_weights(bundle: Path) -> Path:
    """Random weights of the bundle's network_def, the output bias set to the median logit of a B-mode image."""
    parser = ConfigParser()
    parser.read_config(str(bundle / "configs" / "inference.json"))
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def").eval()
    size = parser.get_parsed_content("image_size")
    image = bmode_frames(rows=size[0], cols=size[1], region=Region(0, 0, size[1] - 1, size[0] - 1))[0] / 255.0
    with torch.no_grad():
        logits = net(torch.as_tensor(image, dtype=torch.float32)[None, None])
        net.main_decoder.head.bias -= logits.median()
    path = bundle / "models" / "model.pt"
    torch.save(net.state_dict(), path)
    return path


def _trained_weights() -> Path | None:
    if os.environ.get(WEIGHTS_ENV):
        return Path(os.environ[WEIGHTS_ENV])
    return next((p for p in SHIPPED_WEIGHTS if p.is_file()), None)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """The shipped bundle when it has weights; else a copy with ``$USGEN_DEPLOY_TEST_WEIGHTS`` or random weights."""
    if _shipped_weights_present() and not os.environ.get(WEIGHTS_ENV):
        return SHIPPED_BUNDLE
    root = _copy_bundle(tmp_path_factory.mktemp("bundle") / "mgcc")
    weights = _trained_weights()
    if weights is not None:
        shutil.copy(weights, root / "models" / weights.name)
    else:
        _random_weights(root)
    return root


def _simulated(folder: Path) -> dict[str, np.ndarray]:
    """Write the ``sim_*`` inputs; returns their ground-truth masks ``(F, rows, columns)``."""
    from usgen_monai.data.simulator import UltrasoundSimulator

    sim = UltrasoundSimulator(preset="breast", size=(256, 256))
    r = SIM_REGION

    def frame(seed: int) -> tuple[np.ndarray, np.ndarray]:
        sample = sim.sample(seed, finding=("benign", "malignant")[seed % 2])  # a lesion in every frame
        pixels, mask = np.zeros((320, 300), np.uint8), np.zeros((320, 300), np.uint8)
        pixels[r.y0 : r.y1 + 1, r.x0 : r.x1 + 1] = np.clip(np.round(sample.image * 255), 0, 255).astype(np.uint8)
        mask[r.y0 : r.y1 + 1, r.x0 : r.x1 + 1] = sample.mask > 0
        pixels[2:12, 2:40] = 255  # burned-in text outside the region
        return pixels, mask

    truth = {}
    for k in range(4):
        pixels, mask = frame(1000 + k)
        rgb = k % 2 == 1
        data = np.repeat(pixels[None, ..., None], 3, axis=-1) if rgb else pixels[None]  # (1, R, C[, 3])
        name = f"sim_{'rgb' if rgb else 'mono2'}_{k}"
        write_image(folder / f"{name}.dcm", data, photometric="RGB" if rgb else "MONOCHROME2", regions=[r],
                    uid_seed=name)  # fmt: skip
        truth[name] = mask[None]
    cine, masks = zip(*(frame(1004 + f) for f in range(4)))
    write_image(folder / "sim_cine_ybr_full_422_jpeg.dcm", np.repeat(np.stack(cine)[..., None], 3, axis=-1),
                transfer_syntax="jpeg_baseline", photometric="YBR_FULL_422", regions=[r], uid_seed="sim_cine")  # fmt: skip
    truth["sim_cine_ybr_full_422_jpeg"] = np.stack(masks)
    return truth


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """The input folder, and the simulator's masks of its ``sim_*`` files."""
    folder = tmp_path_factory.mktemp("dicom_in")
    for name in ULTRASOUND:
        if name != "cine_ybr_full_422_jpeg" and not name.startswith("sim_"):
            build_variant(name, folder)
    truth = _simulated(folder)
    cine = np.repeat(bmode_frames(frames=4, seed=3)[..., None], 3, axis=-1)
    write_image(folder / "cine_ybr_full_422_jpeg.dcm", cine, transfer_syntax="jpeg_baseline",
                photometric="YBR_FULL_422", regions=DEFAULT_REGIONS, uid_seed="cine")  # fmt: skip
    (folder / "broken.dcm").write_bytes((folder / "mono2_explicit.dcm").read_bytes()[:700])
    (folder / "notes.txt").write_text("not a DICOM file\n")
    write_image(folder / "ct.dcm", bmode_frames()[0], regions=None, extra={"Modality": "CT"}, uid_seed="ct")
    save_dataset(make_sr_dataset(), folder / "report_sr.dcm")
    write_image(folder / "undecodable_h264_cine.dcm", bmode_frames(frames=2), transfer_syntax="h264", uid_seed="h264")
    return folder, truth


def _deploy(inputs: Path, out: Path, bundle: Path) -> subprocess.CompletedProcess:
    args = [sys.executable, "-m", "usgen_monai", "deploy", "--input", str(inputs), "--output", str(out),
            "--bundle", str(bundle), "--venv", sys.prefix]  # fmt: skip
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600, env=ENV, check=False)


@pytest.fixture(scope="module")
def run(inputs, bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("dicom_out")
    proc = _deploy(inputs[0], out, bundle)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc, out, json.loads((out / "inference_summary.json").read_text())


def _seg_labels(seg_path: Path, source: Path, frames: int) -> np.ndarray:
    """The SEG's lesion mask (F, rows, columns) read with highdicom, by source instance / source frame."""
    seg = hd.seg.segread(str(seg_path))
    uid = pydicom.dcmread(source, stop_before_pixels=True).SOPInstanceUID
    kwargs = {"segment_numbers": [1], "combine_segments": True, "skip_overlap_checks": True}
    if frames == 1:
        return seg.get_pixels_by_source_instance(source_sop_instance_uids=[uid], **kwargs)
    return seg.get_pixels_by_source_frame(
        source_sop_instance_uid=uid, source_frame_numbers=list(range(1, frames + 1)), **kwargs
    )


def test_bad_files_are_reported_and_skipped_and_the_others_segmented(run, inputs):
    folder, _ = inputs
    proc, out, summary = run
    n = len(ULTRASOUND) + len(BAD)
    assert f"segmented {len(ULTRASOUND)} of {n} input(s)" in proc.stdout
    assert f"; {len(BAD)} failed: " in proc.stdout
    assert summary["num_inputs"] == n and summary["num_failed"] == len(BAD)
    assert summary["num_succeeded"] == len(ULTRASOUND)
    failed = {Path(r["input"]).name: r for r in summary["failed"]}
    assert {k: r["stage"] for k, r in failed.items()} == BAD
    assert "truncated" in failed["broken.dcm"]["reason"]
    assert "not an ultrasound image: Modality 'CT'" in failed["ct.dcm"]["reason"]
    assert "Modality 'SR'" in failed["report_sr.dcm"]["reason"]
    assert "undecodable_h264_cine.dcm" in failed["undecodable_h264_cine.dcm"]["reason"]  # the reader names the file
    assert all(r["input"].startswith(str(folder)) for r in summary["failed"])
    assert sorted(p.name for p in out.glob("*.dcm")) == sorted(f"{n}_seg.dcm" for n in ULTRASOUND)
    assert not list(out.glob(".*"))  # no temporary files left by the atomic writes


def test_every_seg_lies_on_its_source_grid_and_references_it(run, inputs):
    folder, _ = inputs
    _, out, summary = run
    records = {Path(r["input"]).stem: r for r in summary["succeeded"]}
    for name, frames in ULTRASOUND.items():
        src = pydicom.dcmread(folder / f"{name}.dcm", stop_before_pixels=True)
        seg_path = out / f"{name}_seg.dcm"
        assert records[name]["outputs"] == [str(seg_path)]
        assert records[name]["shape"] == [src.Rows, src.Columns] and records[name]["frames"] == frames
        seg = hd.seg.segread(str(seg_path))
        assert seg.Modality == "SEG" and (seg.Rows, seg.Columns) == (src.Rows, src.Columns)
        # a derived object of the patient's study: patient and study modules of the source
        assert seg.StudyInstanceUID == src.StudyInstanceUID
        for key in ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "AccessionNumber"):
            assert str(seg.get(key)) == SOURCE_PATIENT[key], key
        assert seg.get_source_image_uids() == [(src.StudyInstanceUID, src.SeriesInstanceUID, src.SOPInstanceUID)]
        ref = seg.ReferencedSeriesSequence[0]
        assert ref.SeriesInstanceUID == src.SeriesInstanceUID
        assert ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        segment = seg.SegmentSequence[0]
        assert len(seg.SegmentSequence) == 1 and segment.SegmentLabel == "lesion"
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodeValue == "52988006"  # SNOMED CT Lesion
        assert segment.SegmentedPropertyTypeCodeSequence[0].CodingSchemeDesignator == "SCT"
        assert segment.SegmentedPropertyCategoryCodeSequence[0].CodeValue == "49755003"
        assert segment.SegmentAlgorithmType == "AUTOMATIC"
        assert segment.SegmentAlgorithmName.startswith("usgen-monai MGCC")
        labels = _seg_labels(seg_path, folder / f"{name}.dcm", frames)
        assert labels.shape == (frames, src.Rows, src.Columns)
        if frames > 1:  # one segmentation frame per (segment, source frame), each referencing its source frame
            referenced = {
                int(item.DerivationImageSequence[0].SourceImageSequence[0].ReferencedFrameNumber)
                for item in seg.PerFrameFunctionalGroupsSequence
            }
            drawn = {f + 1 for f in range(frames) if labels[f].any()}
            assert referenced == (drawn or set(range(1, frames + 1)))  # empty frames left out, unless all are


def test_segs_agree_with_the_bundles_own_masks(run, inputs, bundle, tmp_path):
    """The same folder through the bundle's own inference config (``monai.bundle.run``, PNG masks): the SEGs hold
    exactly those masks. The app infers one image at a time, so the bundle does too here (``batch_size=1``): a batch
    of four changes the last bits of CPU convolutions, enough to flip a pixel whose logit is next to 0."""
    folder, _ = inputs
    _, out, _ = run
    bundle_out = tmp_path / "bundle_out"
    bundle_run(
        config_file=str(bundle / "configs" / "inference.json"), bundle_root=str(bundle), dataset_dir=str(folder),
        output_dir=str(bundle_out), output_format="png", progress=False, logging_file=False, batch_size=1,
    )  # fmt: skip
    foreground = []
    for name, frames in ULTRASOUND.items():
        labels = _seg_labels(out / f"{name}_seg.dcm", folder / f"{name}.dcm", frames)
        pngs = [bundle_out / f"{name}_seg.png"] if frames == 1 else [
            bundle_out / f"{name}_seg_frame{f:04d}.png" for f in range(frames)
        ]  # fmt: skip
        expected = np.stack([np.asarray(Image.open(p)) > 0 for p in pngs])
        np.testing.assert_array_equal(labels > 0, expected, err_msg=name)
        foreground.append(expected.mean())
    assert 0 < np.mean(foreground) < 1, "the masks are trivial: the check would not see a misplaced mask"


def test_torchscript_model_is_preferred_and_gives_the_same_masks(inputs, tmp_path):
    """A bundle with ``models/model.ts`` runs it (as MONAI Deploy's bundle operator does); traced from the same
    weights, it gives the masks of ``model.pt``."""
    from usgen_monai.engines.bundle_segmenter import BundleSegmenter

    folder, _ = inputs
    pt_bundle = _copy_bundle(tmp_path / "pt" / "mgcc")
    _random_weights(pt_bundle)
    eager = BundleSegmenter(pt_bundle, device="cpu")
    ts_bundle = _copy_bundle(tmp_path / "ts" / "mgcc")
    example = torch.zeros(1, 1, *eager.parser.get_parsed_content("image_size"))
    torch.jit.trace(eager.network, example).save(str(ts_bundle / "models" / "model.ts"))
    scripted = BundleSegmenter(ts_bundle, device="cpu")
    assert scripted.model_file.name == "model.ts" and eager.model_file.name == "model.pt"
    for name in ("mono2_explicit", "cine_ybr_full_422_jpeg"):
        a = eager.predict(eager.preprocess(folder / f"{name}.dcm"))
        b = scripted.predict(scripted.preprocess(folder / f"{name}.dcm"))
        assert a.shape == b.shape and (a == b).float().mean() > 0.999, name


@pytest.mark.skipif(shutil.which("dciodvfy") is None, reason="dciodvfy not installed (Debian package dicom3tools)")
def test_segs_pass_dciodvfy(run):
    _, out, _ = run
    for path in sorted(out.glob("*.dcm")):
        result = subprocess.run(
            ["dciodvfy", "-new", str(path)], capture_output=True, text=True, timeout=60, check=False
        )
        lines = (result.stdout + result.stderr).splitlines()
        errors = [line for line in lines if line.startswith("Error")]
        assert errors == [], f"{path.name}:\n" + "\n".join(lines)


def test_bundle_loading_errors_name_the_paths(tmp_path):
    from usgen_monai.engines.bundle_segmenter import BundleSegmenter
    from usgen_monai.deploy.environment import find_bundle

    empty = _copy_bundle(tmp_path / "mgcc")
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty / "models" / "model.pt"))):
        BundleSegmenter(empty)
    with pytest.raises(ValueError, match="no MONAI bundle"):
        find_bundle(tmp_path / "mgcc" / "docs")
    assert find_bundle(tmp_path) == empty  # a MAP's model folder holding one bundle
    with pytest.raises(ValueError, match="does not exist"):
        BundleSegmenter(tmp_path / "missing")


def test_the_app_refuses_an_empty_input_folder(tmp_path, bundle):
    (tmp_path / "in").mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "usgen_monai.deploy", "--input", str(tmp_path / "in"), "--output", str(tmp_path / "o"),
         "--bundle", str(bundle)], capture_output=True, text=True, timeout=300, env=ENV, check=False,
    )  # fmt: skip
    assert proc.returncode == 2 and "holds no files" in proc.stderr


# ------------------------------------------------------------------------------------------- trained weights

#: the mean Dice the shipped weights must reach on the 8 simulated breast lesion frames (``sim_*``): they scored 0.62
#: here (0.70 on 71 held-out lesions in the bundle docs); the floor catches a broken pipeline or untrained weights
#: (random weights: about 0.1), not the frame-to-frame spread (0.20 to 0.95)
MIN_MEAN_DICE = 0.45


def test_dice_against_the_simulators_ground_truth(run, inputs):
    """The SEGs of the simulated breast images (MONOCHROME2 and RGB images and a YBR_FULL_422 JPEG cine, each inside
    a larger frame with a Sequence of Ultrasound Regions and burned-in text) against the simulator's masks, on the
    files' own grids."""
    assert _trained_weights() is not None, f"the shipped MGCC weights are missing (bundles/mgcc/models/model.pt; or set ${WEIGHTS_ENV})"
    folder, truth = inputs
    _, out, _ = run
    dices = {}
    for name, expected in truth.items():
        labels = _seg_labels(out / f"{name}_seg.dcm", folder / f"{name}.dcm", expected.shape[0]) > 0
        assert labels.shape == expected.shape
        for f in range(expected.shape[0]):
            a, b = labels[f], expected[f] > 0
            dices[f"{name}[{f}]"] = 2 * (a & b).sum() / max(a.sum() + b.sum(), 1)
    mean = float(np.mean(list(dices.values())))
    print(
        f"Dice against the simulator's masks: mean {mean:.3f}; " + ", ".join(f"{k} {v:.3f}" for k, v in dices.items())
    )
    assert mean >= MIN_MEAN_DICE, dices
