"""The tabular context of the generator: which fields exist, which are categorical, and which source a field's
value comes from when several know it. The one home of these names; datasets, mask and context sources, the
vocabulary and the generator all read them from here.

The fields are a subset of the simulator's context (``UltrasoundSimulator.sample(...).context``):

* what the label map decides (:py:data:`MASK_CONTEXT_FIELDS`): ``preset``, ``finding``;
* the acquisition geometry, which the label map depends on (:py:data:`GEOMETRY_CONTEXT_FIELDS`): ``probe``,
  ``depth_mm``;
* the appearance (:py:data:`APPEARANCE_CONTEXT_FIELDS`): ``frequency_mhz``, ``gain_db``, ``dynamic_range_db``.
"""

from __future__ import annotations

__all__ = [
    "APPEARANCE_CONTEXT_FIELDS",
    "CATEGORICAL_CONTEXT_FIELDS",
    "GENERATOR_CONTEXT_FIELDS",
    "GEOMETRY_CONTEXT_FIELDS",
    "MASK_CONTEXT_FIELDS",
    "OVERRIDABLE_CONTEXT_FIELDS",
    "SCALAR_CONTEXT_FIELDS",
]

MASK_CONTEXT_FIELDS = ("preset", "finding")
GEOMETRY_CONTEXT_FIELDS = ("probe", "depth_mm")
APPEARANCE_CONTEXT_FIELDS = ("frequency_mhz", "gain_db", "dynamic_range_db")
#: every field the generator is conditioned on, in the order of its vocabulary
GENERATOR_CONTEXT_FIELDS = MASK_CONTEXT_FIELDS + GEOMETRY_CONTEXT_FIELDS + APPEARANCE_CONTEXT_FIELDS
#: fields whose values are names (embedded by index); the others are numbers (normalised scalars)
CATEGORICAL_CONTEXT_FIELDS = ("preset", "finding", "probe")
SCALAR_CONTEXT_FIELDS = tuple(f for f in GENERATOR_CONTEXT_FIELDS if f not in CATEGORICAL_CONTEXT_FIELDS)
#: fields a user may set for a whole generation run (the mask decides preset and finding)
OVERRIDABLE_CONTEXT_FIELDS = GEOMETRY_CONTEXT_FIELDS + APPEARANCE_CONTEXT_FIELDS
