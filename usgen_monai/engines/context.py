"""The tabular context: its vocabulary (acquisition context dictionaries -> the index and scalar tensors the context
encoder reads) and how a generated pair's context is merged from its sources (:py:func:`merge_context`).

A context is what the simulator returns in ``sample.context`` (or what a data set's metadata says): categorical
fields such as ``preset``, ``finding``, ``probe`` and scalar fields such as ``depth_mm``, ``frequency_mhz``,
``gain_db``, ``dynamic_range_db``. The vocabulary fixes the order of the fields, the index of every categorical value
(0 is "unknown"), and a ``(low, high)`` range per scalar for normalisation. It is stored in the checkpoint
(:py:meth:`to_dict`/:py:meth:`from_dict`) so sampling encodes contexts exactly as training did.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from usgen_monai.data.context_fields import (
    APPEARANCE_CONTEXT_FIELDS,
    CATEGORICAL_CONTEXT_FIELDS,
    GENERATOR_CONTEXT_FIELDS,
    GEOMETRY_CONTEXT_FIELDS,
    MASK_CONTEXT_FIELDS,
)

__all__ = ["ContextVocabulary", "merge_context", "simulator_vocabulary"]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, torch.Tensor):
        return value.reshape(-1).tolist() if value.ndim > 0 else [value.item()]
    if isinstance(value, (list, tuple)):
        return list(value)
    return [value]


class ContextVocabulary:
    """Fixed encoding of categorical and scalar context fields.

    Args:
        categorical: ``{field: [value, ...]}``; a value's index is its position + 1, and 0 means unknown/missing.
        scalars: ``{field: (low, high)}``; a value ``v`` is encoded as ``(v - low) / (high - low)``, missing as NaN.

    Example::

        vocab = ContextVocabulary(
            categorical={"preset": ["breast", "fetal_head", "msk"], "finding": ["normal", "benign", "malignant"]},
            scalars={"depth_mm": (20.0, 80.0), "gain_db": (-10.0, 10.0)},
        )
        cat, sca = vocab.encode([{"preset": "msk", "finding": "normal", "depth_mm": 40.0}])
        # cat = [[3, 1]], sca = [[0.333, nan]]
    """

    def __init__(
        self,
        categorical: Mapping[str, Sequence[str]] | None = None,
        scalars: Mapping[str, Sequence[float]] | None = None,
    ) -> None:
        self.categorical: dict[str, list[str]] = {}
        for field, values in (categorical or {}).items():
            values = [str(v) for v in values]
            if not values:
                raise ValueError(f"categorical field {field!r} has no values.")
            if len(set(values)) != len(values):
                raise ValueError(f"categorical field {field!r} has repeated values: {values}.")
            self.categorical[str(field)] = values
        self.scalars: dict[str, tuple[float, float]] = {}
        for field, bounds in (scalars or {}).items():
            if len(bounds) != 2 or not float(bounds[1]) > float(bounds[0]):
                raise ValueError(f"scalar field {field!r} needs (low, high) with high > low, got {tuple(bounds)}.")
            self.scalars[str(field)] = (float(bounds[0]), float(bounds[1]))
        self._index = {f: {v: i + 1 for i, v in enumerate(vals)} for f, vals in self.categorical.items()}

    @property
    def categorical_fields(self) -> tuple[str, ...]:
        return tuple(self.categorical)

    @property
    def scalar_fields(self) -> tuple[str, ...]:
        return tuple(self.scalars)

    @property
    def categorical_sizes(self) -> tuple[int, ...]:
        """Embedding sizes per categorical field, including index 0 (``ContextEncoder(categorical_sizes=...)``)."""
        return tuple(len(v) + 1 for v in self.categorical.values())

    # ---- encoding ---------------------------------------------------------------------------------------------------
    def _columns(
        self, context: Mapping[str, Any] | Sequence[Mapping[str, Any]], batch_size: int | None = None
    ) -> tuple[dict[str, list[Any]], int]:
        """Field -> list of per-sample values, from a list of dicts or a collated dict (lists/tensors per field)."""
        fields = [*self.categorical, *self.scalars]
        if isinstance(context, Mapping):
            columns = {k: _as_list(context[k]) for k in fields if k in context}
            lengths = {len(v) for v in columns.values()}
            if len(lengths) > 1:
                raise ValueError(
                    f"collated context fields have different lengths: { {k: len(v) for k, v in columns.items()} }."
                )
            bsz = lengths.pop() if lengths else (1 if batch_size is None else batch_size)
            if batch_size is not None and bsz != batch_size:
                raise ValueError(f"context has {bsz} samples but batch_size={batch_size}.")
            return columns, bsz
        samples = list(context)
        return {f: [s.get(f) for s in samples] for f in fields}, len(samples)

    def index(self, field: str, value: Any) -> int:
        """Index of ``value`` in categorical ``field``; ``None``/empty -> 0. Unknown values raise ``ValueError``."""
        if field not in self._index:
            raise ValueError(f"{field!r} is not a categorical field; fields are {list(self.categorical)}.")
        if value is None or value == "":
            return 0
        try:
            return self._index[field][str(value)]
        except KeyError:
            raise ValueError(
                f"unknown value {value!r} for context field {field!r}; known values are {self.categorical[field]}."
            ) from None

    def encode(
        self,
        context: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        device: str | torch.device | None = None,
        batch_size: int | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode a batch of contexts.

        Args:
            context: a list of context dicts, or one collated dict (``list_data_collate`` output: a list or tensor per
                field). Missing fields are unknown (categorical 0, scalar NaN).
            device: device of the outputs.
            batch_size: expected number of samples (needed when a collated dict has none of the fields).

        Returns:
            ``(categorical (B, num_categorical) long, scalars (B, num_scalars) float32)``.
        """
        columns, bsz = self._columns(context, batch_size)
        cat = torch.zeros(bsz, len(self.categorical), dtype=torch.long)
        for j, field in enumerate(self.categorical):
            for i, value in enumerate(columns.get(field, [None] * bsz)):
                cat[i, j] = self.index(field, value)
        sca = torch.full((bsz, len(self.scalars)), float("nan"), dtype=torch.float32)
        for j, (field, (low, high)) in enumerate(self.scalars.items()):
            for i, value in enumerate(columns.get(field, [None] * bsz)):
                if value is None:
                    continue
                value = float(value)
                if not math.isnan(value):
                    sca[i, j] = (value - low) / (high - low)
        return cat.to(device), sca.to(device)

    def num_class_labels(self, fields: Sequence[str]) -> int:
        """Number of class labels of :py:meth:`class_labels` over ``fields``, including the null label 0
        (``DiffusionModelUNet(num_class_embeds=...)``)."""
        n = 1
        for field in fields:
            if field not in self.categorical:
                raise ValueError(f"{field!r} is not a categorical field; fields are {list(self.categorical)}.")
            n *= len(self.categorical[field])
        return n + 1

    def class_labels(
        self,
        context: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        fields: Sequence[str],
        device: str | torch.device | None = None,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """One class label per sample for the combination of ``fields`` (e.g. preset x finding): ``1 + `` the
        mixed-radix index of the values; 0 is reserved for the null (unconditional) label. Every field must be known.

        Returns:
            ``(B,)`` long.
        """
        columns, bsz = self._columns(context, batch_size)
        labels = torch.zeros(bsz, dtype=torch.long)
        for i in range(bsz):
            code = 0
            for field in fields:
                value = columns.get(field, [None] * bsz)[i]
                idx = self.index(field, value)
                if idx == 0:
                    raise ValueError(f"context field {field!r} is missing for sample {i}; class labels need it.")
                code = code * len(self.categorical[field]) + (idx - 1)
            labels[i] = code + 1
        return labels.to(device)

    # ---- persistence ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """Plain (JSON- and ``weights_only``-safe) form."""
        return {
            "categorical": {k: list(v) for k, v in self.categorical.items()},
            "scalars": {k: [lo, hi] for k, (lo, hi) in self.scalars.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ContextVocabulary:
        return cls(categorical=data.get("categorical"), scalars=data.get("scalars"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ContextVocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"ContextVocabulary(categorical={self.categorical}, scalars={self.scalars})"


def simulator_vocabulary() -> ContextVocabulary:
    """The vocabulary of the built-in simulator's contexts: presets, the union of their findings (in preset order),
    probe types, and normalisation ranges that cover every preset's depth, frequency, gain and dynamic range."""
    from usgen_monai.data.simulator import PRESET_FINDINGS, PRESETS

    findings: list[str] = []
    for preset in PRESETS:
        for finding in PRESET_FINDINGS[preset]:
            if finding not in findings:
                findings.append(finding)
    values = {"preset": list(PRESETS), "finding": findings, "probe": ["linear", "curvilinear"]}
    return ContextVocabulary(
        categorical={name: values[name] for name in CATEGORICAL_CONTEXT_FIELDS},
        scalars={
            "depth_mm": (20.0, 170.0),
            "frequency_mhz": (2.0, 16.0),
            "gain_db": (-10.0, 10.0),
            "dynamic_range_db": (40.0, 80.0),
        },
    )


def merge_context(
    mask_context: Mapping[str, Any] | None,
    image_context: Mapping[str, Any] | None,
    overrides: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The tabular context of a generated pair, field by field (the first source that has a value wins):

    * ``preset``, ``finding``: the overrides, the mask source (which follows the run's ``preset`` and ``finding``),
      never the context image, whose own finding is unrelated to the mask;
    * ``probe``, ``depth_mm`` (geometry, which the label map depends on): the overrides, the mask source, the context
      image's record;
    * ``frequency_mhz``, ``gain_db``, ``dynamic_range_db`` (appearance): the overrides, the context image's record,
      the mask source.

    A field that no source knows is left out; the translator sees it as unknown (its null embedding), which training
    taught it.

    Args:
        mask_context: what the mask source knows (preset, finding, and for simulated anatomy its acquisition).
        image_context: the context image's record (a simulated bank image's acquisition), or empty.
        overrides: user values; ``None`` values are ignored.

    Returns:
        the fields of :py:data:`usgen_monai.data.context_fields.GENERATOR_CONTEXT_FIELDS` that some source knows.
    """
    mask_context = dict(mask_context or {})
    image_context = dict(image_context or {})
    overrides = {k: v for k, v in (overrides or {}).items() if v is not None}
    order: dict[str, tuple[dict[str, Any], ...]] = {}
    for name in MASK_CONTEXT_FIELDS:
        order[name] = (overrides, mask_context)
    for name in GEOMETRY_CONTEXT_FIELDS:
        order[name] = (overrides, mask_context, image_context)
    for name in APPEARANCE_CONTEXT_FIELDS:
        order[name] = (overrides, image_context, mask_context)
    out: dict[str, Any] = {}
    for name in GENERATOR_CONTEXT_FIELDS:
        for source in order[name]:
            if source.get(name) is not None:
                out[name] = source[name]
                break
    return out
