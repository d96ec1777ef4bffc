"""The study's protocol: its settings, the one split of the data, and the labelled subsets of each cell.

The data of an anatomy is split once (:py:class:`AnatomyData`, recorded in ``OUT/split.json``):

* ``test``: held out from everything (generator, context bank, segmenters);
* ``labeled_pool``: the images with masks the N labelled pairs of a cell are drawn from (``N`` pairs with seed ``s``
  are the first ``N`` of a seeded permutation of the pool, so the 8 pairs of seed 0 are part of its 16);
* ``unlabeled_pool``: images whose masks are never read, the unlabelled set of the semi-supervised arms and the only
  other images a generator may see.

With no data set the built-in simulator writes each anatomy's three parts from disjoint data-set seeds.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from usgen_monai.utils import write_json_atomic

__all__ = [
    "AnatomyData",
    "StudySettings",
    "labeled_subset",
    "prepare_study_data",
    "write_cell_datalist",
    "write_masks_folder",
]

SIMULATOR = "simulator"


@dataclass(frozen=True)
class StudySettings:
    """What a study runs: anatomies, labelled-set sizes, seeds, arms and the budgets of each training.

    Args:
        anatomies: simulator presets (``breast``, ``fetal_head``, ``msk``); for a user's data set the one preset it
            is (it names the generator's anatomy and the SAM bundle's class).
        labeled_sizes: the N of the comparisons.
        seeds: one labelled draw and one training seed per entry.
        arms: segmentation arms (see :py:data:`usgen_monai.study.arms.ARMS`).
        image_size: side of the MGCC arms' input (images are resized to it; Dice is measured on each test image's
            own grid); the SAM arms use their configuration's input size.
        simulator_image_size: side of the simulated images (``None``: ``image_size``); the generators learn and
            write at this size.
        segmenter_iterations: labelled batches per segmenter training, the same for every arm (the budget).
        segmenter_optimizer: ``adam`` (lr ``segmenter_learning_rate``, weight decay 1e-4) or ``sgd`` (the MGCC
            bundle's default, the paper's SGD with momentum 0.9 at lr 0.01) for the MGCC bundle arms; with a few
            hundred batches SGD at the paper's rate does not leave the all-foreground start (Dice 0.11 on breast).
        segmenter_learning_rate: Adam learning rate of the MGCC bundle arms.
        sam_learning_rate: Adam learning rate of the SAM arms (``None``: the SAM bundle's ``auto``).
        sam_architecture: the SAM arms' configuration (``small``: 256 x 256 input; ``tiny``: 64 x 64, a tenth of
            the cost; see :py:data:`usgen_monai.networks.sam.SAM_ARCHITECTURES`).
        sam_checkpoint: a checkpoint of that configuration the SAM arms fine-tune (the SAM bundle's ``--checkpoint``:
            mask decoder trained, encoders frozen); ``""``: trained from scratch.
        sam_train_mode: what the SAM arms train (the SAM bundle's ``train_mode``): ``auto`` (the mask decoder when
            fine-tuning ``sam_checkpoint``, everything from scratch), ``decoder`` or ``full``.
        sam_synthetic_fraction: the share of each batch the ``sam_csg`` arm draws from the cell's synthetic pairs
            (the SAM bundle's ``synthetic_fraction``).
        generator_iterations: ControlNet fine-tuning iterations of a cell's generator.
        num_synthetic: pairs the cell's generator writes.
        num_test, num_labeled_pool, num_unlabeled_pool: simulator images per part (a user's data set is split
            by fractions instead: ``test_fraction`` held out, the rest halved into the two pools).
        test_fraction: a user's data set's held-out part.
        split_seed: seed of the simulator parts and of a user's data-set split.
        num_threads: intra-op threads of each bundle run (``OMP_NUM_THREADS``).
        device: ``cpu``, ``cuda:0``, ... passed to every bundle run (``""``: each bundle's default).
        in_process: run the bundles in this process (``monai.bundle.run``) instead of one process per run.
        nproc_per_node: the segmenters' trainings run under ``torchrun`` with this many processes (GPUs) and the
            bundles' ``multi_gpu_train.json`` (needs ``in_process=False``); each process takes 1/K of every epoch, so
            the epochs and the images seen stay the budget's, the optimizer steps are 1/K. Generators train in one.
        workers: cells run in this many processes at once (the cells of one anatomy, N and seed, which share a
            generator, stay in one worker); each bundle run uses ``num_threads`` threads.
    """

    anatomies: tuple[str, ...] = ("breast", "fetal_head")
    labeled_sizes: tuple[int, ...] = (8, 16, 32)
    seeds: tuple[int, ...] = (0, 1, 2)
    arms: tuple[str, ...] = (
        "unet", "supervised", "strong_augmentation", "mgcc_real", "mgcc_csg", "sam_real", "sam_csg",
    )  # fmt: skip
    image_size: int = 256
    simulator_image_size: int | None = None
    segmenter_iterations: int = 2000
    segmenter_optimizer: str = "adam"
    segmenter_learning_rate: float = 1e-3
    sam_learning_rate: float | None = None
    sam_architecture: str = "small"
    sam_checkpoint: str = ""
    sam_train_mode: str = "auto"
    sam_synthetic_fraction: float = 0.5
    generator_iterations: int = 400
    num_synthetic: int = 200
    num_test: int = 100
    num_labeled_pool: int = 64
    num_unlabeled_pool: int = 200
    test_fraction: float = 0.2
    split_seed: int = 1000
    num_threads: int = 1
    device: str = ""
    in_process: bool = False
    nproc_per_node: int = 1
    workers: int = 1

    @property
    def generator_image_size(self) -> int:
        """Side of the simulated images, at which the cells' generators learn and write."""
        return self.simulator_image_size or self.image_size

    @classmethod
    def quick(cls, **changes: Any) -> StudySettings:
        """The ``--quick`` study, sized to finish in under 30 minutes on 2 CPU cores (measured in ``docs/study``):
        two anatomies, N = 8 and 16, two seeds, the arms that answer the question (the same-budget baseline, the
        strong-augmentation baseline, MGCC with synthetic unlabelled images, SAM with and without synthetic pairs),
        simulated images of 128 x 128 with segmenters at 64 x 64 (the ``tiny`` SAM configuration), 200 batches
        each, two workers."""
        quick = cls(
            labeled_sizes=(8, 16),
            seeds=(0, 1),
            arms=("supervised", "strong_augmentation", "mgcc_csg", "sam_real", "sam_csg"),
            image_size=64,
            simulator_image_size=128,
            segmenter_iterations=200,
            # Adam at 1e-3 needs ~150 batches to leave MGCCNet's all-foreground start, 3e-3 about 100
            segmenter_learning_rate=3e-3,
            sam_learning_rate=1e-3,  # 2e-4 (the bundle's rate from scratch): breast Dice 0.35 after 300 batches; 1e-3: 0.41
            sam_architecture="tiny",
            generator_iterations=30,
            num_synthetic=24,
            num_test=40,
            num_labeled_pool=16,
            num_unlabeled_pool=48,
            in_process=True,  # a new process per bundle run costs ~20 s of imports
            workers=max(1, min(2, os.cpu_count() or 1)),
        )
        return replace(quick, **changes)

    @classmethod
    def full(cls, **changes: Any) -> StudySettings:
        """The full study (sized for a GPU; runs on a CPU, only slower)."""
        return replace(cls(), **changes)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AnatomyData:
    """The split of one anatomy's data: MONAI datalist items with absolute paths (``split.json`` holds those inside
    the study's folder relative to it)."""

    anatomy: str
    source: str
    test: list[dict[str, Any]] = field(default_factory=list)
    labeled_pool: list[dict[str, Any]] = field(default_factory=list)
    unlabeled_pool: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self, root: str | Path | None = None) -> dict[str, Any]:
        """The split as JSON; paths inside ``root`` (the study's folder) are written relative to it, so that a study
        folder can be moved or committed, and paths outside it (a user's data set) stay absolute."""
        return {
            "anatomy": self.anatomy,
            "source": self.source,
            "test": _relative_to(self.test, root),
            "labeled_pool": _relative_to(self.labeled_pool, root),
            # the unlabelled pool's masks are never read: only its images are recorded
            "unlabeled_pool": _relative_to([{"image": item["image"]} for item in self.unlabeled_pool], root),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], root: str | Path | None = None) -> AnatomyData:
        """The split :py:meth:`to_dict` wrote; relative paths are resolved against ``root``."""
        return cls(
            anatomy=data["anatomy"],
            source=data["source"],
            test=_resolved_against(data["test"], root),
            labeled_pool=_resolved_against(data["labeled_pool"], root),
            unlabeled_pool=_resolved_against(data["unlabeled_pool"], root),
        )


_PATH_KEYS = ("image", "label")


def _relative_to(items: Sequence[Mapping[str, Any]], root: str | Path | None) -> list[dict[str, Any]]:
    out = []
    for item in items:
        entry = dict(item)
        for key in _PATH_KEYS:
            if root is not None and key in entry and Path(entry[key]).is_relative_to(Path(root).resolve()):
                entry[key] = Path(entry[key]).relative_to(Path(root).resolve()).as_posix()
        out.append(entry)
    return out


def _resolved_against(items: Sequence[Mapping[str, Any]], root: str | Path | None) -> list[dict[str, Any]]:
    out = []
    for item in items:
        entry = dict(item)
        for key in _PATH_KEYS:
            if root is not None and key in entry and not Path(entry[key]).is_absolute():
                entry[key] = str(Path(root).resolve() / entry[key])
        out.append(entry)
    return out


def _pixel_spacing(item: Mapping[str, Any]) -> list[float] | None:
    spacing = item.get("pixel_spacing_mm") or (item.get("context") or {}).get("pixel_spacing_mm")
    if spacing is None and item.get("pixel_size_mm"):  # HC18: one isotropic pixel size
        spacing = [item["pixel_size_mm"]] * 2
    return None if spacing is None else [float(spacing[0]), float(spacing[1])]


def _absolute(items: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Datalist items with absolute ``image``/``label`` paths and, where known, ``pixel_spacing_mm`` (for
    head-circumference errors in mm); nothing else of the source's items is passed on."""
    out = []
    for item in items:
        entry = {k: str(Path(item[k]).resolve()) for k in ("image", "label") if k in item}
        spacing = _pixel_spacing(item)
        if spacing is not None:
            entry["pixel_spacing_mm"] = spacing
        out.append(entry)
    return out


def _simulate(out: Path, preset: str, num: int, seed: int, size: int) -> list[dict[str, Any]]:
    from usgen_monai.data.datasets import load_json_datalist
    from usgen_monai.data.layouts import simulate_dataset

    if not (out / "datalist.json").is_file():
        tmp = out.with_name(out.name + ".partial")
        shutil.rmtree(tmp, ignore_errors=True)
        simulate_dataset(
            tmp, preset=preset, num=num, layout="monai", size=(size, size), seed=seed, split=(1.0, 0.0, 0.0),
            progress=False,
        )
        tmp.rename(out)
    return _absolute(load_json_datalist(out, key="training"))


def _with_binary_masks(items: Sequence[Mapping[str, Any]], layout: str, folder: Path) -> list[dict[str, Any]]:
    """The items with each mask written as one 0/1 PNG, loaded as the bundles load the layout
    (:py:func:`usgen_monai.data.load_transforms`: BUSI's several masks of an image merged, HC18 outlines filled), so
    every bundle reads the same masks from a plain datalist."""
    import numpy as np

    from usgen_monai.data import load_transforms
    from usgen_monai.data.image_writers import write_png

    load_label = load_transforms(layout, keys=("image", "label"), binarize=True)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for k, item in enumerate(items):
        target = folder / f"{k:05d}_{Path(item['image']).stem}_mask.png"
        if not target.is_file():
            label = np.asarray(load_label({"label": item["label"]})["label"])[0]
            write_png(target, (label > 0).astype(np.uint8).T)  # MONAI's (column, row) axes back to the file's
        out.append({**item, "label": str(target)})
    return out


def prepare_study_data(
    out: str | Path, settings: StudySettings, dataset_dir: str | Path | None = None, layout: str = "auto"
) -> dict[str, AnatomyData]:
    """Split the data once per anatomy and record it in ``out/split.json``; a later call (a resumed study) reads the
    recorded split back, so every cell of a study sees the same test set.

    Args:
        out: the study's output folder.
        settings: the study's settings.
        dataset_dir: a labelled data set in any layout :py:func:`usgen_monai.data.load_dataset` reads, or ``None``
            for the built-in simulator (one data set per anatomy in ``out/data``).
        layout: the data set's layout (``"auto"`` detects it).

    Raises:
        ValueError: a user's data set with other than one anatomy, too few images for the largest labelled set, or a
            recorded split that does not match the settings' anatomies.
    """
    out = Path(out)
    record = out / "split.json"
    if record.is_file():
        recorded = json.loads(record.read_text(encoding="utf-8"))
        data = {name: AnatomyData.from_dict(part, root=out) for name, part in recorded["anatomies"].items()}
        if sorted(data) != sorted(settings.anatomies):
            raise ValueError(
                f"{record} records the anatomies {sorted(data)}, the settings ask for {sorted(settings.anatomies)}; "
                "use a new --out folder for a different study."
            )
        return data
    data: dict[str, AnatomyData] = {}
    if dataset_dir is None:
        size = settings.generator_image_size
        for k, preset in enumerate(settings.anatomies):
            base = out / "data" / preset
            seed = settings.split_seed + 10 * k
            data[preset] = AnatomyData(
                anatomy=preset,
                source=f"{SIMULATOR} preset {preset}",
                test=_simulate(base / "test", preset, settings.num_test, seed, size),
                labeled_pool=_simulate(base / "labeled_pool", preset, settings.num_labeled_pool, seed + 1, size),
                unlabeled_pool=_simulate(base / "unlabeled_pool", preset, settings.num_unlabeled_pool, seed + 2, size),
            )
    else:
        from usgen_monai.data import detect_layout, load_dataset, split_dataset

        if len(settings.anatomies) != 1:
            raise ValueError(
                f"a user's data set is one anatomy; give the one preset it is (--anatomy breast for BUSI), got "
                f"{list(settings.anatomies)}."
            )
        layout = detect_layout(dataset_dir) if layout == "auto" else layout
        items = load_dataset(dataset_dir, layout=layout)
        items = _with_binary_masks(items, layout, out / "data" / settings.anatomies[0] / "masks")
        rest_fraction = 1.0 - settings.test_fraction
        labeled, unlabeled, test = split_dataset(
            items, fractions=(rest_fraction / 2, rest_fraction / 2, settings.test_fraction), seed=settings.split_seed
        )
        data[settings.anatomies[0]] = AnatomyData(
            anatomy=settings.anatomies[0],
            source=str(Path(dataset_dir).resolve()),
            test=_absolute(test),
            labeled_pool=_absolute(labeled),
            unlabeled_pool=_absolute(unlabeled),
        )
    for part in data.values():
        largest = max(settings.labeled_sizes)
        if len(part.labeled_pool) < largest:
            raise ValueError(
                f"{part.source}: the labelled pool holds {len(part.labeled_pool)} images, fewer than the largest "
                f"labelled set ({largest}); give more images or smaller --labeled-sizes."
            )
        if not part.test or not part.unlabeled_pool:
            raise ValueError(f"{part.source}: the split left no test or no unlabelled images; give more images.")
    write_json_atomic(
        record,
        {
            "protocol": __doc__.split("\n\n")[1].strip(),
            "dataset_dir": None if dataset_dir is None else str(Path(dataset_dir).resolve()),
            "anatomies": {name: part.to_dict(root=out) for name, part in data.items()},
        },
    )
    return data


def labeled_subset(data: AnatomyData, num_labeled: int, seed: int) -> list[dict[str, Any]]:
    """The ``num_labeled`` pairs of seed ``seed``: the first ``num_labeled`` of a seeded permutation of the pool
    (nested: a smaller set of one seed is part of every larger one)."""
    if num_labeled > len(data.labeled_pool):
        raise ValueError(f"{num_labeled} labelled pairs asked, the pool of {data.anatomy} holds {len(data.labeled_pool)}.")
    order = list(range(len(data.labeled_pool)))
    random.Random(f"labeled-{seed}").shuffle(order)
    return [dict(data.labeled_pool[i]) for i in sorted(order[:num_labeled])]


def write_cell_datalist(path: str | Path, labeled: Sequence[Mapping[str, Any]], test: Sequence[Mapping[str, Any]]) -> Path:
    """A MONAI datalist for a cell's segmenter: ``training`` and ``validation`` are both the labelled pairs (model
    selection may not use labels the baseline lacks), ``test`` the held-out images."""
    path = Path(path)
    write_json_atomic(path, {"training": list(labeled), "validation": list(labeled), "test": list(test)})
    return path


def write_masks_folder(folder: str | Path, labeled: Sequence[Mapping[str, Any]]) -> Path:
    """Copy the masks of the labelled pairs into ``folder`` (the generator's mask source)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k, item in enumerate(labeled):
        source = Path(item["label"])
        suffix = "".join(source.suffixes[-2:]) if source.name.endswith(".nii.gz") else source.suffix
        target = folder / f"{k:04d}_{source.stem.split('.')[0]}{suffix}"
        if not target.exists():
            shutil.copyfile(source, target)
    return folder
