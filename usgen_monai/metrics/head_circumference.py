"""Head circumference of a fetal-head mask as HC18 measures it, and the error of a predicted mask's.

HC18 (van den Heuvel et al., "Automated measurement of fetal head circumference using 2D ultrasound images", PLoS
ONE 2018) defines the head circumference as the circumference of the ellipse fitted to the skull's outline, in mm;
its challenge scores a method by the absolute difference between the predicted and the reference circumference.
The geometry (sub-pixel edge, Fitzgibbon's direct least-squares ellipse fit, Ramanujan's circumference) is the one
the package's HC18 layout writer uses for its reference values
(:py:func:`usgen_monai.data.layouts.head_circumference_mm`), so measured and reference numbers agree by
construction.

Example::

    >>> rows, cols = np.mgrid[:200, :200]
    >>> disc = (rows - 100) ** 2 + (cols - 100) ** 2 <= 60 ** 2
    >>> round(head_circumference(disc, spacing_mm=(0.5, 0.5)), 1)       # a circle of 30 mm: 2 * pi * 30 = 188.5
    188.4
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["head_circumference", "head_circumference_error"]


def _row_major(mask: Any, reverse_indexing: bool, name: str) -> np.ndarray:
    array = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
    if array.ndim == 3:
        if array.shape[0] != 1:
            raise ValueError(f"{name} must be one channel (1, spatial_0, spatial_1) or 2D, got shape {array.shape}.")
        array = array[0]
    if array.ndim != 2:
        raise ValueError(f"{name} must be a 2D mask (or one channel of one), got shape {array.shape}.")
    array = array > 0
    return array.T if reverse_indexing else array


def head_circumference(
    mask: Any, spacing_mm: Sequence[float] = (1.0, 1.0), reverse_indexing: bool = False
) -> float | None:
    """Circumference in mm of the ellipse fitted to the edge of a filled head mask (HC18's head circumference).

    Args:
        mask: ``(H, W)`` or ``(1, H, W)`` array or tensor; non-zero is the head.
        spacing_mm: (row, column) pixel spacing in mm; ``(1, 1)`` gives pixels.
        reverse_indexing: ``True`` if the mask's first spatial axis is x (MONAI's order, ``(1, W, H)``).

    Returns:
        the circumference, or ``None`` when the mask is empty or its edge determines no ellipse.
    """
    from usgen_monai.data.layouts import head_circumference_mm

    if len(spacing_mm) != 2 or not all(float(s) > 0 for s in spacing_mm):
        raise ValueError(f"spacing_mm must be two positive (row, column) spacings, got spacing_mm={spacing_mm!r}.")
    return head_circumference_mm(_row_major(mask, reverse_indexing, "mask"), [float(s) for s in spacing_mm])


def head_circumference_error(
    pred: Any, label: Any, spacing_mm: Sequence[float] = (1.0, 1.0), reverse_indexing: bool = False
) -> dict[str, float]:
    """HC18's score for one image: the absolute difference of the predicted and the reference head circumference.

    A prediction without a measurable ellipse (an empty mask) counts as a circumference of 0, so a missed head costs
    its whole circumference rather than vanishing from the mean.

    Args:
        pred: the predicted mask (see :py:func:`head_circumference`).
        label: the reference mask, on the same grid.
        spacing_mm: (row, column) pixel spacing in mm.
        reverse_indexing: ``True`` for MONAI's axis order.

    Returns:
        ``{"pred_mm", "label_mm", "abs_error_mm", "rel_error"}`` (relative to the reference); every value NaN when the
        reference has no measurable ellipse.
    """
    reference = head_circumference(label, spacing_mm, reverse_indexing)
    if reference is None or reference <= 0:
        return {k: math.nan for k in ("pred_mm", "label_mm", "abs_error_mm", "rel_error")}
    measured = head_circumference(pred, spacing_mm, reverse_indexing) or 0.0
    error = abs(measured - reference)
    return {"pred_mm": measured, "label_mm": reference, "abs_error_mm": error, "rel_error": error / reference}
