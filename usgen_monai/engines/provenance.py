"""What makes a generated pair reproducible: derived seeds, file hashes, the checks that a request still describes
the same inputs, and the sampler settings a record stores.

A pair's provenance record (:py:meth:`usgen_monai.engines.generation.PairGenerator.plan`) holds requests of its mask
source and context source; each request carries a ``type`` (the source that made it) and, for files, their SHA-256,
so regenerating from the record fails loudly, naming the file, when an input changed.

Seeds: sample ``i`` of a run with seed ``s`` has seed ``sample_seed(s, i)`` (see
:py:func:`usgen_monai.data.simulator.sample_seed`), and its mask, context and noise draws use
``sample_seed(sample_seed(s, i), k)`` for ``k = 0, 1, 2`` (:py:func:`derived_seeds`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from usgen_monai.data.simulator import sample_seed
from usgen_monai.engines.schedulers import NoiseSchedule, build_schedule

__all__ = [
    "SAMPLERS",
    "check_request_type",
    "check_sampler",
    "check_unchanged",
    "derived_seeds",
    "file_sha256",
    "sampling_schedule",
    "sampling_steps",
]

#: sampler settings of :py:func:`sampling_schedule` and :py:func:`sampling_steps`
SAMPLERS = ("ddim", "few_step")


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_unchanged(request: Mapping[str, Any], what: str) -> Path:
    """``request["path"]``, after checking that the file still exists and has the SHA-256 the request recorded.

    Args:
        request: a source's request with ``path`` and ``sha256``.
        what: what the file is, for the error (``"mask file"``, ``"context image"``).

    Raises:
        ValueError: the file is gone or its bytes changed, naming it.
    """
    path = Path(request["path"])
    if not path.is_file():
        raise ValueError(f"{what} {path} of the request does not exist.")
    digest = file_sha256(path)
    if digest != request["sha256"]:
        raise ValueError(f"{what} {path} changed since the request (SHA-256 {digest}, was {request['sha256']}).")
    return path


def check_request_type(request: Mapping[str, Any], kind: str) -> None:
    """Check that ``request`` was made by a source of type ``kind``.

    Raises:
        ValueError: a request of another source (the record needs the source it was made with).
    """
    found = request.get("type") if isinstance(request, Mapping) else type(request).__name__
    if found != kind:
        raise ValueError(
            f"this source draws {kind!r} requests, got a {found!r} request; build the generator with the source the "
            "record was made with to regenerate it."
        )


def derived_seeds(seed: int, index: int) -> tuple[int, dict[str, int]]:
    """``(sample seed, {"mask": ..., "context": ..., "noise": ...})`` of sample ``index`` of a run with ``seed``."""
    s = sample_seed(seed, index)
    return s, {"mask": sample_seed(s, 0), "context": sample_seed(s, 1), "noise": sample_seed(s, 2)}


def check_sampler(sampler: str) -> str:
    """``sampler`` when it is one of :py:data:`SAMPLERS`.

    Raises:
        ValueError: any other value, naming the choices.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"sampling must be one of {list(SAMPLERS)}, got sampling={sampler!r}.")
    return sampler


def sampling_schedule(config: Mapping[str, Any], sampler: str = "ddim") -> NoiseSchedule:
    """The noise schedule of a checkpoint (its ``constants["scheduler"]``), set up for ``sampler``.

    Args:
        config: ``{"name": "ddim" | "rflow", **settings}`` as stored by training.
        sampler: ``"ddim"``: the schedule as trained; ``"few_step"``: for a DDIM schedule, trailing timestep spacing
            (``T - 1, T - 1 - T // n, ...``, Lin et al., https://arxiv.org/abs/2305.08891), which starts from pure
            noise and matches DDIM's step at a handful of steps; a rectified-flow schedule is used as trained (its
            Euler steps need no change).
    """
    check_sampler(sampler)
    settings = dict(config)
    if sampler == "few_step" and settings.get("name") == "ddim":
        settings["timestep_spacing"] = "trailing"
    return build_schedule(settings)


def sampling_steps(sampler: str = "ddim", num_inference_steps: int = 50, few_step_steps: int = 8) -> int:
    """Number of sampling steps of ``sampler``: ``num_inference_steps`` for ``"ddim"``, ``few_step_steps`` for
    ``"few_step"``.

    Raises:
        ValueError: an unknown sampler or fewer than one step.
    """
    check_sampler(sampler)
    steps = int(num_inference_steps if sampler == "ddim" else few_step_steps)
    if steps < 1:
        name = "num_inference_steps" if sampler == "ddim" else "few_step_steps"
        raise ValueError(f"{name} must be >= 1, got {name}={steps}.")
    return steps
