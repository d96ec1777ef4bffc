"""Writers that put a simulated ultrasound data set on disk in the layout of a public data set.

(Slightly over the house's ~600 lines: the three layout writers share the outline, ellipse and head-circumference
geometry that HC18's annotations need and the argument checks of ``simulate_dataset``; split them when a fourth
layout arrives.)

Three layouts, so that code written for the real data sets runs unchanged on simulated data:

``busi``
    BUSI (Al-Dhabyani et al., 2020): one folder per finding, ``benign/benign (1).png`` with its mask
    ``benign/benign (1)_mask.png``; numbering starts at 1 in each folder. Breast findings are ``benign``,
    ``malignant`` and ``normal`` as in BUSI; the other presets use their finding names as folders
    (``fetal_head``: ``normal``; ``msk``: ``normal``, ``effusion``, ``tendon_tear``). Masks hold 0 and 255, as in
    BUSI. Every image, normal ones included, has a mask (empty for a normal breast).

``hc18``
    HC18 (van den Heuvel et al., 2018): ``training_set/000_HC.png`` with the head outline
    ``training_set/000_HC_Annotation.png`` (0 and 255, two pixels wide, drawn inside the filled mask so that
    filling it gives the mask back exactly, see :py:class:`usgen_monai.transforms.masks.FillOutline`), and
    ``training_set_pixel_size_and_HC.csv`` next to ``training_set/`` with the columns
    ``filename,pixel size(mm),head circumference (mm)``. The pixel size is the row (depth) spacing of the image
    grid; the circumference is that of the ellipse fitted to the mask's edge in millimetres, which stays right when
    the simulator's pixels are not square. It is meant for the ``fetal_head`` preset; other presets are written with a
    warning, their outline drawn around the preset's mask and the circumference column left empty.

``monai``
    ``images/00000_image.png``, the binary mask ``labels/00000_label.png`` (0 and 1), the full label map
    ``labels_multiclass/00000_label.png`` (values index the simulator's classes), and a MONAI datalist
    ``datalist.json`` with ``training``, ``validation`` and ``test`` lists (split by
    :py:func:`usgen_monai.data.datasets.split_dataset` with the data set's seed) whose items hold ``image``,
    ``label``, ``label_multiclass`` and the simulator's ``context``; read it with
    :py:func:`monai.data.load_decathlon_datalist`.

Images are 8-bit grey PNGs. Every file is written to a temporary name and moved into place with
:py:func:`os.replace`, so a reader never sees half a file. Each data set gets a ``dataset.json`` manifest (preset,
seed, count, size, package version, ``"synthetic": true``), written last: its presence means the data set is complete.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
import warnings
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from scipy import ndimage

from usgen_monai.data.image_writers import write_png
from usgen_monai.data.simulator.simulator import sample_seed
from usgen_monai.utils import to_uint8, write_json_atomic, write_text_atomic

__all__ = [
    "DATALIST_NAME",
    "LAYOUTS",
    "LAYOUT_WRITERS",
    "MANIFEST_NAME",
    "BUSIWriter",
    "HC18Writer",
    "LayoutWriter",
    "MonaiWriter",
    "SimulationSummary",
    "check_simulation_arguments",
    "ellipse_circumference",
    "fit_ellipse",
    "head_circumference_mm",
    "mask_outline",
    "sample_seed",
    "simulate_dataset",
    "synthetic_datalist",
    "synthetic_manifest",
]

MANIFEST_NAME = "dataset.json"
DATALIST_NAME = "datalist.json"
HC18_CSV_NAME = "training_set_pixel_size_and_HC.csv"
HC18_CSV_HEADER = ("filename", "pixel size(mm)", "head circumference (mm)")


class _Sample(Protocol):
    image: np.ndarray
    label: np.ndarray
    mask: np.ndarray
    context: dict


# ----------------------------------------------------------------------------------------------------------------
# masks, outlines and ellipses


def mask_outline(mask: np.ndarray, thickness: int = 2) -> np.ndarray:
    """The outline of a binary mask, ``thickness`` pixels wide, lying inside the mask.

    A pixel is on the outline when it is in the mask and within ``thickness`` 4-connected steps of a pixel outside
    it; the image border counts as outside, so a mask cut by the border gets a closed outline along it. For a mask
    without holes, :py:func:`scipy.ndimage.binary_fill_holes` of the outline gives the mask back exactly.

    Args:
        mask: 2D array; non-zero is foreground.
        thickness: outline width in pixels (HC18 outlines are about 2).

    Returns:
        boolean array of the mask's shape.
    """
    if int(thickness) != thickness or thickness < 1:
        raise ValueError(f"thickness must be a positive integer, got thickness={thickness!r}.")
    mask = np.asarray(mask) > 0
    if not mask.any():
        return mask
    return mask & ~ndimage.binary_erosion(mask, iterations=int(thickness), border_value=0)


def fit_ellipse(points: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares ellipse through 2D points (Fitzgibbon's direct fit, in Halir and Flusser's stable form).

    Args:
        points: ``(N, 2)`` coordinates, N >= 6.

    Returns:
        ``(centre_0, centre_1, semi_major, semi_minor)`` in the units of ``points``.

    Raises:
        ValueError: when there are fewer than 6 points or no ellipse fits them (collinear points, say).
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2 or len(pts) < 6:
        raise ValueError(f"fit_ellipse needs an (N, 2) array with N >= 6, got shape {pts.shape}.")
    centre = pts.mean(axis=0)
    scale = float(pts.std()) or 1.0
    x = (pts[:, 0] - centre[0]) / scale
    y = (pts[:, 1] - centre[1]) / scale
    d1 = np.stack([x * x, x * y, y * y], axis=1)
    d2 = np.stack([x, y, np.ones_like(x)], axis=1)
    s1, s2, s3 = d1.T @ d1, d1.T @ d2, d2.T @ d2
    try:
        t = -np.linalg.solve(s3, s2.T)
    except np.linalg.LinAlgError as e:
        raise ValueError("fit_ellipse: the points are degenerate (collinear or repeated).") from e
    m = s1 + s2 @ t
    m = np.stack([m[2] / 2, -m[1], m[0] / 2])
    _, vectors = np.linalg.eig(m)
    vectors = np.real(vectors)
    ok = np.flatnonzero(4 * vectors[0] * vectors[2] - vectors[1] ** 2 > 0)
    if ok.size == 0:
        raise ValueError("fit_ellipse: no ellipse fits the points.")
    a_, b_, c_ = vectors[:, ok[0]]
    d_, e_, f_ = t @ vectors[:, ok[0]]
    den = b_ * b_ - 4 * a_ * c_
    num = 2 * (a_ * e_ * e_ + c_ * d_ * d_ - b_ * d_ * e_ + den * f_)
    root = math.hypot(a_ - c_, b_)
    axes = [-math.sqrt(max(num * (a_ + c_ + s * root), 0.0)) / den for s in (1.0, -1.0)]
    x0 = (2 * c_ * d_ - b_ * e_) / den
    y0 = (2 * a_ * e_ - b_ * d_) / den
    semi_major, semi_minor = max(axes) * scale, min(axes) * scale
    if not semi_minor > 0:
        raise ValueError("fit_ellipse: no ellipse fits the points.")
    return float(centre[0] + x0 * scale), float(centre[1] + y0 * scale), float(semi_major), float(semi_minor)


def ellipse_circumference(semi_major: float, semi_minor: float) -> float:
    """Circumference of an ellipse by Ramanujan's second approximation (HC18's definition of head circumference)."""
    a, b = float(semi_major), float(semi_minor)
    if a < 0 or b < 0:
        raise ValueError(f"semi-axes must be non-negative, got {a}, {b}.")
    if a + b == 0:
        return 0.0
    h = ((a - b) / (a + b)) ** 2
    return math.pi * (a + b) * (1 + 3 * h / (10 + math.sqrt(4 - 3 * h)))


def head_circumference_mm(
    mask: np.ndarray, spacing_mm: Sequence[float] = (1.0, 1.0), valid: np.ndarray | None = None
) -> float | None:
    """Circumference in mm of the ellipse fitted to the edge of a filled head mask.

    The edge is the 0.5 iso-contour of the mask (sub-pixel, half-way between inside and outside pixels), scaled by
    the (row, column) pixel spacing before the fit, so non-square pixels are handled. Edge points next to pixels
    outside ``valid`` (the field of view of a sector image) or on the image border are left out, so a head cut by
    the fan or the border is still measured by the ellipse through its visible edge.

    Args:
        mask: 2D array; non-zero is the head.
        spacing_mm: (row, column) pixel spacing in mm.
        valid: optional boolean field-of-view mask of the same shape.

    Returns:
        the circumference, or ``None`` when the mask is empty or its edge does not determine an ellipse.
    """
    from skimage.measure import find_contours  # scikit-image is a core dependency; import only when measuring

    mask = np.asarray(mask) > 0
    if not mask.any():
        return None
    contours = [c for c in find_contours(mask.astype(np.float32), 0.5) if len(c)]
    if not contours:
        return None
    points = np.concatenate(contours)
    h, w = mask.shape
    keep = (points[:, 0] > 0) & (points[:, 0] < h - 1) & (points[:, 1] > 0) & (points[:, 1] < w - 1)
    if valid is not None:
        outside = ndimage.binary_dilation(~np.asarray(valid, dtype=bool), iterations=1)
        for rounding in (np.floor, np.ceil):
            idx = rounding(points).astype(np.int64)
            np.clip(idx[:, 0], 0, h - 1, out=idx[:, 0])
            np.clip(idx[:, 1], 0, w - 1, out=idx[:, 1])
            keep &= ~outside[idx[:, 0], idx[:, 1]]
    points = points[keep] * np.asarray(spacing_mm, dtype=np.float64)
    try:
        _, _, semi_major, semi_minor = fit_ellipse(points)
    except ValueError:
        return None
    return ellipse_circumference(semi_major, semi_minor)


# ----------------------------------------------------------------------------------------------------------------
# datalists and manifests


def synthetic_datalist(
    name: str, description: str, labels: Mapping[str, str], splits: Mapping[str, Sequence[Any]], **fields: Any
) -> dict[str, Any]:
    """A MONAI (Decathlon-style) datalist of synthetic 2D ultrasound, marked ``"synthetic": true``.

    Keys, in this order: ``name``, ``description``, ``synthetic``, ``tensorImageSize`` (``"2D"``), ``modality``
    (``{"0": "US"}``), ``labels``, then ``fields``, ``numTraining`` (the length of ``splits["training"]``) and the
    ``splits``. Read it with :py:func:`monai.data.load_decathlon_datalist` or
    :py:func:`usgen_monai.data.datasets.load_json_datalist`.

    Args:
        name: the data set's name.
        description: what it is; should say it is not real patient data.
        labels: label value (as a string) -> class name.
        splits: list name (``"training"``, ``"validation"``, ``"test"``) -> its items.
        fields: more top-level entries, e.g. ``labels_multiclass``.
    """
    return {
        "name": name,
        "description": description,
        "synthetic": True,
        "tensorImageSize": "2D",
        "modality": {"0": "US"},
        "labels": dict(labels),
        **fields,
        "numTraining": len(splits.get("training", ())),
        **{key: list(items) for key, items in splits.items()},
    }


def synthetic_manifest(name: str, entries: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest ``dataset.json`` of a synthetic data set: ``{"name": name, "synthetic": true, **entries}``.

    Write it last (``write_json_atomic(folder / MANIFEST_NAME, ...)``): its presence means the data set is complete.
    """
    return {"name": name, "synthetic": True, **entries}


# ----------------------------------------------------------------------------------------------------------------
# layout writers


class LayoutWriter(ABC):
    """Writes simulated samples into one data-set layout under ``root``.

    Call :py:meth:`write` once per sample, then :py:meth:`finalize` once; the manifest is written by
    :py:func:`simulate_dataset` after that.

    Args:
        root: folder of the data set.
        preset: simulator preset the samples come from.
        classes: label class names of the preset (index == label value).
        target: class names whose union forms the binary mask.
        seed: the data set's seed (the ``monai`` layout uses it for its splits).
    """

    layout: str = ""
    mask_values: tuple[int, int] = (0, 255)

    def __init__(
        self,
        root: str | os.PathLike,
        preset: str,
        classes: Sequence[str] = (),
        target: Sequence[str] = (),
        seed: int = 0,
    ) -> None:
        self.root = Path(root)
        self.preset = preset
        self.classes = tuple(classes)
        self.target = tuple(target)
        self.seed = int(seed)
        self.count = 0

    @abstractmethod
    def write(self, sample: _Sample) -> dict[str, Any]:
        """Write one sample; returns its record (paths relative to ``root`` and the finding)."""

    def finalize(self) -> dict[str, Any]:
        """Write what depends on all samples (index files); returns manifest entries naming them."""
        return {}

    @staticmethod
    def _check(sample: _Sample) -> tuple[np.ndarray, np.ndarray]:
        image, mask = np.asarray(sample.image), np.asarray(sample.mask)
        if image.ndim != 2 or image.shape != mask.shape:
            raise ValueError(f"expected 2D image and mask of one shape, got {image.shape} and {mask.shape}.")
        return to_uint8(image.astype(np.float32, copy=False)), mask > 0  # float32 math whatever the input dtype


def _folder_name(finding: Any) -> str:
    name = str(finding)
    if not name or name in (".", "..") or any(c in name for c in '/\\:*?"<>|'):
        raise ValueError(f"finding {name!r} cannot be used as a folder name.")
    return name


class BUSIWriter(LayoutWriter):
    """BUSI layout: ``<finding>/<finding> (n).png`` and ``<finding>/<finding> (n)_mask.png`` (0/255), n from 1."""

    layout = "busi"
    mask_values = (0, 255)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.per_finding: Counter[str] = Counter()

    def write(self, sample: _Sample) -> dict[str, Any]:
        image, mask = self._check(sample)
        finding = _folder_name(sample.context.get("finding", "normal"))
        self.per_finding[finding] += 1
        name = f"{finding} ({self.per_finding[finding]})"
        write_png(self.root / finding / f"{name}.png", image)
        write_png(self.root / finding / f"{name}_mask.png", mask.astype(np.uint8) * 255)
        self.count += 1
        return {"image": f"{finding}/{name}.png", "label": f"{finding}/{name}_mask.png", "finding": finding}


class HC18Writer(LayoutWriter):
    """HC18 layout: ``training_set/NNN_HC.png``, ``training_set/NNN_HC_Annotation.png`` (outline, 0/255) and
    ``training_set_pixel_size_and_HC.csv``.

    Args:
        outline_thickness: width of the drawn outline in pixels (default 2, as HC18's annotations).
        args, kwargs: see :py:class:`LayoutWriter`.
    """

    layout = "hc18"
    mask_values = (0, 255)

    def __init__(self, *args, outline_thickness: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.outline_thickness = int(outline_thickness)
        self.rows: list[tuple[str, float, float | None]] = []

    def write(self, sample: _Sample) -> dict[str, Any]:
        image, mask = self._check(sample)
        spacing = _pixel_spacing_mm(sample.context, image.shape)
        stem = f"{self.count:03d}_HC"
        folder = self.root / "training_set"
        write_png(folder / f"{stem}.png", image)
        outline = mask_outline(mask, self.outline_thickness)
        write_png(folder / f"{stem}_Annotation.png", outline.astype(np.uint8) * 255)
        hc = None
        if self.preset == "fetal_head":
            hc = head_circumference_mm(mask, spacing, getattr(sample, "fan_mask", None))
        self.rows.append((f"{stem}.png", spacing[0], hc))
        self.count += 1
        finding = str(sample.context.get("finding", "normal"))
        return {"image": f"training_set/{stem}.png", "label": f"training_set/{stem}_Annotation.png", "finding": finding}

    def finalize(self) -> dict[str, Any]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(HC18_CSV_HEADER)
        for name, pixel_size, hc in self.rows:
            writer.writerow([name, f"{pixel_size:.10g}", "" if hc is None else f"{hc:.2f}"])
        write_text_atomic(self.root / HC18_CSV_NAME, buffer.getvalue())
        return {"pixel_size_csv": HC18_CSV_NAME}


def _pixel_spacing_mm(context: dict, shape: tuple[int, int]) -> tuple[float, float]:
    """(row, column) spacing: the simulator's ``pixel_spacing_mm``, else ``depth_mm`` over the rows (square pixels)."""
    spacing = context.get("pixel_spacing_mm")
    if spacing is not None and len(spacing) == 2:
        return float(spacing[0]), float(spacing[1])
    if "depth_mm" not in context:
        raise ValueError(f"sample context has neither 'pixel_spacing_mm' nor 'depth_mm': keys {sorted(context)}.")
    size = float(context["depth_mm"]) / shape[0]
    return size, size


class MonaiWriter(LayoutWriter):
    """MONAI layout: ``images/NNNNN_image.png``, ``labels/NNNNN_label.png`` (0/1),
    ``labels_multiclass/NNNNN_label.png`` (label map) and ``datalist.json``.

    Args:
        split: fractions of the ``training``, ``validation`` and ``test`` lists (default 0.7, 0.15, 0.15); a
            single fraction ``(1.0,)`` writes only ``training``.
        args, kwargs: see :py:class:`LayoutWriter`.
    """

    layout = "monai"
    mask_values = (0, 1)
    split_keys = ("training", "validation", "test")

    def __init__(self, *args, split: Sequence[float] | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        split = (0.7, 0.15, 0.15) if split is None else tuple(float(f) for f in split)
        if not 1 <= len(split) <= 3:
            raise ValueError(f"split takes 1 to 3 fractions (training, validation, test), got split={split}.")
        self.split = split
        self.records: list[dict[str, Any]] = []

    def write(self, sample: _Sample) -> dict[str, Any]:
        image, mask = self._check(sample)
        label = np.asarray(sample.label)
        if label.shape != image.shape or label.min(initial=0) < 0 or label.max(initial=0) > 255:
            raise ValueError(f"label map must be {image.shape} with values 0-255, got shape {label.shape}.")
        name = f"{self.count:05d}"
        write_png(self.root / "images" / f"{name}_image.png", image)
        write_png(self.root / "labels" / f"{name}_label.png", mask.astype(np.uint8))
        write_png(self.root / "labels_multiclass" / f"{name}_label.png", label.astype(np.uint8))
        record = {
            "image": f"images/{name}_image.png",
            "label": f"labels/{name}_label.png",
            "label_multiclass": f"labels_multiclass/{name}_label.png",
            "context": dict(sample.context),
        }
        self.records.append(record)
        self.count += 1
        return {"image": record["image"], "label": record["label"], "finding": str(sample.context.get("finding"))}

    def finalize(self) -> dict[str, Any]:
        from usgen_monai.data.datasets import split_dataset

        parts = split_dataset(self.records, fractions=self.split, seed=self.seed)
        datalist = synthetic_datalist(
            f"usgen-monai simulated {self.preset}",
            "Synthetic B-mode ultrasound from usgen_monai.data.simulator; not real patient data.",
            labels={"0": "background", "1": "+".join(self.target) or "foreground"},
            splits=dict(zip(self.split_keys, parts)),
            labels_multiclass={str(i): name for i, name in enumerate(self.classes)},
        )
        write_json_atomic(self.root / DATALIST_NAME, datalist)
        return {"datalist": DATALIST_NAME, "splits": {k: len(v) for k, v in zip(self.split_keys, parts)}}


LAYOUT_WRITERS: dict[str, type[LayoutWriter]] = {"busi": BUSIWriter, "hc18": HC18Writer, "monai": MonaiWriter}
LAYOUTS = tuple(LAYOUT_WRITERS)


# ----------------------------------------------------------------------------------------------------------------
# simulate a data set


@dataclass
class SimulationSummary:
    """What :py:func:`simulate_dataset` wrote."""

    out_dir: Path
    layout: str
    preset: str
    num: int
    size: tuple[int, int]
    seed: int
    findings: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    manifest: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One-line human summary."""
        counts = ", ".join(f"{k} {v}" for k, v in sorted(self.findings.items()))
        rate = self.num / self.seconds if self.seconds > 0 else float("inf")
        return (
            f"wrote {self.num} {self.preset} images ({self.layout} layout, {self.size[0]}x{self.size[1]}, "
            f"seed {self.seed}; {counts}) to {self.out_dir} in {self.seconds:.1f} s ({rate:.1f} images/s)"
        )


def _check_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"output path {out_dir} exists and is not a directory.")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not overwrite:
        raise ValueError(
            f"output directory {out_dir} is not empty; choose a new one or allow it with overwrite=True "
            "(command line: --overwrite) to write into it (files of the same name are replaced, others are left alone)."
        )


def check_simulation_arguments(
    out_dir: str | os.PathLike,
    preset: str = "breast",
    num: int = 100,
    layout: str = "busi",
    size: int | tuple[int, int] = (256, 256),
    seed: int = 0,
    difficulty: float = 1.0,
    finding: str | None = None,
    split: Sequence[float] | None = None,
    overwrite: bool = False,
) -> Any:
    """Check the arguments of :py:func:`simulate_dataset` without writing anything.

    Returns:
        the :py:class:`usgen_monai.data.simulator.UltrasoundSimulator` they describe.

    Raises:
        ValueError: naming the first argument that is wrong (see :py:func:`simulate_dataset`).
    """
    from usgen_monai.data.simulator import UltrasoundSimulator

    if layout not in LAYOUT_WRITERS:
        raise ValueError(f"unknown layout {layout!r}; expected one of {list(LAYOUT_WRITERS)}.")
    if int(num) != num or num < 1:
        raise ValueError(f"num must be a positive integer, got num={num!r}.")
    if split is not None:
        if layout != "monai":
            raise ValueError(
                f"split applies to the monai layout only, got split={tuple(split)} with layout={layout!r}."
            )
        fractions = tuple(float(f) for f in split)
        if not 1 <= len(fractions) <= 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
            raise ValueError(
                f"split takes 1 to 3 non-negative fractions (training, validation, test) summing to 1, got split={split}."
            )
    sample_seed(seed, 0)  # validates the seed
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(size) != 2:
        raise ValueError(f"size must be one int or (H, W), got size={size}.")
    simulator = UltrasoundSimulator(preset=preset, size=size, difficulty=difficulty)
    if finding is not None and finding not in simulator.findings:
        raise ValueError(
            f"finding {finding!r} is not a finding of preset {preset!r}; expected one of {list(simulator.findings)}."
        )
    _check_out_dir(Path(out_dir), overwrite)
    return simulator


def simulate_dataset(
    out_dir: str | os.PathLike,
    preset: str = "breast",
    num: int = 100,
    layout: str = "busi",
    size: int | tuple[int, int] = (256, 256),
    seed: int = 0,
    difficulty: float = 1.0,
    finding: str | None = None,
    split: Sequence[float] | None = None,
    overwrite: bool = False,
    progress: bool = False,
    command: str | None = None,
) -> SimulationSummary:
    """Simulate ``num`` images with :py:class:`usgen_monai.data.simulator.UltrasoundSimulator` and write them.

    Image ``i`` is ``UltrasoundSimulator(preset, size, difficulty).sample(seed=sample_seed(seed, i), finding)``.

    Args:
        out_dir: folder of the data set; created if missing, must be empty unless ``overwrite``.
        preset: simulator preset, ``"breast"``, ``"fetal_head"`` or ``"msk"``.
        num: number of images (>= 1).
        layout: ``"busi"``, ``"hc18"`` or ``"monai"`` (see the module docstring). ``"hc18"`` with a preset other than
            ``"fetal_head"`` works but warns.
        size: (H, W) of the images, or one int for square images.
        seed: the data set's seed (non-negative).
        difficulty: the simulator's confounder scale (1.0 default, 0 clean).
        finding: one of the preset's findings for every image; ``None`` lets each image's seed draw it.
        split: ``monai`` layout only: fractions of the training/validation/test lists (default 0.7, 0.15, 0.15).
        overwrite: allow a non-empty ``out_dir``.
        progress: show a tqdm progress bar on stderr.
        command: the command line that made the data set, recorded in the manifest.

    Returns:
        a :py:class:`SimulationSummary`.

    Raises:
        ValueError: for an unknown layout or preset, a finding the preset lacks, ``num`` < 1, a bad size or seed, a
            split with another layout than ``monai``, or a non-empty ``out_dir`` without ``overwrite``.
    """
    from tqdm.auto import tqdm

    import usgen_monai

    simulator = check_simulation_arguments(
        out_dir, preset, num, layout, size, seed, difficulty, finding, split, overwrite
    )
    size = simulator.size
    if layout == "hc18" and preset != "fetal_head":
        warnings.warn(
            f"the hc18 layout is meant for the fetal_head preset; writing preset {preset!r} with the outline of its "
            "mask and an empty head-circumference column.",
            UserWarning,
            stacklevel=2,
        )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    kwargs: dict[str, Any] = {"split": split} if layout == "monai" else {}
    writer = LAYOUT_WRITERS[layout](
        out, preset, simulator.classes, getattr(simulator, "target", ()), seed=int(seed), **kwargs
    )
    findings: Counter[str] = Counter()
    start = time.perf_counter()
    for index in tqdm(range(int(num)), desc=f"simulate {preset} -> {layout}", unit="image", disable=not progress):
        sample = simulator.sample(seed=sample_seed(seed, index), finding=finding)
        findings[str(writer.write(sample)["finding"])] += 1
    files = writer.finalize()
    seconds = time.perf_counter() - start

    manifest: dict[str, Any] = {
        "generator": "usgen_monai.data.simulator.UltrasoundSimulator",
        "usgen_monai_version": usgen_monai.__version__,
        "layout": layout,
        "preset": preset,
        "num": int(num),
        "seed": int(seed),
        "sample_seeds": "numpy.random.SeedSequence(seed, spawn_key=(index,)).generate_state(1)[0]",
        "size": list(size),
        "difficulty": float(difficulty),
        "finding": finding,
        "findings": dict(sorted(findings.items())),
        "classes": list(simulator.classes),
        "mask_values": list(writer.mask_values),
        "image_format": "8-bit grey PNG",
        **files,
    }
    if command is not None:
        manifest["command"] = command
    manifest = synthetic_manifest(f"usgen-monai simulated {preset} ({layout} layout)", manifest)
    write_json_atomic(out / MANIFEST_NAME, manifest)
    return SimulationSummary(out, layout, preset, int(num), size, int(seed), dict(findings), seconds, manifest)
