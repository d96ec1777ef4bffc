"""Layout writers of usgen_monai.data.layouts, on small simulated data sets."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

import usgen_monai
from usgen_monai.data.layouts import (
    ellipse_circumference,
    fit_ellipse,
    head_circumference_mm,
    mask_outline,
    sample_seed,
    simulate_dataset,
    synthetic_datalist,
    synthetic_manifest,
)
from usgen_monai.data.simulator import UltrasoundSimulator
from usgen_monai.utils import to_uint8

SIZE = (64, 80)


def _read(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.mode == "L", f"{path} is {image.mode}, expected 8-bit grey"
        return np.asarray(image)


def _samples(preset: str, num: int, seed: int = 0, size=SIZE, finding=None):
    sim = UltrasoundSimulator(preset, size=size)
    return [sim.sample(seed=sample_seed(seed, i), finding=finding) for i in range(num)]


def _ellipse_mask(shape, centre, semi_axes, angle, spacing=(1.0, 1.0)) -> np.ndarray:
    """Pixels whose centres lie inside an ellipse given in mm (rows scaled by spacing[0], columns by spacing[1])."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    z, x = rows * spacing[0] - centre[0], cols * spacing[1] - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    u, v = c * z + s * x, -s * z + c * x
    return ((u / semi_axes[0]) ** 2 + (v / semi_axes[1]) ** 2 <= 1).astype(np.uint8)


# ----------------------------------------------------------------------------------------------------------------
# geometry helpers


def test_mask_outline_fills_back():
    mask = _ellipse_mask((60, 70), (30, 40), (20, 28), 0.5)
    mask[:, 60:] = 0  # cut by a straight edge
    border = _ellipse_mask((60, 70), (50, 35), (20, 28), 0.0)  # cut by the image border
    for m in (mask, border):
        outline = mask_outline(m)
        assert outline.sum() < m.sum() / 3
        assert not (outline & ~(m > 0)).any()  # inside the mask
        np.testing.assert_array_equal(ndimage.binary_fill_holes(outline), m > 0)
    distances = ndimage.distance_transform_cdt(mask, metric="taxicab")
    np.testing.assert_array_equal(mask_outline(mask, 2), (distances >= 1) & (distances <= 2))
    np.testing.assert_array_equal(mask_outline(mask, 3), (distances >= 1) & (distances <= 3))
    assert not mask_outline(np.zeros((5, 5))).any()
    with pytest.raises(ValueError, match="thickness=0"):
        mask_outline(mask, 0)


def test_fit_ellipse_and_circumference():
    t = np.linspace(0, 2 * np.pi, 50, endpoint=False)
    angle = 0.6
    u, v = 30 * np.cos(t), 12 * np.sin(t)
    points = np.stack([5 + u * np.cos(angle) - v * np.sin(angle), -3 + u * np.sin(angle) + v * np.cos(angle)], 1)
    np.testing.assert_allclose(fit_ellipse(points), (5, -3, 30, 12), atol=1e-6)
    assert ellipse_circumference(10, 10) == pytest.approx(2 * np.pi * 10, rel=1e-12)
    # numeric arc length of a 30 x 12 ellipse
    tt = np.linspace(0, 2 * np.pi, 200001)
    arc = np.sum(np.hypot(np.diff(30 * np.cos(tt)), np.diff(12 * np.sin(tt))))
    assert ellipse_circumference(30, 12) == pytest.approx(arc, rel=1e-5)
    with pytest.raises(ValueError, match="N >= 6"):
        fit_ellipse(points[:5])
    with pytest.raises(ValueError, match="degenerate|no ellipse"):
        fit_ellipse(np.stack([np.arange(10.0), 2 * np.arange(10.0)], 1))


@pytest.mark.parametrize(
    "spacing, cut", [((0.5, 0.5), None), ((0.4, 0.7), None), ((0.5, 0.5), "border"), ((0.5, 0.5), "fan")]
)
def test_head_circumference_mm(spacing, cut):
    shape = (160, 150)
    centre, semi_axes, angle = (40.0, 52.0), (30.0, 22.0), 0.4
    if cut == "border":
        centre = (20.0, 52.0)  # the top of the head lies above the image
    mask = _ellipse_mask(shape, centre, semi_axes, angle, spacing)
    valid = None
    if cut == "fan":
        valid = np.ones(shape, bool)
        valid[:, : int(40 / spacing[1])] = False  # field of view starts at 40 mm laterally
        mask[~valid] = 0
    if cut == "border":
        assert mask[0].any()  # the head touches the top of the image
    if cut == "fan":
        assert mask[:, int(40 / spacing[1])].any()  # the head touches the edge of the field of view
    expected = ellipse_circumference(*semi_axes)
    assert head_circumference_mm(mask, spacing, valid) == pytest.approx(expected, rel=0.01)
    assert head_circumference_mm(np.zeros(shape), spacing) is None


def test_sample_seed():
    assert sample_seed(0, 5) == sample_seed(0, 5)
    assert len({sample_seed(s, i) for s in range(4) for i in range(50)}) == 200
    with pytest.raises(ValueError, match="seed=-1"):
        sample_seed(-1, 0)


def test_uint8():
    np.testing.assert_array_equal(to_uint8(np.array([[-0.5, 0.0, 0.5, 1.0, 2.0]])), [[0, 0, 128, 255, 255]])
    with pytest.raises(ValueError, match="NaN"):
        to_uint8(np.array([[np.nan]]))


def test_synthetic_datalist_and_manifest_key_order():
    datalist = synthetic_datalist(
        "n", "d", {"0": "background"}, {"training": [{"image": "a"}], "test": []}, labels_multiclass={"0": "b"}
    )
    assert list(datalist) == [
        "name",
        "description",
        "synthetic",
        "tensorImageSize",
        "modality",
        "labels",
        "labels_multiclass",
        "numTraining",
        "training",
        "test",
    ]
    assert datalist["synthetic"] is True and datalist["numTraining"] == 1 and datalist["modality"] == {"0": "US"}
    manifest = synthetic_manifest("n", {"layout": "busi", "num": 3})
    assert list(manifest.items()) == [("name", "n"), ("synthetic", True), ("layout", "busi"), ("num", 3)]


# ----------------------------------------------------------------------------------------------------------------
# layouts


def test_busi_layout(tmp_path):
    summary = simulate_dataset(tmp_path / "busi", "breast", num=6, layout="busi", size=SIZE, seed=1)
    samples = _samples("breast", 6, seed=1)
    per_finding: dict[str, int] = {}
    for s in samples:
        finding = s.context["finding"]
        per_finding[finding] = per_finding.get(finding, 0) + 1
        name = tmp_path / "busi" / finding / f"{finding} ({per_finding[finding]})"
        np.testing.assert_array_equal(_read(Path(f"{name}.png")), to_uint8(s.image))
        mask = _read(Path(f"{name}_mask.png"))
        assert set(np.unique(mask)) <= {0, 255}
        np.testing.assert_array_equal(mask, s.mask * 255)
    assert summary.findings == per_finding
    manifest = json.loads((tmp_path / "busi" / "dataset.json").read_text())
    assert manifest["synthetic"] is True and manifest["layout"] == "busi" and manifest["preset"] == "breast"
    assert (manifest["num"], manifest["seed"], manifest["size"]) == (6, 1, list(SIZE))
    assert manifest["usgen_monai_version"] == usgen_monai.__version__
    assert manifest["findings"] == per_finding and manifest["mask_values"] == [0, 255]
    files = sorted(p.relative_to(tmp_path / "busi").as_posix() for p in (tmp_path / "busi").rglob("*") if p.is_file())
    assert len(files) == 2 * 6 + 1 and not [f for f in files if ".tmp" in f]


def test_busi_layout_fixed_finding_and_msk_folders(tmp_path):
    simulate_dataset(tmp_path / "b", "breast", num=3, layout="busi", size=SIZE, finding="malignant")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["dataset.json", "malignant"]
    simulate_dataset(tmp_path / "m", "msk", num=4, layout="busi", size=SIZE, finding="tendon_tear")
    assert (tmp_path / "m" / "tendon_tear" / "tendon_tear (4)_mask.png").is_file()


def test_hc18_layout(tmp_path):
    size = (128, 128)
    simulate_dataset(tmp_path / "hc18", "fetal_head", num=3, layout="hc18", size=size, seed=2)
    samples = _samples("fetal_head", 3, seed=2, size=size)
    with open(tmp_path / "hc18" / "training_set_pixel_size_and_HC.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["filename", "pixel size(mm)", "head circumference (mm)"]
    for i, (s, row) in enumerate(zip(samples, rows[1:])):
        stem = tmp_path / "hc18" / "training_set" / f"{i:03d}_HC"
        np.testing.assert_array_equal(_read(Path(f"{stem}.png")), to_uint8(s.image))
        outline = _read(Path(f"{stem}_Annotation.png"))
        assert set(np.unique(outline)) == {0, 255}
        assert (outline > 0).sum() < s.mask.sum() / 3  # an outline, not the filled head
        np.testing.assert_array_equal(ndimage.binary_fill_holes(outline > 0), s.mask > 0)
        assert row[0] == f"{i:03d}_HC.png"
        assert float(row[1]) == pytest.approx(s.context["pixel_spacing_mm"][0])
        # the circumference agrees with the head ellipse the simulator drew (major axis size_mm, minor axis minor_mm)
        geometry = s.context["finding_geometry"]
        expected = ellipse_circumference(geometry["size_mm"] / 2, geometry["minor_mm"] / 2)
        assert float(row[2]) == pytest.approx(expected, rel=0.03)


def test_hc18_layout_other_preset_warns(tmp_path):
    with pytest.warns(UserWarning, match="hc18 layout is meant for the fetal_head preset"):
        simulate_dataset(tmp_path / "h", "breast", num=2, layout="hc18", size=SIZE, finding="benign")
    with open(tmp_path / "h" / "training_set_pixel_size_and_HC.csv", newline="") as f:
        rows = list(csv.reader(f))[1:]
    assert [row[2] for row in rows] == ["", ""]
    samples = _samples("breast", 2, size=SIZE, finding="benign")
    for i, s in enumerate(samples):
        outline = _read(tmp_path / "h" / "training_set" / f"{i:03d}_HC_Annotation.png")
        np.testing.assert_array_equal(ndimage.binary_fill_holes(outline > 0), s.mask > 0)


def test_monai_layout(tmp_path):
    simulate_dataset(tmp_path / "m", "msk", num=8, layout="monai", size=SIZE, seed=3)
    datalist = json.loads((tmp_path / "m" / "datalist.json").read_text())
    assert datalist["synthetic"] is True and datalist["modality"] == {"0": "US"}
    sim = UltrasoundSimulator("msk", size=SIZE)
    assert datalist["labels_multiclass"] == {str(i): c for i, c in enumerate(sim.classes)}
    items = datalist["training"] + datalist["validation"] + datalist["test"]
    assert [len(datalist[k]) for k in ("training", "validation", "test")] == [6, 1, 1]
    assert datalist["numTraining"] == 6
    assert sorted(i["image"] for i in items) == [f"images/{i:05d}_image.png" for i in range(8)]
    for item in items:
        index = int(Path(item["image"]).name[:5])
        s = sim.sample(seed=sample_seed(3, index))
        assert item["context"] == json.loads(json.dumps(s.context))
        np.testing.assert_array_equal(_read(tmp_path / "m" / item["image"]), to_uint8(s.image))
        np.testing.assert_array_equal(_read(tmp_path / "m" / item["label"]), s.mask)  # 0/1
        np.testing.assert_array_equal(_read(tmp_path / "m" / item["label_multiclass"]), s.label)
    simulate_dataset(tmp_path / "one", "msk", num=2, layout="monai", size=SIZE, split=(1.0,))
    assert [
        k
        for k in ("training", "validation", "test")
        if k in json.loads((tmp_path / "one" / "datalist.json").read_text())
    ] == ["training"]


def test_deterministic(tmp_path):
    for name in ("a", "b"):
        simulate_dataset(tmp_path / name, "breast", num=3, layout="monai", size=SIZE, seed=7)
    simulate_dataset(tmp_path / "c", "breast", num=3, layout="monai", size=SIZE, seed=8)
    for i in range(3):
        rel = f"images/{i:05d}_image.png"
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()
        assert (tmp_path / "a" / rel).read_bytes() != (tmp_path / "c" / rel).read_bytes()
    assert (tmp_path / "a" / "datalist.json").read_text() == (tmp_path / "b" / "datalist.json").read_text()


def test_simulate_dataset_errors(tmp_path):
    with pytest.raises(ValueError, match="unknown layout 'nnunet'"):
        simulate_dataset(tmp_path / "x", layout="nnunet", num=1)
    with pytest.raises(ValueError, match="num=0"):
        simulate_dataset(tmp_path / "x", num=0)
    with pytest.raises(ValueError, match=r"split applies to the monai layout only.*layout='busi'"):
        simulate_dataset(tmp_path / "x", num=1, split=(0.5, 0.5))
    with pytest.raises(ValueError, match="finding 'effusion' is not a finding of preset 'breast'"):
        simulate_dataset(tmp_path / "x", "breast", num=1, finding="effusion")
    with pytest.raises(ValueError, match=r"split takes 1 to 3 .* got split=\(0\.5, 0\.4\)"):
        simulate_dataset(tmp_path / "x", num=1, layout="monai", split=(0.5, 0.4))
    with pytest.raises(ValueError, match="unknown simulator preset 'liver'"):
        simulate_dataset(tmp_path / "x", "liver", num=1)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(ValueError, match=r"output directory .*full is not empty"):
        simulate_dataset(tmp_path / "full", num=1, size=SIZE)
    simulate_dataset(tmp_path / "full", num=1, size=SIZE, overwrite=True)
    assert (tmp_path / "full" / "keep.txt").is_file() and (tmp_path / "full" / "dataset.json").is_file()
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match=r"output path .*file exists and is not a directory"):
        simulate_dataset(tmp_path / "file", num=1, size=SIZE)
    assert not (tmp_path / "x").exists()  # nothing written for rejected arguments
