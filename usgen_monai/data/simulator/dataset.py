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
        context_fields: keep only these context fields (flat values that MONAI's collate can batch), e.g. the
            fields of a context vocabulary; None keeps the whole context.
        with_context_image: add ``"context_image"``: an image of other anatomy (another seed, same preset and
            finding) taken with the same scanner settings, i.e. one that looks alike: the appearance context a
            context-conditioned generator learns to transfer.
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
        context_fields: Sequence[str] | None = None,
        with_context_image: bool = False,
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
        self.context_fields = tuple(context_fields) if context_fields is not None else None
        self.with_context_image = with_context_image
        super().__init__(data=range(self.num_samples), transform=transform)

    def __len__(self) -> int:
        return self.num_samples

    def _transform(self, index: int):
        finding = None if self.findings is None else self.findings[index % len(self.findings)]
        seed = sample_seed(self.seed, index)
        s = self.simulator.sample(seed=seed, finding=finding)
        label_map = self.simulator.to_unified(s.label) if self.unified_labels else s.label
        context = s.context
        if self.context_fields is not None:
            missing = [f for f in self.context_fields if f not in context]
            if missing:
                raise ValueError(f"context_fields {missing} are not simulator context fields: {sorted(context)}.")
            context = {f: context[f] for f in self.context_fields}
        item = {
            "image": s.image[None],
            "label": s.mask[None],
            "label_map": np.asarray(label_map)[None],
            "context": context,
        }
        if self.with_context_image:
            other = self.simulator.sample(
                seed=sample_seed(seed, 1), finding=s.context["finding"], acquisition=s.acquisition
            )
            item["context_image"] = other.image[None]
        return apply_transform(self.transform, item) if self.transform is not None else item
