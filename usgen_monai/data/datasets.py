"""Readers for the ultrasound data-set layouts users really have, returning MONAI datalists.

Each reader returns a list of dicts, ``{"image": path, "label": path, ...}``, that goes straight into
:py:class:`monai.data.Dataset` or :py:class:`monai.data.CacheDataset` with :py:class:`monai.transforms.LoadImaged`;
:py:func:`load_transforms` gives the loading transforms that turn each layout's mask files into a binary target.

========== ==================================================================== =================================
layout     files                                                                ``label`` of an item
========== ==================================================================== =================================
``busi``   ``<class>/<name>.png`` + ``<name>_mask.png`` [+ ``<name>_mask_1.png``] list of mask paths (one or more),
                                                                                merged by OR with ``MergeMasksd``
``hc18``   ``training_set/NNN_HC.png`` + ``NNN_HC_Annotation.png`` (outline)    outline path, filled with
           and ``training_set_pixel_size_and_HC.csv``                           ``FillOutlined``
``unext``  ``images/<name>.png`` + ``masks/0/<name>.png`` [+ ``masks/1/...``]   list of class mask paths (class
           (one mask folder per class index; UNeXt, MGCC and CMU-Net code)      0, 1, ...), one 0/1 channel each
``folder`` ``images/<key>[_image].png`` + ``masks/<key>[_mask].png``            mask path
           (``labels/`` also accepted; stems matched after removing suffixes)
``monai``  a MONAI (Decathlon-style) datalist JSON, e.g. ``datalist.json``      as in the JSON
========== ==================================================================== =================================

BUSI masks, HC18 outlines, UNeXt-layout class masks and most folder-pair masks hold 0 and 255; the transforms of
:py:func:`load_transforms` map them to 0 and 1. Problems with the files raise :py:class:`DatasetLayoutError` naming
the path: an image without a mask, a mask without an image, an image and mask of different sizes (read from the file
headers only), an empty folder, an unknown layout.

:py:func:`split_dataset` (from :py:mod:`usgen_monai.data.splits`, re-exported here) makes train/validation/test
splits that depend only on the seed and on the items' names relative to the data set.

The module is longer than the house's ~600 lines because the five layout readers share its file helpers, size check
and error type, and :data:`READ_LAYOUTS`, :py:func:`detect_layout` and :py:func:`load_transforms` must know them all;
splitting the readers apart would scatter one table over several files.

Example::

    from monai.data import CacheDataset
    from usgen_monai.data.datasets import load_dataset, load_transforms, split_dataset

    items = load_dataset("/data/Dataset_BUSI_with_GT")          # layout detected: "busi"
    train, val, test = split_dataset(items, fractions=(0.7, 0.15, 0.15), seed=0)
    ds = CacheDataset(train, transform=load_transforms("busi"))  # image (1, W, H), label (1, W, H) in {0, 1}
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from usgen_monai.data.splits import split_dataset

__all__ = [
    "DatasetLayoutError",
    "IMAGE_EXTENSIONS",
    "READ_LAYOUTS",
    "check_item_sizes",
    "detect_layout",
    "load_busi_datalist",
    "load_dataset",
    "load_folder_pair_datalist",
    "load_hc18_datalist",
    "load_json_datalist",
    "load_transforms",
    "pil_to_grey",
    "load_unext_datalist",
    "split_dataset",
]

PathLike = str | os.PathLike

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".nii", ".nii.gz")
_PIL_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_BUSI_MASK = re.compile(r"^(?P<base>.+?)_mask(?:_(?P<index>\d+))?$")
_HC18_IMAGE = re.compile(r"^(?P<subject>\d+)_(?P<repeat>\d*)HC$")
_HC18_ANNOTATION = re.compile(r"^(?P<base>\d+_\d*HC)_Annotation$")
_CLASS_FOLDER = re.compile(r"^\d+$")


class DatasetLayoutError(ValueError):
    """The files under a path do not match the expected data-set layout; the message names the path."""


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _split_ext(path: Path) -> tuple[str, str]:
    """(stem, extension), with ``.nii.gz`` as one extension; the extension is lower case."""
    name = path.name
    if name.lower().endswith(".nii.gz"):
        return name[: -len(".nii.gz")], ".nii.gz"
    return path.stem, path.suffix.lower()


def _natural_key(text: str) -> list[Any]:
    """Sort key that orders ``benign (2)`` before ``benign (10)``."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", text)]


def _files(folder: Path, extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """Visible files of ``folder`` with one of ``extensions``, in natural order."""
    files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    return sorted((p for p in files if _split_ext(p)[1] in extensions), key=lambda p: _natural_key(p.name))


def _spatial_shape(path: Path) -> tuple[str, tuple[int, ...]] | None:
    """(reader, spatial shape) from the file header only, or ``None`` for a format without a cheap header read."""
    ext = _split_ext(path)[1]
    if ext in _PIL_EXTENSIONS:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as image:  # reads the header, not the pixels
                return "pil", (image.height, image.width)
        except (OSError, UnidentifiedImageError) as e:
            raise DatasetLayoutError(f"cannot read image file {path}: {e}") from e
    if ext in (".nii", ".nii.gz"):
        import nibabel

        try:
            return "nifti", tuple(int(s) for s in nibabel.load(path).shape[:3])
        except Exception as e:  # nibabel raises several types for broken headers
            raise DatasetLayoutError(f"cannot read NIfTI header of {path}: {e}") from e
    return None


def check_item_sizes(image: PathLike, labels: PathLike | Sequence[PathLike], what: str = "mask") -> None:
    """The per-item size check of the readers: every label file of an item has its image's size.

    Sizes are read from the file headers only (PNG, JPEG, BMP, TIFF, NIfTI); a pair of files of different readers,
    or of a format without a cheap header read (DICOM, say), is not compared.

    Args:
        image: the item's image file.
        labels: its label file, or several (BUSI's masks of one image).
        what: names the label files in the message (``"mask"``, ``"annotation"``).

    Raises:
        DatasetLayoutError: a label of another size than its image (the message names both files and sizes), or
            a file whose header cannot be read.
    """
    image = Path(image)
    image_shape = _spatial_shape(image)
    for mask in [labels] if isinstance(labels, (str, os.PathLike)) else labels:
        mask = Path(mask)
        mask_shape = _spatial_shape(mask)
        if image_shape is None or mask_shape is None or image_shape[0] != mask_shape[0]:
            continue
        if image_shape[1] != mask_shape[1]:
            raise DatasetLayoutError(
                f"image {image} is {_shape_text(image_shape[1])} but its {what} {mask} is {_shape_text(mask_shape[1])}."
            )


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(s) for s in shape) + " (rows x columns)" if len(shape) == 2 else "x".join(map(str, shape))


def _require_dir(path: PathLike, what: str) -> Path:
    path = Path(path)
    if not path.exists():
        raise DatasetLayoutError(f"{what} {path} does not exist.")
    if not path.is_dir():
        raise DatasetLayoutError(f"{what} {path} is not a directory.")
    return path


def _abs(path: Path) -> str:
    return os.path.abspath(path)


# ----------------------------------------------------------------------------------------------------------------
# BUSI


def load_busi_datalist(
    root: PathLike,
    classes: Sequence[str] | None = None,
    check_sizes: bool = True,
    allow_missing_labels: bool = False,
) -> list[dict[str, Any]]:
    """Read a BUSI-style folder: one sub-folder per class, images with their ``_mask`` files beside them.

    ``benign/benign (12).png`` has the mask ``benign/benign (12)_mask.png``; a lesion drawn in several parts has
    more masks, ``benign (12)_mask_1.png``, ``benign (12)_mask_2.png``. The item's ``label`` is always the list of
    all mask paths of the image (``_mask`` first, then ``_mask_1``, ``_mask_2``...).
    :py:class:`monai.transforms.LoadImaged` stacks a list as channels and
    :py:class:`usgen_monai.transforms.masks.MergeMasksd` merges them by logical OR into one 0/1 mask
    (``load_transforms("busi")`` does both). The real BUSI masks and images are 0/255 PNGs, some of them RGB.

    Args:
        root: the folder holding the class folders (``Dataset_BUSI_with_GT``).
        classes: class folders to read (``("benign", "malignant")`` for the 647-image lesion subset); default all
            sub-folders that hold images.
        check_sizes: compare each mask's size with its image's (header reads only).
        allow_missing_labels: keep images without a mask (the item has no ``label``) instead of raising.

    Returns:
        items ``{"image": str, "label": [str, ...], "class": str}`` ordered by class, then image number.

    Raises:
        DatasetLayoutError: root missing or without images, a requested class folder missing or empty, an image
            without a mask, a mask without its image, or an image and mask of different sizes.
    """
    root = _require_dir(root, "BUSI root")
    folders = sorted((d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")), key=lambda d: d.name)
    if classes is not None:
        available = [d.name for d in folders]
        missing = [c for c in classes if c not in available]
        if missing:
            raise DatasetLayoutError(f"BUSI root {root} has no class folder(s) {missing}; found {available}.")
        folders = [root / c for c in classes]
    items: list[dict[str, Any]] = []
    for folder in folders:
        images: dict[str, Path] = {}
        masks: dict[str, list[tuple[int, Path]]] = {}
        for path in _files(folder):
            stem = _split_ext(path)[0]
            match = _BUSI_MASK.match(stem)
            if match:
                masks.setdefault(match["base"], []).append((int(match["index"] or 0), path))
            else:
                images[stem] = path
        for base in sorted(set(masks) - set(images), key=_natural_key):
            mask = sorted(masks[base])[0][1]
            raise DatasetLayoutError(f"mask {mask} has no image: expected {folder / base}.png (or .jpg, .bmp...).")
        if not images:
            if classes is not None:
                raise DatasetLayoutError(f"BUSI class folder {folder} holds no images.")
            continue
        for stem in sorted(images, key=_natural_key):
            image = images[stem]
            mask_paths = [p for _, p in sorted(masks.get(stem, []), key=lambda t: (t[0], t[1].name))]
            item: dict[str, Any] = {"image": _abs(image), "class": folder.name}
            if not mask_paths:
                if not allow_missing_labels:
                    raise DatasetLayoutError(f"image {image} has no mask: expected {folder / stem}_mask.png.")
            else:
                if check_sizes:
                    check_item_sizes(image, mask_paths)
                item["label"] = [_abs(p) for p in mask_paths]
            items.append(item)
    if not items:
        raise DatasetLayoutError(
            f"no BUSI images under {root}: expected class folders (benign/, malignant/, normal/) holding "
            "'benign (1).png' with 'benign (1)_mask.png'."
        )
    return items


# ----------------------------------------------------------------------------------------------------------------
# HC18


def _find_hc18_csv(root: Path, folder: Path, subset: str) -> Path | None:
    names = (f"{subset}_pixel_size_and_HC.csv", f"{subset}_pixel_size.csv")
    for parent in dict.fromkeys((root, folder, folder.parent)):
        for name in names:
            if (parent / name).is_file():
                return parent / name
    return None


def _read_hc18_csv(path: Path) -> dict[str, dict[str, float]]:
    """filename -> {"pixel_size_mm": ..., ["head_circumference_mm": ...]} from an HC18 CSV."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows:
        raise DatasetLayoutError(f"HC18 CSV {path} is empty; expected a header 'filename,pixel size(mm),...'.")
    header = [h.strip().lower() for h in rows[0]]
    pixel_col = next((i for i, h in enumerate(header) if "pixel" in h), None)
    hc_col = next((i for i, h in enumerate(header) if "circumference" in h), None)
    if not header or "file" not in header[0] or pixel_col is None:
        raise DatasetLayoutError(
            f"HC18 CSV {path} has header {rows[0]}; expected 'filename,pixel size(mm)[,head circumference (mm)]'."
        )
    table: dict[str, dict[str, float]] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        try:
            entry = {"pixel_size_mm": float(row[pixel_col])}
            if hc_col is not None and hc_col < len(row) and row[hc_col].strip():
                entry["head_circumference_mm"] = float(row[hc_col])
        except (ValueError, IndexError) as e:
            raise DatasetLayoutError(f"HC18 CSV {path} line {line}: cannot read {row}: {e}") from e
        table[row[0].strip()] = entry
    return table


def _hc18_key(stem: str) -> tuple[int, int]:
    """``010_HC`` -> (10, 1), ``010_2HC`` -> (10, 2): subject, then repeat."""
    match = _HC18_IMAGE.match(stem)
    return int(match["subject"]), int(match["repeat"] or 1)


def load_hc18_datalist(
    root: PathLike,
    subset: str = "training_set",
    csv_path: PathLike | None = None,
    check_sizes: bool = True,
    allow_missing_labels: bool = False,
) -> list[dict[str, Any]]:
    """Read an HC18-style folder: ``training_set/NNN_HC.png`` with the head outline ``NNN_HC_Annotation.png``.

    HC18 names a subject's further images ``NNN_2HC.png``, ``NNN_3HC.png``; all images of subject ``NNN`` share the
    item key ``"group"``, which :py:func:`split_dataset` keeps in one split. The annotation is the outline of the
    head ellipse; fill it with :py:class:`usgen_monai.transforms.masks.FillOutlined` (``load_transforms("hc18")``).
    When the pixel-size CSV is found (``training_set_pixel_size_and_HC.csv`` or ``test_set_pixel_size.csv``, next to
    the subset folder or inside it), each item also gets ``pixel_size_mm`` and, where the CSV has it,
    ``head_circumference_mm``.

    Args:
        root: the HC18 folder holding ``training_set/`` (or the subset folder itself).
        subset: the sub-folder to read, ``"training_set"`` or ``"test_set"``.
        csv_path: the pixel-size CSV; default: looked up as above.
        check_sizes: compare each annotation's size with its image's (header reads only).
        allow_missing_labels: keep images without an annotation (HC18's ``test_set``) instead of raising.

    Returns:
        items ``{"image": str, "label": str, "group": str[, "pixel_size_mm": float, "head_circumference_mm": float]}``
        ordered by subject, then repeat (``010_HC``, ``010_2HC``, ``011_HC``).

    Raises:
        DatasetLayoutError: folder missing or without ``*HC.png`` images, an image without its annotation, an
            annotation without its image, sizes that differ, a CSV that cannot be read or lacks an image's row.
    """
    root = _require_dir(root, "HC18 root")
    folder = root / subset if (root / subset).is_dir() else root
    images: dict[str, Path] = {}
    annotations: dict[str, Path] = {}
    for path in _files(folder, (".png",)):
        stem = _split_ext(path)[0]
        if _HC18_IMAGE.match(stem):
            images[stem] = path
        elif match := _HC18_ANNOTATION.match(stem):
            annotations[match["base"]] = path
    if not images:
        raise DatasetLayoutError(
            f"no HC18 images under {folder}: expected '{subset}/000_HC.png' with '000_HC_Annotation.png'."
        )
    for base in sorted(set(annotations) - set(images), key=_natural_key):
        raise DatasetLayoutError(f"annotation {annotations[base]} has no image: expected {folder / base}.png.")
    csv_file = Path(csv_path) if csv_path is not None else _find_hc18_csv(root, folder, subset)
    if csv_file is not None and not csv_file.is_file():
        raise DatasetLayoutError(f"HC18 pixel-size CSV {csv_file} does not exist.")
    table = _read_hc18_csv(csv_file) if csv_file is not None else None
    items: list[dict[str, Any]] = []
    for stem in sorted(images, key=_hc18_key):
        image = images[stem]
        item: dict[str, Any] = {"image": _abs(image)}
        annotation = annotations.get(stem)
        if annotation is None:
            if not allow_missing_labels:
                raise DatasetLayoutError(f"image {image} has no annotation: expected {folder / stem}_Annotation.png.")
        else:
            if check_sizes:
                check_item_sizes(image, [annotation], "annotation")
            item["label"] = _abs(annotation)
        item["group"] = _HC18_IMAGE.match(stem)["subject"]
        if table is not None:
            if image.name not in table:
                raise DatasetLayoutError(f"HC18 CSV {csv_file} has no row for {image.name}.")
            item.update(table[image.name])
        items.append(item)
    return items


# ----------------------------------------------------------------------------------------------------------------
# generic image/mask folder pair


def _strip_suffix(stem: str, suffixes: Sequence[str]) -> str:
    for suffix in sorted(suffixes, key=len, reverse=True):
        if suffix and stem.endswith(suffix) and len(stem) > len(suffix):
            return stem[: -len(suffix)]
    return stem


def _keyed(folder: Path, suffixes: Sequence[str], extensions: Sequence[str], what: str) -> dict[str, Path]:
    keyed: dict[str, Path] = {}
    for path in _files(folder, extensions):
        key = _strip_suffix(_split_ext(path)[0], suffixes)
        if key in keyed:
            raise DatasetLayoutError(f"{what} {keyed[key]} and {path} have the same name key {key!r}.")
        keyed[key] = path
    return keyed


def load_folder_pair_datalist(
    root: PathLike,
    image_dir: str = "images",
    mask_dir: str | None = None,
    image_suffixes: Sequence[str] = ("_image", "_img"),
    mask_suffixes: Sequence[str] = ("_mask", "_label", "_seg", "_gt"),
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    check_sizes: bool = True,
    allow_missing_labels: bool = False,
) -> list[dict[str, Any]]:
    """Read an image folder and a mask folder whose files match by name.

    An image and a mask match when their names agree after removing the extension and one of the suffixes:
    ``images/case7.png``, ``images/case7_image.png`` and ``masks/case7.png``, ``masks/case7_mask.png``,
    ``masks/case7_label.nii.gz`` all have the key ``case7``.

    Args:
        root: folder holding ``image_dir`` and the mask folder.
        image_dir: image sub-folder.
        mask_dir: mask sub-folder; default ``masks``, else ``labels``.
        image_suffixes: stem suffixes removed from image names before matching.
        mask_suffixes: stem suffixes removed from mask names before matching.
        extensions: file extensions to read (lower case).
        check_sizes: compare each mask's size with its image's (header reads only).
        allow_missing_labels: keep images without a mask (the item has no ``label``) instead of raising; useful
            for an unlabeled set.

    Returns:
        items ``{"image": str, "label": str}`` in natural name order.

    Raises:
        DatasetLayoutError: a folder missing or empty, two files with one key, an image without a mask, a mask
            without an image, or an image and mask of different sizes.
    """
    root = _require_dir(root, "data set root")
    images_folder = _require_dir(root / image_dir, "image folder")
    if mask_dir is None:
        candidates = [root / d for d in ("masks", "labels") if (root / d).is_dir()]
        if not candidates:
            raise DatasetLayoutError(f"no mask folder under {root}: expected masks/ or labels/ beside {image_dir}/.")
        masks_folder = candidates[0]
    else:
        masks_folder = _require_dir(root / mask_dir, "mask folder")
    images = _keyed(images_folder, image_suffixes, extensions, "images")
    masks = _keyed(masks_folder, mask_suffixes, extensions, "masks")
    if not images:
        raise DatasetLayoutError(f"image folder {images_folder} holds no images with extensions {list(extensions)}.")
    for key in sorted(set(masks) - set(images), key=_natural_key):
        raise DatasetLayoutError(f"mask {masks[key]} has no image in {images_folder} (name key {key!r}).")
    items: list[dict[str, Any]] = []
    for key in sorted(images, key=_natural_key):
        image, mask = images[key], masks.get(key)
        item: dict[str, Any] = {"image": _abs(image)}
        if mask is None:
            if not allow_missing_labels:
                raise DatasetLayoutError(
                    f"image {image} has no mask in {masks_folder}: expected {key}{{{','.join(['', *mask_suffixes])}}} "
                    "with an image extension."
                )
        else:
            if check_sizes:
                check_item_sizes(image, [mask])
            item["label"] = _abs(mask)
        items.append(item)
    return items


# ----------------------------------------------------------------------------------------------------------------
# UNeXt / MGCC / CMU-Net: images/<name> + masks/<class index>/<name>


def _class_folders(masks: Path) -> list[Path]:
    """The class folders ``masks/0``, ``masks/1``, ... of ``masks`` (visible, numeric names), in class order."""
    return sorted((d for d in masks.iterdir() if d.is_dir() and _CLASS_FOLDER.match(d.name)), key=lambda d: int(d.name))


def load_unext_datalist(
    root: PathLike,
    image_dir: str = "images",
    mask_dir: str = "masks",
    extensions: Sequence[str] = IMAGE_EXTENSIONS,
    check_sizes: bool = True,
    allow_missing_labels: bool = False,
) -> list[dict[str, Any]]:
    """Read the layout of the UNeXt, MGCC and CMU-Net code bases: ``images/<name>.png`` with one mask folder per class
    index, ``masks/0/<name>.png``, ``masks/1/<name>.png``, ...

    An image and its masks share the file name without extension (``images/case7.png``, ``masks/0/case7.png``; mask
    and image extensions may differ). Those code bases stack an image's class masks as the channels of its target, so
    the item's ``label`` is always the list of its class masks in class-index order, one per class folder (a
    one-element list for a single-class set such as BUSI prepared for UNeXt); ``load_transforms("unext")`` loads it
    as one 0/1 channel per class. The class folders must be numbered ``0`` to ``K - 1`` without gaps.

    Args:
        root: folder holding ``image_dir`` and ``mask_dir``.
        image_dir: image sub-folder.
        mask_dir: sub-folder holding the class folders.
        extensions: file extensions to read (lower case).
        check_sizes: compare each mask's size with its image's (header reads only).
        allow_missing_labels: keep images that have no mask in any class folder (the item has no ``label``) instead
            of raising; an image with masks in some class folders but not all still raises.

    Returns:
        items ``{"image": str, "label": [str, ...]}`` in natural name order.

    Raises:
        DatasetLayoutError: a folder missing or empty, no class folders or a gap in their numbers, two files with one
            name, an image without its mask in a class folder, a mask without an image, or an image and mask of
            different sizes.
    """
    root = _require_dir(root, "data set root")
    images_folder = _require_dir(root / image_dir, "image folder")
    masks_root = _require_dir(root / mask_dir, "mask folder")
    classes = _class_folders(masks_root)
    if not classes:
        raise DatasetLayoutError(
            f"mask folder {masks_root} has no class folders: expected {masks_root / '0'}/ (one folder per class index)."
        )
    numbers = [int(d.name) for d in classes]
    if numbers != list(range(len(numbers))):
        raise DatasetLayoutError(
            f"class folders of {masks_root} are {[d.name for d in classes]}; expected 0 to {len(numbers) - 1} "
            "without gaps (one folder per class index)."
        )
    images = _keyed(images_folder, (), extensions, "images")
    if not images:
        raise DatasetLayoutError(f"image folder {images_folder} holds no images with extensions {list(extensions)}.")
    masks = [_keyed(folder, (), extensions, "masks") for folder in classes]
    for folder, keyed in zip(classes, masks):
        for key in sorted(set(keyed) - set(images), key=_natural_key):
            raise DatasetLayoutError(f"mask {keyed[key]} has no image in {images_folder} (name {key!r}).")
    items: list[dict[str, Any]] = []
    for key in sorted(images, key=_natural_key):
        image = images[key]
        found = [keyed.get(key) for keyed in masks]
        item: dict[str, Any] = {"image": _abs(image)}
        if all(mask is None for mask in found) and allow_missing_labels:
            items.append(item)
            continue
        for folder, mask in zip(classes, found):
            if mask is None:
                raise DatasetLayoutError(f"image {image} has no mask in {folder}: expected {folder / key}.png.")
        if check_sizes:
            check_item_sizes(image, found)
        item["label"] = [_abs(mask) for mask in found]
        items.append(item)
    return items


# ----------------------------------------------------------------------------------------------------------------
# MONAI datalist JSON


def _datalist_file(path: Path) -> Path:
    if path.is_file():
        return path
    if path.is_dir():
        for name in ("datalist.json", "dataset.json"):
            candidate = path / name
            if candidate.is_file() and (name == "datalist.json" or _has_list_key(candidate)):
                return candidate
        raise DatasetLayoutError(f"no MONAI datalist in {path}: expected datalist.json (or a dataset.json with lists).")
    raise DatasetLayoutError(f"MONAI datalist {path} does not exist.")


def _read_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise DatasetLayoutError(f"cannot read JSON {path}: {e}") from e


def _has_list_key(path: Path) -> bool:
    try:
        data = _read_json(path)
    except DatasetLayoutError:
        return False
    return isinstance(data, dict) and any(isinstance(data.get(k), list) for k in ("training", "validation", "test"))


def load_json_datalist(
    path: PathLike,
    key: str | Sequence[str] = "training",
    base_dir: PathLike | None = None,
    check_files: bool = True,
) -> list[dict[str, Any]]:
    """Read a MONAI (Medical Segmentation Decathlon style) datalist JSON with
    :py:func:`monai.data.load_decathlon_datalist`.

    Args:
        path: the JSON file, or a folder holding ``datalist.json`` (or a ``dataset.json`` with lists).
        key: the list to read (``"training"``, ``"validation"``, ``"test"``), or several, concatenated in order.
        base_dir: folder that relative paths are relative to; default the JSON's folder.
        check_files: check that every ``image`` and ``label`` file exists.

    Returns:
        the items, with ``image`` and ``label`` paths joined to ``base_dir``; other keys (``context``...) as stored.

    Raises:
        DatasetLayoutError: the file missing or not JSON, a ``key`` it lacks, an item that is not a dict or lacks
            ``image``, or (with ``check_files``) a file that does not exist.
    """
    from monai.data import load_decathlon_datalist

    file = _datalist_file(Path(path))
    data = _read_json(file)
    keys = [key] if isinstance(key, str) else list(key)
    if not isinstance(data, dict):
        raise DatasetLayoutError(f"MONAI datalist {file} holds a {type(data).__name__}, expected a JSON object.")
    items: list[dict[str, Any]] = []
    for k in keys:
        if not isinstance(data.get(k), list):
            lists = [name for name, value in data.items() if isinstance(value, list)]
            raise DatasetLayoutError(f"MONAI datalist {file} has no list {k!r}; its lists are {lists}.")
        if not data[k]:
            continue
        try:
            part = load_decathlon_datalist(file, is_segmentation=True, data_list_key=k, base_dir=base_dir)
        except TypeError as e:
            raise DatasetLayoutError(f"MONAI datalist {file} list {k!r}: {e}") from e
        for index, item in enumerate(part):
            if "image" not in item:
                raise DatasetLayoutError(f"MONAI datalist {file} list {k!r} item {index} has no 'image': {item}.")
            if check_files:
                for field in ("image", "label"):
                    for p in [item[field]] if isinstance(item.get(field), str) else item.get(field) or []:
                        if not os.path.isfile(p):
                            raise DatasetLayoutError(
                                f"MONAI datalist {file} list {k!r} item {index}: {field} file {p} does not exist."
                            )
        items.extend(part)
    return items


# ----------------------------------------------------------------------------------------------------------------
# layout detection and dispatch


READ_LAYOUTS: dict[str, Callable[..., list[dict[str, Any]]]] = {
    "busi": load_busi_datalist,
    "hc18": load_hc18_datalist,
    "unext": load_unext_datalist,
    "folder": load_folder_pair_datalist,
    "monai": load_json_datalist,
}


def detect_layout(path: PathLike) -> str:
    """Tell which layout of :data:`READ_LAYOUTS` the data set at ``path`` has.

    In order: a ``.json`` file is ``monai``; a folder with a ``dataset.json`` manifest written by
    :py:func:`usgen_monai.data.layouts.simulate_dataset` has the layout it names; a ``datalist.json`` (or a
    ``dataset.json`` with ``training``/``validation``/``test`` lists) is ``monai``; ``training_set/`` or
    ``*HC.png`` files are ``hc18``; ``images/`` with ``masks/`` holding class folders ``0/``, ``1/``, ... (and no
    image files of its own) is ``unext``; ``images/`` with ``masks/`` or ``labels/`` is ``folder``; sub-folders
    holding ``*_mask.*`` files are ``busi``.

    Raises:
        DatasetLayoutError: the path does not exist, is an empty folder, or matches no layout.
    """
    path = Path(path)
    if not path.exists():
        raise DatasetLayoutError(f"data set path {path} does not exist.")
    if path.is_file():
        if path.suffix.lower() == ".json":
            return "monai"
        raise DatasetLayoutError(f"data set path {path} is a file but not a JSON datalist.")
    entries = [p for p in path.iterdir() if not p.name.startswith(".")]
    if not entries:
        raise DatasetLayoutError(f"data set folder {path} is empty.")
    manifest = path / "dataset.json"
    if manifest.is_file():
        try:
            data = _read_json(manifest)
        except DatasetLayoutError:
            data = None
        if isinstance(data, dict) and data.get("synthetic") and data.get("layout") in READ_LAYOUTS:
            return str(data["layout"])
    if (path / "datalist.json").is_file() or (manifest.is_file() and _has_list_key(manifest)):
        return "monai"
    if (path / "training_set").is_dir() or any(_HC18_IMAGE.match(_split_ext(p)[0]) for p in entries if p.is_file()):
        return "hc18"
    masks = path / "masks"
    if (path / "images").is_dir() and masks.is_dir() and _class_folders(masks) and not _files(masks):
        return "unext"
    if (path / "images").is_dir() and (masks.is_dir() or (path / "labels").is_dir()):
        return "folder"
    for folder in (p for p in entries if p.is_dir()):
        if any(_BUSI_MASK.match(_split_ext(f)[0]) for f in _files(folder)):
            return "busi"
    raise DatasetLayoutError(
        f"cannot tell the layout of {path}: found {sorted(p.name for p in entries)[:10]} but none of datalist.json "
        "(monai), training_set/ (hc18), images/ + masks/0/ (unext), images/ + masks/ (folder), or class folders with "
        "*_mask.png files (busi); "
        f"pass layout= one of {list(READ_LAYOUTS)}."
    )


def load_dataset(path: PathLike, layout: str = "auto", **kwargs: Any) -> list[dict[str, Any]]:
    """Read a data set in any layout of :data:`READ_LAYOUTS` into a MONAI datalist.

    Args:
        path: data-set folder (or datalist JSON file).
        layout: ``"auto"`` (see :py:func:`detect_layout`), ``"busi"``, ``"hc18"``, ``"unext"``, ``"folder"`` or
            ``"monai"``.
        kwargs: passed to the layout's reader (:py:func:`load_busi_datalist`, :py:func:`load_hc18_datalist`,
            :py:func:`load_unext_datalist`, :py:func:`load_folder_pair_datalist`, :py:func:`load_json_datalist`).

    Raises:
        DatasetLayoutError: an unknown layout, or any error of :py:func:`detect_layout` or the reader.
    """
    if layout == "auto":
        layout = detect_layout(path)
    if layout not in READ_LAYOUTS:
        raise DatasetLayoutError(
            f"unknown data set layout {layout!r} for {path}; expected 'auto' or {list(READ_LAYOUTS)}."
        )
    return READ_LAYOUTS[layout](path, **kwargs)


# ----------------------------------------------------------------------------------------------------------------
# loading transforms


def pil_to_grey(image: Any) -> Any:
    """``PILReader`` converter (``PILReader(converter=pil_to_grey)``): colour and palette images to 8-bit grey by the
    package's one luma rule, ITU-R BT.601
    (:py:func:`usgen_monai.transforms.ultrasound.rgb_to_grey`, rounded), so grey stored as colour comes back exactly;
    1-bit and grey + alpha images to 8-bit grey; grey and 16-bit images unchanged."""
    import numpy as np
    from PIL import Image

    from usgen_monai.transforms.ultrasound.array import rgb_to_grey

    if image.mode in ("1", "LA"):
        return image.convert("L")
    if image.mode not in ("RGB", "RGBA", "P", "PA", "CMYK", "YCbCr"):
        return image
    grey = rgb_to_grey(np.asarray(image.convert("RGB")), channel_dim=-1, keepdim=False)
    return Image.fromarray(np.clip(np.round(grey), 0, 255).astype(np.uint8))


def load_transforms(
    layout: str,
    keys: Sequence[str] = ("image", "label"),
    binarize: bool | None = None,
    grey: bool = True,
    keep_context: bool = False,
) -> Any:
    """Loading transforms for the items of a reader: files in, channel-first arrays with a 0/1 label out.

    :py:class:`monai.transforms.LoadImaged` (channel first; PNG/JPEG through :py:class:`monai.data.PILReader`,
    converted to grey when ``grey``), then for the label: ``busi`` merges its mask list with
    :py:class:`usgen_monai.transforms.masks.MergeMasksd`, ``hc18`` fills its outline with
    :py:class:`usgen_monai.transforms.masks.FillOutlined`; ``folder`` binarises with ``MergeMasksd``; ``unext`` keeps
    one channel per class mask and binarises each (``label >= 0.5``, i.e. ``> 0`` for integer masks, with
    :py:class:`monai.transforms.AsDiscreted`); ``monai`` leaves label values as stored (set ``binarize`` to change
    it, or to turn binarising off for the others). Keys missing from an item are skipped, so
    unlabeled items load too. Intensity scaling and augmentation are left to the caller.

    The simulator's ``context`` dicts in a ``monai`` datalist hold different keys for different findings and
    probes, which MONAI's default collate cannot batch, so the ``context`` key is dropped unless ``keep_context``
    (then batch with a ``collate_fn`` of your own, or encode the context first).

    Args:
        layout: a key of :data:`READ_LAYOUTS`.
        keys: (image key, label key).
        binarize: map the label to 0/1 (``label > 0``, channels merged; for ``unext`` per channel); default ``True``
            except for ``monai``.
        grey: convert colour PNG/JPEG images and masks to one grey channel (real BUSI images are often RGB).
        keep_context: keep the ``context`` item key (see above).

    Returns:
        a :py:class:`monai.transforms.Compose`.
    """
    from monai.data import PILReader
    from monai.transforms import AsDiscreted, Compose, DeleteItemsd, LoadImaged

    from usgen_monai.data.library_messages import install_library_message_filters
    from usgen_monai.transforms.masks import FillOutlined, MergeMasksd

    install_library_message_filters()  # LoadImaged builds MONAI's readers, which report the environment
    if layout not in READ_LAYOUTS:
        raise DatasetLayoutError(f"unknown data set layout {layout!r}; expected one of {list(READ_LAYOUTS)}.")
    if len(keys) != 2:
        raise ValueError(f"keys must be (image key, label key), got keys={keys!r}.")
    image_key, label_key = keys
    reader = PILReader(converter=pil_to_grey) if grey else None
    transforms: list[Any] = [
        LoadImaged(keys=[image_key, label_key], reader=reader, ensure_channel_first=True, allow_missing_keys=True)
    ]
    if layout == "hc18":
        transforms.append(FillOutlined(label_key, allow_missing_keys=True))
    elif binarize if binarize is not None else layout != "monai":
        if layout == "unext":
            transforms.append(AsDiscreted(label_key, threshold=0.5, allow_missing_keys=True))
        else:
            transforms.append(MergeMasksd(label_key, allow_missing_keys=True))
    if not keep_context:
        transforms.append(DeleteItemsd(keys="context"))
    return Compose(transforms)
