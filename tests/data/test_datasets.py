"""Readers of usgen_monai.data.datasets on small PNG folders built here with PIL (no simulator needed)."""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage.draw import ellipse, ellipse_perimeter

from usgen_monai.data.datasets import (
    DatasetLayoutError,
    check_item_sizes,
    detect_layout,
    load_busi_datalist,
    load_dataset,
    load_folder_pair_datalist,
    load_hc18_datalist,
    load_json_datalist,
    load_transforms,
    load_unext_datalist,
    split_dataset,
)


def _png(path: Path, array: np.ndarray, mode: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(np.asarray(array, dtype=np.uint8))
    (image.convert(mode) if mode else image).save(path)
    return path


def _image(shape=(20, 30), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def _box_mask(shape=(20, 30), box=(2, 8, 3, 12)) -> np.ndarray:
    mask = np.zeros(shape, np.uint8)
    mask[box[0] : box[1], box[2] : box[3]] = 255
    return mask


def _busi(root: Path) -> Path:
    """benign (1) with two masks, benign (2), benign (10), malignant (1), normal (1) with an empty mask."""
    _png(root / "benign" / "benign (1).png", _image(seed=1))
    _png(root / "benign" / "benign (1)_mask.png", _box_mask(box=(2, 6, 2, 6)))
    _png(root / "benign" / "benign (1)_mask_1.png", _box_mask(box=(10, 15, 20, 28)))
    for n in (2, 10):
        _png(root / "benign" / f"benign ({n}).png", _image(seed=n))
        _png(root / "benign" / f"benign ({n})_mask.png", _box_mask())
    _png(root / "malignant" / "malignant (1).png", _image(seed=3), mode="RGB")  # real BUSI images are often RGB
    _png(root / "malignant" / "malignant (1)_mask.png", _box_mask())
    _png(root / "normal" / "normal (1).png", _image(seed=4))
    _png(root / "normal" / "normal (1)_mask.png", np.zeros((20, 30)))
    return root


def _hc18(root: Path, csv: bool = True) -> Path:
    shape = (48, 64)
    for stem in ("000_HC", "001_HC", "001_2HC", "002_HC"):
        _png(root / "training_set" / f"{stem}.png", _image(shape))
        outline = np.zeros(shape, np.uint8)
        rr, cc = ellipse_perimeter(24, 32, 15, 22, shape=shape)
        outline[rr, cc] = 255
        _png(root / "training_set" / f"{stem}_Annotation.png", outline)
    if csv:
        (root / "training_set_pixel_size_and_HC.csv").write_text(
            "filename,pixel size(mm),head circumference (mm)\n"
            "000_HC.png,0.069,44.30\n001_HC.png,0.089,56.81\n001_2HC.png,0.089,57.12\n002_HC.png,0.1,\n"
        )
    return root


def _folder(root: Path) -> Path:
    _png(root / "images" / "case1.png", _image())
    _png(root / "masks" / "case1_mask.png", _box_mask())
    _png(root / "images" / "case2_image.png", _image(seed=2))
    _png(root / "masks" / "case2.png", _box_mask())
    _png(root / "images" / "case10.png", _image(seed=10))
    _png(root / "masks" / "case10_label.png", _box_mask())
    return root


# ----------------------------------------------------------------------------------------------------------------
# BUSI


def test_busi_items_and_multi_mask_order(tmp_path):
    root = _busi(tmp_path / "Dataset_BUSI_with_GT")
    items = load_busi_datalist(root)
    names = [(item["class"], Path(item["image"]).name) for item in items]
    assert names == [
        ("benign", "benign (1).png"),
        ("benign", "benign (2).png"),
        ("benign", "benign (10).png"),  # natural order, not "benign (10)" before "benign (2)"
        ("malignant", "malignant (1).png"),
        ("normal", "normal (1).png"),
    ]
    assert [Path(p).name for p in items[0]["label"]] == ["benign (1)_mask.png", "benign (1)_mask_1.png"]
    assert all(isinstance(item["label"], list) and os.path.isabs(item["image"]) for item in items)
    assert [item["class"] for item in load_busi_datalist(root, classes=("malignant", "benign"))] == [
        "malignant",
        "benign",
        "benign",
        "benign",
    ]


def test_busi_multi_mask_merged_by_transforms(tmp_path):
    root = _busi(tmp_path / "busi")
    items = load_busi_datalist(root)
    loaded = load_transforms("busi")(items[0])
    label = np.asarray(loaded["label"])
    expected = ((_box_mask(box=(2, 6, 2, 6)) > 0) | (_box_mask(box=(10, 15, 20, 28)) > 0)).T[None]  # PIL: (W, H)
    assert label.shape == (1, 30, 20)
    np.testing.assert_array_equal(label, expected.astype(np.float32))
    assert loaded["image"].shape == (1, 30, 20)
    rgb = load_transforms("busi")(items[3])  # RGB image -> one grey channel
    assert rgb["image"].shape == (1, 30, 20)
    np.testing.assert_array_equal(np.asarray(rgb["image"][0]), _image(seed=3).T.astype(np.float32))
    normal = load_transforms("busi")(items[4])
    assert float(normal["label"].sum()) == 0


def test_colour_to_grey_is_the_packages_luma(tmp_path):
    from usgen_monai.transforms.ultrasound import rgb_to_grey

    rgb = np.random.default_rng(5).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    rgb[:5] = rgb[:5, :, :1]  # grey stored as colour: comes back exactly
    items = [{"image": str(_png(tmp_path / "rgb.png", rgb)), "label": str(_png(tmp_path / "m.png", _box_mask()))}]
    grey = np.asarray(load_transforms("folder")(items[0])["image"][0]).T
    np.testing.assert_array_equal(grey, np.round(rgb_to_grey(rgb, channel_dim=-1, keepdim=False)))
    np.testing.assert_array_equal(grey[:5], rgb[:5, :, 0])
    palette = Image.fromarray(rgb).convert("P")
    palette.save(tmp_path / "p.png")
    loaded = np.asarray(load_transforms("folder")({"image": str(tmp_path / "p.png")})["image"][0]).T
    expected = rgb_to_grey(np.asarray(palette.convert("RGB")), channel_dim=-1, keepdim=False)
    np.testing.assert_array_equal(loaded, np.round(expected))


def test_check_item_sizes(tmp_path):
    image = _png(tmp_path / "a.png", _image())
    check_item_sizes(image, _png(tmp_path / "m.png", _box_mask()))  # one label, or several
    check_item_sizes(str(image), [str(tmp_path / "m.png"), _png(tmp_path / "m1.png", _box_mask())])
    _png(tmp_path / "big.png", _box_mask(shape=(21, 30)))
    with pytest.raises(DatasetLayoutError, match=r"a\.png is 20x30 .* its annotation .*big\.png is 21x30"):
        check_item_sizes(image, [tmp_path / "m.png", tmp_path / "big.png"], "annotation")
    (tmp_path / "broken.png").write_bytes(b"not a png")
    with pytest.raises(DatasetLayoutError, match=r"cannot read image file .*broken\.png"):
        check_item_sizes(image, tmp_path / "broken.png")


def test_busi_errors(tmp_path):
    root = _busi(tmp_path / "busi")
    os.remove(root / "benign" / "benign (2)_mask.png")
    with pytest.raises(DatasetLayoutError, match=r"benign \(2\)\.png has no mask: expected .*benign \(2\)_mask\.png"):
        load_busi_datalist(root)
    items = load_busi_datalist(root, allow_missing_labels=True)
    assert "label" not in items[1] and load_transforms("busi")(items[1])["image"].shape == (1, 30, 20)

    root = _busi(tmp_path / "busi2")
    os.remove(root / "malignant" / "malignant (1).png")
    with pytest.raises(DatasetLayoutError, match=r"mask .*malignant \(1\)_mask\.png has no image"):
        load_busi_datalist(root)

    root = _busi(tmp_path / "busi3")
    _png(root / "benign" / "benign (1)_mask_1.png", _box_mask(shape=(21, 30)))
    with pytest.raises(DatasetLayoutError, match=r"benign \(1\)\.png is 20x30 .* its mask .*_mask_1\.png is 21x30"):
        load_busi_datalist(root)
    load_busi_datalist(root, check_sizes=False)  # the check can be skipped

    with pytest.raises(DatasetLayoutError, match="has no class folder"):
        load_busi_datalist(_busi(tmp_path / "busi4"), classes=("benign", "cyst"))
    (tmp_path / "empty" / "benign").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="no BUSI images under .*empty"):
        load_busi_datalist(tmp_path / "empty")
    with pytest.raises(DatasetLayoutError, match=r"class folder .*benign holds no images"):
        load_busi_datalist(tmp_path / "empty", classes=("benign",))
    with pytest.raises(DatasetLayoutError, match="does not exist"):
        load_busi_datalist(tmp_path / "nowhere")


def test_unreadable_image_named(tmp_path):
    root = _busi(tmp_path / "busi")
    (root / "benign" / "benign (2).png").write_bytes(b"not a png")
    with pytest.raises(DatasetLayoutError, match=r"cannot read image file .*benign \(2\)\.png"):
        load_busi_datalist(root)


# ----------------------------------------------------------------------------------------------------------------
# HC18


def test_hc18_items_csv_and_groups(tmp_path):
    root = _hc18(tmp_path / "hc18")
    items = load_hc18_datalist(root)
    assert [Path(i["image"]).name for i in items] == ["000_HC.png", "001_HC.png", "001_2HC.png", "002_HC.png"]
    assert [i["group"] for i in items] == ["000", "001", "001", "002"]
    assert items[1]["label"].endswith("001_HC_Annotation.png")
    assert items[0]["pixel_size_mm"] == 0.069 and items[0]["head_circumference_mm"] == 44.30
    assert items[3]["pixel_size_mm"] == 0.1 and "head_circumference_mm" not in items[3]  # empty cell
    # the subset folder itself also works; the CSV is found beside it
    assert load_hc18_datalist(root / "training_set") == items


def test_hc18_outline_filled_by_transforms(tmp_path):
    items = load_hc18_datalist(_hc18(tmp_path / "hc18", csv=False))
    assert "pixel_size_mm" not in items[0]
    label = np.asarray(load_transforms("hc18")(items[0])["label"])[0].T  # back to (rows, columns)
    inside = np.zeros((48, 64), bool)
    rr, cc = ellipse(24, 32, 14, 21, shape=inside.shape)
    inside[rr, cc] = True
    assert set(np.unique(label)) == {0.0, 1.0}
    assert label[inside].all() and label[0, 0] == 0
    # the filled ellipse runs to the outer edge of the one-pixel outline: semi-axes 15.5 and 22.5
    assert abs(label.sum() - np.pi * 15.5 * 22.5) < 0.03 * np.pi * 15.5 * 22.5


def test_hc18_errors(tmp_path):
    root = _hc18(tmp_path / "a")
    os.remove(root / "training_set" / "001_2HC_Annotation.png")
    with pytest.raises(DatasetLayoutError, match=r"001_2HC\.png has no annotation: expected .*001_2HC_Annotation"):
        load_hc18_datalist(root)
    assert "label" not in load_hc18_datalist(root, allow_missing_labels=True)[2]

    root = _hc18(tmp_path / "b")
    os.remove(root / "training_set" / "002_HC.png")
    with pytest.raises(DatasetLayoutError, match=r"annotation .*002_HC_Annotation\.png has no image"):
        load_hc18_datalist(root)

    root = _hc18(tmp_path / "c")
    csv = root / "training_set_pixel_size_and_HC.csv"
    csv.write_text("filename,pixel size(mm),head circumference (mm)\n000_HC.png,0.069,44.3\n")
    with pytest.raises(DatasetLayoutError, match=r"HC18 CSV .*training_set_pixel_size_and_HC\.csv has no row for 001"):
        load_hc18_datalist(root)
    csv.write_text("name;size\n")
    with pytest.raises(DatasetLayoutError, match=r"HC18 CSV .* has header"):
        load_hc18_datalist(root)
    csv.write_text("filename,pixel size(mm)\n000_HC.png,abc\n")
    with pytest.raises(DatasetLayoutError, match=r"line 2"):
        load_hc18_datalist(root)
    with pytest.raises(DatasetLayoutError, match=r"pixel-size CSV .*missing\.csv does not exist"):
        load_hc18_datalist(root, csv_path=root / "missing.csv")

    root = _hc18(tmp_path / "d", csv=False)
    _png(root / "training_set" / "000_HC_Annotation.png", np.zeros((48, 65)))
    with pytest.raises(
        DatasetLayoutError, match=r"000_HC\.png is 48x64 .* annotation .*/000_HC_Annotation\.png is 48x65"
    ):
        load_hc18_datalist(root)

    (tmp_path / "e" / "training_set").mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match=r"no HC18 images under .*training_set"):
        load_hc18_datalist(tmp_path / "e")


# ----------------------------------------------------------------------------------------------------------------
# image/mask folder pair


def test_folder_pair_matches_by_stem_and_suffix(tmp_path):
    root = _folder(tmp_path / "pairs")
    items = load_folder_pair_datalist(root)
    assert [(Path(i["image"]).name, Path(i["label"]).name) for i in items] == [
        ("case1.png", "case1_mask.png"),
        ("case2_image.png", "case2.png"),
        ("case10.png", "case10_label.png"),
    ]
    shutil.move(root / "masks", root / "labels")  # labels/ is accepted too
    assert len(load_folder_pair_datalist(root)) == 3
    _png(root / "seg" / "case1-gt.png", _box_mask())
    with pytest.raises(DatasetLayoutError, match=r"case2_image\.png has no mask in .*seg"):
        load_folder_pair_datalist(root, mask_dir="seg", mask_suffixes=("-gt",))
    items = load_folder_pair_datalist(root, mask_dir="seg", mask_suffixes=("-gt",), allow_missing_labels=True)
    assert [("label" in i) for i in items] == [True, False, False]


def test_folder_pair_errors(tmp_path):
    root = _folder(tmp_path / "a")
    _png(root / "masks" / "case3_mask.png", _box_mask())
    with pytest.raises(DatasetLayoutError, match=r"mask .*case3_mask\.png has no image in .*images"):
        load_folder_pair_datalist(root)

    root = _folder(tmp_path / "b")
    _png(root / "masks" / "case1_label.png", _box_mask())
    with pytest.raises(DatasetLayoutError, match=r"masks .*case1_label\.png and .*case1_mask\.png have the same"):
        load_folder_pair_datalist(root)

    root = _folder(tmp_path / "c")
    _png(root / "masks" / "case2.png", _box_mask(shape=(20, 31)))
    with pytest.raises(DatasetLayoutError, match=r"case2_image\.png is 20x30 .*/case2\.png is 20x31"):
        load_folder_pair_datalist(root)

    (tmp_path / "d" / "images").mkdir(parents=True)
    (tmp_path / "d" / "masks").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"image folder .*images holds no images"):
        load_folder_pair_datalist(tmp_path / "d")
    with pytest.raises(DatasetLayoutError, match=r"no mask folder under .*e: expected masks/ or labels/"):
        (tmp_path / "e" / "images").mkdir(parents=True)
        load_folder_pair_datalist(tmp_path / "e")


def test_folder_pair_binarised(tmp_path):
    items = load_folder_pair_datalist(_folder(tmp_path / "pairs"))
    label = np.asarray(load_transforms("folder")(items[0])["label"])
    np.testing.assert_array_equal(label, (_box_mask() > 0).T[None].astype(np.float32))
    kept = np.asarray(load_transforms("folder", binarize=False)(items[0])["label"])
    assert kept.max() == 255


# ----------------------------------------------------------------------------------------------------------------
# UNeXt / MGCC / CMU-Net: images/<name> + masks/<class index>/<name>


def _unext(root: Path, classes: int = 1) -> Path:
    """case1, case2, case10 with one mask per class folder; class k's box is shifted by 4k rows."""
    for seed, name in enumerate(("case1", "case2", "case10")):
        _png(root / "images" / f"{name}.png", _image(seed=seed))
        for k in range(classes):
            _png(root / "masks" / str(k) / f"{name}.png", _box_mask(box=(2 + 4 * k, 6 + 4 * k, 3, 12)))
    return root


def test_unext_single_class_items_and_transforms(tmp_path):
    root = _unext(tmp_path / "busi_unext")
    items = load_unext_datalist(root)
    assert [Path(item["image"]).name for item in items] == ["case1.png", "case2.png", "case10.png"]
    assert all(item["label"] == [str(root / "masks" / "0" / Path(item["image"]).name)] for item in items)
    label = np.asarray(load_transforms("unext")(items[0])["label"])
    np.testing.assert_array_equal(label, (_box_mask(box=(2, 6, 3, 12)) > 0).T[None].astype(np.float32))


def test_unext_multi_class_gives_one_channel_per_class(tmp_path):
    root = _unext(tmp_path / "three", classes=3)
    items = load_dataset(root)  # detected
    assert [Path(p).parent.name for p in items[1]["label"]] == ["0", "1", "2"]
    label = np.asarray(load_transforms("unext")(items[1])["label"])
    assert label.shape == (3, 30, 20) and set(np.unique(label)) == {0.0, 1.0}
    for k in range(3):
        np.testing.assert_array_equal(label[k], (_box_mask(box=(2 + 4 * k, 6 + 4 * k, 3, 12)) > 0).T)


def test_unext_errors(tmp_path):
    root = _unext(tmp_path / "a", classes=2)
    (root / "masks" / "1" / "case2.png").unlink()
    with pytest.raises(DatasetLayoutError, match=r"image .*case2\.png has no mask in .*masks/1: expected"):
        load_unext_datalist(root)
    with pytest.raises(DatasetLayoutError, match=r"case2\.png has no mask in .*masks/1"):
        load_unext_datalist(root, allow_missing_labels=True)  # masks in some class folders only: still an error

    root = _unext(tmp_path / "b")
    _png(root / "masks" / "0" / "case3.png", _box_mask())
    with pytest.raises(DatasetLayoutError, match=r"mask .*masks/0/case3\.png has no image in .*images"):
        load_unext_datalist(root)

    root = _unext(tmp_path / "c")
    _png(root / "masks" / "0" / "case2.png", _box_mask(shape=(20, 31)))
    with pytest.raises(DatasetLayoutError, match=r"case2\.png is 20x30 .*masks/0/case2\.png is 20x31"):
        load_unext_datalist(root)

    root = _unext(tmp_path / "d")
    (root / "masks" / "0").rename(root / "masks" / "1")
    with pytest.raises(DatasetLayoutError, match=r"class folders of .*masks are \['1'\]; expected 0 to 0"):
        load_unext_datalist(root)

    root = _unext(tmp_path / "e")
    shutil.rmtree(root / "masks" / "0")
    with pytest.raises(DatasetLayoutError, match=r"mask folder .*masks has no class folders"):
        load_unext_datalist(root)

    root = _unext(tmp_path / "f")
    _png(root / "images" / "case4.png", _image())
    assert "label" not in load_unext_datalist(root, allow_missing_labels=True)[2]  # case4: no mask at all


# ----------------------------------------------------------------------------------------------------------------
# MONAI datalist JSON


def _datalist(root: Path) -> Path:
    _folder(root)
    data = {
        "name": "test",
        "labels": {"0": "background", "1": "lesion"},
        "training": [{"image": "images/case1.png", "label": "masks/case1_mask.png", "context": {"finding": "x"}}],
        "validation": [{"image": "images/case2_image.png", "label": "masks/case2.png"}],
        "test": [],
    }
    (root / "datalist.json").write_text(json.dumps(data))
    return root


def test_json_datalist(tmp_path):
    root = _datalist(tmp_path / "monai")
    items = load_json_datalist(root)
    assert items == [
        {
            "image": str(root / "images" / "case1.png"),
            "label": str(root / "masks" / "case1_mask.png"),
            "context": {"finding": "x"},
        }
    ]
    assert load_json_datalist(root / "datalist.json", key="test") == []
    both = load_json_datalist(root, key=("training", "validation", "test"))
    assert [Path(i["image"]).name for i in both] == ["case1.png", "case2_image.png"]
    loaded = load_transforms("monai")(items[0])
    assert "context" not in loaded and loaded["label"].max() == 255  # monai layout keeps label values
    assert load_transforms("monai", keep_context=True)(items[0])["context"] == {"finding": "x"}


def test_json_datalist_errors(tmp_path):
    root = _datalist(tmp_path / "monai")
    with pytest.raises(DatasetLayoutError, match=r"datalist .*datalist\.json has no list 'testing'; its lists are"):
        load_json_datalist(root, key="testing")
    os.remove(root / "masks" / "case1_mask.png")
    with pytest.raises(DatasetLayoutError, match=r"item 0: label file .*case1_mask\.png does not exist"):
        load_json_datalist(root)
    (root / "datalist.json").write_text("{not json")
    with pytest.raises(DatasetLayoutError, match=r"cannot read JSON .*datalist\.json"):
        load_json_datalist(root)
    (root / "datalist.json").write_text(json.dumps({"training": [{"label": "masks/case2.png"}]}))
    with pytest.raises(DatasetLayoutError, match=r"item 0 has no 'image'"):
        load_json_datalist(root)
    with pytest.raises(DatasetLayoutError, match=r"no MONAI datalist in .*empty"):
        (tmp_path / "empty").mkdir()
        load_json_datalist(tmp_path / "empty")


# ----------------------------------------------------------------------------------------------------------------
# detection and dispatch


def test_detect_layout(tmp_path):
    assert detect_layout(_busi(tmp_path / "busi")) == "busi"
    assert detect_layout(_hc18(tmp_path / "hc18")) == "hc18"
    assert detect_layout(tmp_path / "hc18" / "training_set") == "hc18"
    assert detect_layout(_folder(tmp_path / "folder")) == "folder"
    assert detect_layout(_unext(tmp_path / "unext")) == "unext"
    _png(tmp_path / "unext" / "masks" / "stray.png", _box_mask())
    assert detect_layout(tmp_path / "unext") == "folder"  # mask files of its own: a folder-pair masks/ folder
    assert detect_layout(_datalist(tmp_path / "monai")) == "monai"  # datalist.json wins over images/ + masks/
    assert detect_layout(tmp_path / "monai" / "datalist.json") == "monai"
    # a usgen-monai manifest names its layout
    (tmp_path / "busi" / "dataset.json").write_text(json.dumps({"synthetic": True, "layout": "busi"}))
    assert detect_layout(tmp_path / "busi") == "busi"
    assert len(load_dataset(tmp_path / "busi")) == 5
    assert len(load_dataset(tmp_path / "hc18")) == 4
    assert len(load_dataset(tmp_path / "folder")) == 3
    assert len(load_dataset(tmp_path / "monai", key=("training", "validation"))) == 2


def test_detect_layout_errors(tmp_path):
    with pytest.raises(DatasetLayoutError, match=r"data set path .*missing does not exist"):
        detect_layout(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetLayoutError, match=r"data set folder .*empty is empty"):
        load_dataset(tmp_path / "empty")
    _png(tmp_path / "loose" / "a.png", _image())
    with pytest.raises(DatasetLayoutError, match=r"cannot tell the layout of .*loose: found \['a\.png'\]"):
        load_dataset(tmp_path / "loose")
    with pytest.raises(DatasetLayoutError, match=r"is a file but not a JSON datalist"):
        detect_layout(tmp_path / "loose" / "a.png")
    with pytest.raises(DatasetLayoutError, match=r"unknown data set layout 'nnunet' for .*loose"):
        load_dataset(tmp_path / "loose", layout="nnunet")
    with pytest.raises(DatasetLayoutError, match=r"unknown data set layout 'nnunet'"):
        load_transforms("nnunet")
    assert issubclass(DatasetLayoutError, ValueError)


# ----------------------------------------------------------------------------------------------------------------
# splits


def _items(n: int, root: str = "/data/busi") -> list[dict]:
    return [
        {"image": f"{root}/benign/benign ({i}).png", "label": [f"{root}/benign/benign ({i})_mask.png"]}
        for i in range(n)
    ]


def _names(split) -> list[list[str]]:
    return [sorted(Path(i["image"]).name for i in part) for part in split]


def test_split_partition_and_sizes():
    items = _items(100)
    train, val, test = split_dataset(items, (0.7, 0.15, 0.15), seed=0)
    assert (len(train), len(val), len(test)) == (70, 15, 15)
    ids = [id(i) for part in (train, val, test) for i in part]
    assert sorted(ids) == sorted(id(i) for i in items)  # a partition: every item exactly once
    assert [items.index(i) for i in train] == sorted(items.index(i) for i in train)  # input order kept
    assert [len(p) for p in split_dataset(items, (1.0,))] == [100]
    assert [len(p) for p in split_dataset(items, (0.8, 0.2, 0.0))] == [80, 20, 0]
    assert split_dataset([], (0.5, 0.5)) == ([], [])


def test_split_deterministic_and_independent_of_listing_order():
    items = _items(50)
    reference = _names(split_dataset(items, seed=3))
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    assert _names(split_dataset(shuffled, seed=3)) == reference
    assert _names(split_dataset(_items(50, root="/elsewhere/copy"), seed=3)) == reference  # moved data set
    assert _names(split_dataset(items, seed=4)) != reference


def test_split_stable_when_items_are_added():
    before = split_dataset(_items(100), seed=0)
    after = split_dataset(_items(105), seed=0)  # five more images
    moved = sum(
        len({Path(i["image"]).name for i in b} - {Path(i["image"]).name for i in a}) for b, a in zip(before, after)
    )
    assert moved <= 10


def test_split_keeps_groups_together():
    items = [{"image": f"/hc18/{s:03d}_{r}HC.png", "group": f"{s:03d}"} for s in range(30) for r in ("", "2", "3")]
    for seed in range(5):
        parts = split_dataset(items, (0.6, 0.2, 0.2), seed=seed)
        owners = {}
        for k, part in enumerate(parts):
            for item in part:
                assert owners.setdefault(item["group"], k) == k
        assert [len(p) for p in parts] == [54, 18, 18]
    # without grouping the images of one subject get spread over the splits
    parts = split_dataset(items, (0.6, 0.2, 0.2), seed=0, group_key=None)
    spread = {item["group"] for part in parts[1:] for item in part} & {item["group"] for item in parts[0]}
    assert spread


def test_split_errors():
    with pytest.raises(ValueError, match=r"fractions must be non-negative and sum to 1, got fractions=\(0\.7, 0\.2\)"):
        split_dataset(_items(3), (0.7, 0.2))
    with pytest.raises(ValueError, match="fractions"):
        split_dataset(_items(3), (1.2, -0.2))
    with pytest.raises(ValueError, match="seed=-1"):
        split_dataset(_items(3), seed=-1)
    with pytest.raises(ValueError, match="item 0 has neither 'image'"):
        split_dataset([{"label": "x"}])
