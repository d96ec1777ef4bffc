"""The simulator as a MONAI dataset: item ``i`` is the image simulated with seed ``seed + i``."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from monai.data import Dataset
from monai.transforms import apply_transform

from .simulator import UltrasoundSimulator, sample_seed

__all__ = ["SimulatedUltrasoundDataset"]


class SimulatedUltrasoundDataset(Dataset):
    """A map-style dataset of simulated ultrasound images, usable wherever MONAI expects a ``Dataset``.

    Items are dictionaries ``{"image": (1, H, W) float32, "label": (1, H, W) uint8 binary target,
    "label_map": (1, H, W) uint8 label map, "context": dict}`` (channel-first, as after ``EnsureChannelFirstd``),
    computed on the fly and deterministic by index, so no disk and no cache are needed. Item ``i`` is image ``i``
    of ``python -m usgen_monai simulate --seed seed`` (seeds from :func:`sample_seed`).

    Args:
        preset: simulator preset (``"breast"``, ``"fetal_head"``, ``"msk"``).
        num_samples: length of the dataset.
        size: (H, W) or an int.
        seed: data-set seed; item ``i`` is simulated with ``sample_seed(seed, i)``.
        difficulty: simulator difficulty.
        findings: findings to cycle through (item ``i`` gets ``findings[i % len(findings)]``); None draws per seed.
        unified_labels: express ``label_map`` in :data:`UNIFIED_CLASSES` values (one label space for all presets).
        transform: MONAI transform applied to each item.
    """

    def __init__(
        self,
        preset: str = "breast",
        num_samples: int = 100,
        size: int | Sequence[int] = 256,
        seed: int = 0,
        difficulty: float = 1.0,
        findings: Sequence[str] | None = None,
        unified_labels: bool = False,
        transform: Callable | None = None,
    ):
        if num_samples < 0:
            raise ValueError(f"num_samples must be >= 0, got num_samples={num_samples}.")
        self.simulator = UltrasoundSimulator(preset, size=size if isinstance(size, int) else tuple(size),
                                             difficulty=difficulty)
        if findings is not None:
            unknown = [f for f in findings if f not in self.simulator.findings]
            if unknown or not findings:
                raise ValueError(
                    f"findings {list(findings)} must be a non-empty subset of {self.simulator.findings} for {preset!r}."
                )
        self.findings = tuple(findings) if findings is not None else None
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.unified_labels = unified_labels
        super().__init__(data=range(self.num_samples), transform=transform)

    def __len__(self) -> int:
        return self.num_samples

    def _transform(self, index: int):
        finding = None if self.findings is None else self.findings[index % len(self.findings)]
        s = self.simulator.sample(seed=sample_seed(self.seed, index), finding=finding)
        label_map = self.simulator.to_unified(s.label) if self.unified_labels else s.label
        item = {
            "image": s.image[None],
            "label": s.mask[None],
            "label_map": np.asarray(label_map)[None],
            "context": s.context,
        }
        return apply_transform(self.transform, item) if self.transform is not None else item
