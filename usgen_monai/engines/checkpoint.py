"""Single-file checkpoints that carry everything sampling needs, saved atomically and loadable with
``torch.load(..., weights_only=True)``.

Layout of a checkpoint file::

    {
        "format": "usgen-monai-checkpoint",
        "version": 1,
        "state_dicts": {"translator": ..., "optimizer": ..., "trainer": {"epoch": .., "iteration": ..}, ...},
        "constants": {"latent_scale_factor": 0.93, "scheduler": {"name": "ddim", ...}, "class_names": [...],
                      "context_vocabulary": {...}, "image_size": [128, 128], "latent_shape": [3, 32, 32], ...},
    }

Constants hold only plain Python values (numbers, strings, lists, dicts), never objects, so no unpickling of code is
ever needed. :py:class:`ResumableCheckpoint` is the ignite handler that writes this file during training and resumes
from it when a run is restarted.

A file that cannot be a checkpoint (empty, truncated, corrupt, another kind of file, or a torch file of another
layout) raises :py:class:`InvalidCheckpointError`, a ``ValueError`` that names the file, says which of these it is
and what to do, instead of torch's ``PytorchStreamReader``/``UnpicklingError`` messages.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from usgen_monai.utils import atomic_write

__all__ = [
    "CHECKPOINT_FORMAT",
    "InvalidCheckpointError",
    "ResumableCheckpoint",
    "load_checkpoint",
    "load_torch_file",
    "read_checkpoint",
    "sampling_constants",
    "save_checkpoint",
]

CHECKPOINT_FORMAT = "usgen-monai-checkpoint"
CHECKPOINT_VERSION = 1

_PLAIN = (bool, int, float, str, type(None))

# first bytes of files that end up where a checkpoint was expected, to say what the file is instead
_KNOWN_FORMATS = {
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"\x1f\x8b": "a gzip file (e.g. .nii.gz)",
    b"{": "a JSON or text file",
}
_ADVICE = (
    "Delete it to start over (training writes a new one), or use another checkpoint, e.g. copy an earlier one here."
)


class InvalidCheckpointError(ValueError):
    """A file that cannot be used as a checkpoint: empty, truncated, corrupt, not a torch file, or a torch file that is
    not a ``usgen-monai-checkpoint``. The message names the file, says which, and what to do about it."""


def _plain(value: Any, where: str) -> Any:
    """Convert to plain Python values (tuples -> lists, 0-d tensors/numpy scalars -> numbers) or raise."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, torch.Tensor) and value.ndim == 0:
        return value.item()
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    raise ValueError(
        f"checkpoint constant {where} must be a plain value (number, string, list, dict), got {type(value).__name__}."
    )


def _state_dict(obj: Any, name: str) -> Any:
    if hasattr(obj, "state_dict"):
        return obj.state_dict()
    raise ValueError(f"object {name!r} ({type(obj).__name__}) has no state_dict() and cannot be checkpointed.")


def save_checkpoint(
    path: str | os.PathLike, objects: Mapping[str, Any], constants: Mapping[str, Any] | None = None
) -> Path:
    """Save ``{name: obj.state_dict()}`` and ``constants`` to ``path`` atomically (temporary file in the same folder,
    flushed, then ``os.replace``), so an interrupted save never leaves a truncated checkpoint.

    Args:
        path: checkpoint file.
        objects: modules, optimizers, engines, ... (anything with ``state_dict()``).
        constants: plain values sampling needs (see :py:func:`sampling_constants`).

    Returns:
        the path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "state_dicts": {str(k): _state_dict(v, k) for k, v in objects.items()},
        "constants": _plain(dict(constants or {}), "constants"),
    }
    with atomic_write(path, fsync=True) as tmp:
        torch.save(payload, tmp)
    return path


def _weights_only_reason(error: Exception) -> str:
    """The line of torch's long ``weights_only`` refusal that names the offending global."""
    lines = [line.strip() for line in str(error).splitlines()]
    reason = next((line for line in lines if "Unsupported" in line), lines[0] if lines else "")
    return reason.replace("WeightsUnpickler error: ", "").split(" Please use")[0]


def _unreadable(path: Path, error: Exception) -> Exception:
    """The error to raise for a file ``torch.load`` failed on: :py:class:`InvalidCheckpointError` when the file itself
    is the problem (truncated, corrupt, not a torch file, holds objects ``weights_only`` refuses), else ``error``
    itself (e.g. a CUDA ``map_location`` on a machine without a GPU)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"PK\x03\x04"):  # torch's zip format
        if not zipfile.is_zipfile(path):
            return InvalidCheckpointError(
                f"checkpoint {path} is truncated ({size} bytes, the end of its zip archive is missing): the file was "
                f"cut short, e.g. by a copy or a full disk. {_ADVICE}"
            )
        try:
            with zipfile.ZipFile(path) as archive:
                bad = archive.testzip()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            bad = f"<unreadable archive: {exc}>"
        if bad is not None:
            return InvalidCheckpointError(
                f"checkpoint {path} is corrupt (damaged record {bad!r} in its archive). {_ADVICE}"
            )
        if isinstance(error, pickle.UnpicklingError):
            return InvalidCheckpointError(
                f"{path} is not a {CHECKPOINT_FORMAT} file: it holds Python objects that torch.load(weights_only=True) "
                f"refuses ({_weights_only_reason(error)}), so save_checkpoint did not write it. {_ADVICE}"
            )
        return error
    if head.startswith(b"\x80"):  # torch's legacy (pickle) format
        return InvalidCheckpointError(
            f"checkpoint {path} is truncated or corrupt ({size} bytes of torch's legacy format that torch cannot read)."
            f" {_ADVICE}"
        )
    kind = next((name for magic, name in _KNOWN_FORMATS.items() if head.startswith(magic)), None)
    found = kind if kind is not None else f"a file starting with bytes {head!r}"
    return InvalidCheckpointError(f"{path} is not a checkpoint: it is not a torch file but {found}. {_ADVICE}")


def load_torch_file(path: str | os.PathLike, map_location: Any = "cpu") -> Any:
    """``torch.load(path, map_location, weights_only=True)`` with errors that say what is wrong with the file: the one
    reader of checkpoints and model-zoo weights files (``models/model.pt``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InvalidCheckpointError: the file is empty, truncated, corrupt, not a torch file, or holds objects
            ``weights_only`` refuses.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}.")
    if path.stat().st_size == 0:
        raise InvalidCheckpointError(
            f"checkpoint {path} is empty (0 bytes): its writing never started or was cut short. {_ADVICE}"
        )
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises anything on bytes that are not a torch file (KeyError, EOFError, ...)
        error = _unreadable(path, exc)
        if error is exc:
            raise
        raise error from exc


def read_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint file with ``torch.load(..., weights_only=True)`` and check its format.

    Args:
        path: checkpoint file.
        map_location: ``torch.load`` map location; the default ``"cpu"`` loads checkpoints saved on a GPU on any
            machine.

    Returns:
        the whole checkpoint dict (``format``, ``version``, ``state_dicts``, ``constants``).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        InvalidCheckpointError: the file is empty, truncated, corrupt, not a torch file, not a
            ``usgen-monai-checkpoint`` or of a newer version.
    """
    path = Path(path)
    data = load_torch_file(path, map_location=map_location)
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        found = data.get("format") if isinstance(data, dict) else type(data).__name__
        raise InvalidCheckpointError(
            f"{path} is not a {CHECKPOINT_FORMAT} file (found format {found!r}); save it with save_checkpoint."
        )
    if int(data.get("version", 0)) > CHECKPOINT_VERSION:
        raise InvalidCheckpointError(
            f"{path} has checkpoint version {data['version']}, newer than supported {CHECKPOINT_VERSION}; "
            "update usgen-monai to read it."
        )
    return data


def load_checkpoint(
    path: str | os.PathLike,
    objects: Mapping[str, Any] | None = None,
    map_location: Any = "cpu",
    strict: bool = True,
) -> dict[str, Any]:
    """Load the state of ``objects`` (in place) from ``path`` and return the checkpoint constants.

    Args:
        path: checkpoint file.
        objects: ``{name: obj}`` to restore; each name must be in the checkpoint.
        map_location: ``torch.load`` map location.
        strict: passed to ``nn.Module.load_state_dict``.

    Returns:
        the constants dict (``latent_scale_factor``, ``scheduler``, ``class_names``, ...).

    Raises:
        FileNotFoundError, InvalidCheckpointError: see :py:func:`read_checkpoint`.
        KeyError: a name of ``objects`` has no state in the checkpoint.
    """
    data = read_checkpoint(path, map_location)
    states = data["state_dicts"]
    for name, obj in (objects or {}).items():
        if name not in states:
            raise KeyError(f"checkpoint {path} has no state for {name!r}; it has {sorted(states)}.")
        if isinstance(obj, torch.nn.Module):
            obj.load_state_dict(states[name], strict=strict)
        else:
            obj.load_state_dict(states[name])
    return dict(data["constants"])


def sampling_constants(
    latent_scale_factor: float | None = None,
    scheduler: Any | None = None,
    class_names: Sequence[str] | None = None,
    context_vocabulary: Any | None = None,
    image_size: Sequence[int] | None = None,
    latent_shape: Sequence[int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The constants a sampler needs, in plain form.

    Args:
        latent_scale_factor: from :py:func:`~usgen_monai.engines.compute_latent_scale_factor`.
        scheduler: a schedule (its ``config()`` is stored) or a config dict.
        class_names: label names, index = label value.
        context_vocabulary: a ``ContextVocabulary`` (its ``to_dict()`` is stored) or a dict.
        image_size: spatial size of the images.
        latent_shape: ``(C_lat, h, w)``.
        extra: further plain values (e.g. ``semantic_mode``, ``guidance`` defaults).
    """
    constants: dict[str, Any] = {}
    if latent_scale_factor is not None:
        constants["latent_scale_factor"] = float(latent_scale_factor)
    if scheduler is not None:
        constants["scheduler"] = scheduler.config() if hasattr(scheduler, "config") else dict(scheduler)
    if class_names is not None:
        constants["class_names"] = [str(c) for c in class_names]
    if context_vocabulary is not None:
        constants["context_vocabulary"] = (
            context_vocabulary.to_dict() if hasattr(context_vocabulary, "to_dict") else dict(context_vocabulary)
        )
    if image_size is not None:
        constants["image_size"] = [int(s) for s in image_size]
    if latent_shape is not None:
        constants["latent_shape"] = [int(s) for s in latent_shape]
    constants.update(extra)
    return _plain(constants, "constants")


def _is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0
    )


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


class ResumableCheckpoint:
    """Ignite handler: keep one up-to-date checkpoint file and resume from it.

    On ``STARTED``, if ``resume`` and the file exists, every object in ``save_dict`` (networks, optimizers, and the
    engine itself under any name, whose state holds epoch and iteration) is restored, and the constants stored in the
    file are merged into ``constants``, so a restarted run continues its iteration count. During training the file is
    rewritten every ``save_interval`` epochs (``epoch_level=True``) or iterations, and once more on ``COMPLETED``;
    every write is atomic (:py:func:`save_checkpoint`). ``final_filename`` additionally writes a copy when training
    completes (e.g. ``models/model.pt``).

    A run that is killed (out of memory, a cluster's time limit, ``SIGKILL``) loses the iterations since the last
    save: with ``epoch_level=False`` at most ``save_interval - 1`` iterations, even in the middle of an epoch. Resumed
    mid-epoch, the engine runs the rest of that epoch's iterations (its counters and ``max_epochs`` are those of the
    uninterrupted run) but draws them from the start of a fresh pass of the data loader, as ignite does. A kill during a
    save leaves the previous checkpoint intact plus a partial temporary file, which the next resume deletes.

    If the checkpoint to resume from is unreadable (empty, truncated or corrupt, which atomic saves alone do not cause:
    a damaged disk or an interrupted copy can), resuming raises :py:class:`InvalidCheckpointError` naming the file
    rather than starting over, which would silently discard the training it held and then overwrite it. Delete the
    file to start over, or copy another checkpoint to its path to resume from that one.

    Args:
        save_dir: folder of the checkpoint.
        save_dict: ``{name: obj}`` with ``state_dict``/``load_state_dict``.
        constants: mutable dict of plain values saved with every checkpoint (see :py:func:`sampling_constants`).
        filename: name of the rolling checkpoint.
        save_interval: epochs (or iterations) between saves; 0 saves only at the end.
        epoch_level: count ``save_interval`` in epochs (True) or iterations (False).
        resume: resume from ``save_dir/filename`` when it exists.
        final_filename: extra file written on completion (a name inside ``save_dir``, or an absolute path, e.g. the
            bundle's ``models/model.pt``), or ``None``.
        final_objects: names from ``save_dict`` kept in the final file (e.g. only the network, not optimizers and
            counters, for shipped weights); ``None`` keeps them all.
        engine_key: the engine this handler is attached to is saved under this name too (its state holds epoch and
            iteration, which resuming restores); a bundle config cannot list the trainer in ``save_dict`` itself,
            since the trainer's handlers hold this handler (a circular reference). ``None`` to skip.
    """

    def __init__(
        self,
        save_dir: str | os.PathLike,
        save_dict: Mapping[str, Any],
        constants: dict[str, Any] | None = None,
        filename: str = "checkpoint.pt",
        save_interval: int = 1,
        epoch_level: bool = True,
        resume: bool = True,
        final_filename: str | None = None,
        final_objects: Sequence[str] | None = None,
        engine_key: str | None = "trainer",
    ) -> None:
        if not save_dict:
            raise ValueError("ResumableCheckpoint needs a non-empty save_dict.")
        if save_interval < 0:
            raise ValueError(f"save_interval must be >= 0, got save_interval={save_interval}.")
        self.save_dir = Path(save_dir)
        self.save_dict = dict(save_dict)
        self.constants = constants if constants is not None else {}
        self.filename = filename
        self.save_interval = int(save_interval)
        self.epoch_level = epoch_level
        self.resume = resume
        self.final_filename = final_filename
        unknown = [k for k in final_objects or () if k not in self.save_dict]
        if unknown:
            raise ValueError(f"final_objects {unknown} are not in save_dict {sorted(self.save_dict)}.")
        self.final_objects = tuple(final_objects) if final_objects is not None else None
        self.engine_key = engine_key
        self.logger = logging.getLogger(__name__)

    @property
    def path(self) -> Path:
        """The rolling checkpoint file, ``save_dir / filename``."""
        return self.save_dir / self.filename

    def attach(self, engine: Any) -> None:
        """Register :py:meth:`load` on ``STARTED`` (if ``resume``), :py:meth:`save` every ``save_interval`` epochs or
        iterations, and :py:meth:`complete` on ``COMPLETED``; the engine is saved under ``engine_key``.

        Args:
            engine: an ignite engine, e.g. a ``monai.engines.SupervisedTrainer``.
        """
        from ignite.engine import Events

        if self.engine_key is not None:
            self.save_dict.setdefault(self.engine_key, engine)
        if self.resume:
            engine.add_event_handler(Events.STARTED, self.load)
        if self.save_interval > 0:
            event = Events.EPOCH_COMPLETED if self.epoch_level else Events.ITERATION_COMPLETED
            engine.add_event_handler(event(every=self.save_interval), self.save)
        engine.add_event_handler(Events.COMPLETED, self.complete)

    def load(self, engine: Any) -> None:
        """Restore from the checkpoint file if it exists (keeping the engine's current ``max_epochs``).

        Args:
            engine: the ignite engine being started; its ``state.device`` (if any) is the ``map_location``.

        Raises:
            InvalidCheckpointError: the file exists but is empty, truncated, corrupt or not a checkpoint (the run
                does not start over by itself; see the class docstring).
            KeyError: the file has no state for a name of ``save_dict``.
            ValueError: the checkpoint is beyond the engine's ``max_epochs``.
        """
        if _is_main_process():
            self._remove_partial_saves()
        if not self.path.is_file():
            return
        try:
            data = read_checkpoint(self.path, map_location=getattr(engine.state, "device", None) or "cpu")
        except InvalidCheckpointError as exc:
            raise InvalidCheckpointError(
                f"cannot resume training: {exc} (The run does not start over by itself, so that the training this file "
                "held is not overwritten by mistake; resume=False starts over.)"
            ) from exc
        states = data["state_dicts"]
        missing = [k for k in self.save_dict if k not in states]
        if missing:
            raise KeyError(f"checkpoint {self.path} has no state for {missing}; it has {sorted(states)}.")
        max_epochs = engine.state.max_epochs
        for name, obj in self.save_dict.items():
            obj.load_state_dict(states[name])
        if max_epochs is not None:
            if engine.state.epoch > max_epochs:
                raise ValueError(
                    f"checkpoint {self.path} is at epoch {engine.state.epoch}, beyond max_epochs={max_epochs}; "
                    "raise max_epochs to train further."
                )
            engine.state.max_epochs = max_epochs
        for key, value in data["constants"].items():
            self.constants.setdefault(key, value)
        self.logger.info(f"resumed from {self.path} at epoch {engine.state.epoch}, iteration {engine.state.iteration}")

    def _remove_partial_saves(self) -> list[Path]:
        """Delete the temporary files of saves that a killed process never finished (``.{filename}.{pid}.*.part*``,
        see :py:class:`usgen_monai.utils.atomic_write`) whose writing process no longer runs; returns them."""
        if os.name != "posix" or not self.save_dir.is_dir():  # os.kill(pid, 0) probes a process only on POSIX
            return []
        pattern = re.compile(rf"^\.{re.escape(self.filename)}\.(\d+)\.[0-9a-f]+\.part")
        removed = []
        for candidate in self.save_dir.iterdir():
            match = pattern.match(candidate.name)
            if match is None or not candidate.is_file() or _process_alive(int(match.group(1))):
                continue
            candidate.unlink(missing_ok=True)
            removed.append(candidate)
            self.logger.info(f"removed {candidate}, left by an interrupted save of {self.path}")
        return removed

    def save(self, engine: Any | None = None) -> Path:
        """Write the rolling checkpoint now (only on rank 0 of a distributed run: every rank holds the same
        weights, and one writer avoids racing renames)."""
        if not _is_main_process():
            return self.path
        return save_checkpoint(self.path, self.save_dict, self.constants)

    def complete(self, engine: Any) -> None:
        """On ``COMPLETED``: write the rolling checkpoint and, if ``final_filename`` is set, the final file with
        ``final_objects`` only."""
        self.save(engine)
        if self.final_filename and _is_main_process():
            keep = self.save_dict if self.final_objects is None else {k: self.save_dict[k] for k in self.final_objects}
            path = save_checkpoint(self.save_dir / self.final_filename, keep, self.constants)
            self.logger.info(f"final weights written to {path}")
