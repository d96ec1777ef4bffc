"""Running the bundles' own configs for a study: one ``python -m monai.bundle run`` process per step, logged to a file,
and study cells whose finished results are kept so an interrupted study resumes where it stopped."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usgen_monai.utils import write_json_atomic

__all__ = ["BundleRunError", "Cell", "bundle_command", "run_bundle", "run_cell"]

RESULT_FILE = "result.json"
ERROR_FILE = "error.json"


class BundleRunError(RuntimeError):
    """A bundle run exited with an error; the message holds the command, the exit status and the log's last lines."""


def _override_text(value: Any) -> str:
    """A config override as ``monai.bundle run`` (python-fire) parses it back to ``value``."""
    if isinstance(value, str):
        return value
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (bool, int, float)) or value is None:
        return repr(value)
    return repr(json.loads(json.dumps(value)))  # lists and dicts as Python literals (True, None)


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bundle_command(
    config_files: Sequence[str | Path], overrides: Mapping[str, Any] | None = None, nproc_per_node: int = 1
) -> list[str]:
    """The ``python -m monai.bundle run`` command line for ``config_files`` with ``--id value`` overrides; with
    ``nproc_per_node > 1`` under ``torchrun`` (``python -m torch.distributed.run``, one node, a free port), as the
    bundles' ``multi_gpu_train.json`` expects."""
    launcher = [sys.executable]
    if nproc_per_node > 1:
        # one node, a free port of this machine for the ranks' rendezvous (what the bundles' torchrun tests use)
        launcher += ["-m", "torch.distributed.run", "--nnodes=1", f"--nproc_per_node={nproc_per_node}",
                     f"--master_port={_free_port()}"]  # fmt: skip
    command = [*launcher, "-m", "monai.bundle", "run", "--config_file", repr([str(f) for f in config_files])]
    for key, value in (overrides or {}).items():
        command += [f"--{key}", _override_text(value)]
    return command


def _run_in_process(config_files: Sequence[str | Path], overrides: Mapping[str, Any], log_path: Path) -> None:
    import logging

    from monai.bundle import run

    handler = logging.FileHandler(log_path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        # the bundle's logging.conf would replace the root's handlers, and with them this run's log file
        run(config_file=[str(f) for f in config_files], logging_file=False, **dict(overrides))
    except Exception as e:
        raise BundleRunError(f"{config_files[-1]} failed ({type(e).__name__}: {e}); log {log_path}") from e
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        handler.close()


def run_bundle(
    config_files: Sequence[str | Path],
    overrides: Mapping[str, Any] | None,
    log_path: str | Path,
    num_threads: int | None = 1,
    cwd: str | Path | None = None,
    in_process: bool = False,
    nproc_per_node: int = 1,
) -> float:
    """Run one bundle config to its end, appending its output to ``log_path``: in a new ``python -m monai.bundle
    run`` process (the default: a crash or a leak of one run cannot touch the next), or with
    ``monai.bundle.run`` in this process (``in_process``: no start-up cost, for small runs and tests).

    ``nproc_per_node > 1`` runs it under ``torchrun`` with that many processes (not in process).

    Returns:
        the wall time in seconds.

    Raises:
        BundleRunError: the run failed (the message quotes the end of the log, or names the exception).
        ValueError: ``nproc_per_node > 1`` with ``in_process``.
    """
    if nproc_per_node > 1 and in_process:
        raise ValueError("a torchrun launch (nproc_per_node > 1) runs in its own processes, not in process.")
    command = bundle_command(config_files, overrides, nproc_per_node)
    log_path = Path(log_path)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_path, "a", encoding="utf-8") as log:
        log.write("$ " + " ".join(command) + "\n")
    if in_process:
        _run_in_process(config_files, overrides or {}, log_path)
        return time.perf_counter() - start
    env = dict(os.environ)
    if num_threads:
        env["OMP_NUM_THREADS"] = str(num_threads)
    with open(log_path, "a", encoding="utf-8") as log:
        status = subprocess.call(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
    seconds = time.perf_counter() - start
    if status != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-15:]
        raise BundleRunError(
            f"{config_files[-1]} exited with status {status} after {seconds:.0f} s (log {log_path}):\n" + "\n".join(tail)
        )
    return seconds


@dataclass(frozen=True)
class Cell:
    """One measurement of a study: an ``arm`` trained on ``num_labeled`` pairs of ``anatomy`` drawn with ``seed``."""

    anatomy: str
    num_labeled: int
    seed: int
    arm: str

    @property
    def name(self) -> str:
        return f"{self.anatomy}/n{self.num_labeled:03d}/seed{self.seed}/{self.arm}"

    def folder(self, out: str | Path) -> Path:
        return Path(out) / "cells" / self.name

    def to_dict(self) -> dict[str, Any]:
        return {"anatomy": self.anatomy, "num_labeled": self.num_labeled, "seed": self.seed, "arm": self.arm}


def run_cell(cell: Cell, out: str | Path, compute: Callable[[Path], Mapping[str, Any]]) -> dict[str, Any]:
    """The result of ``cell``: read back when a previous run finished it, else ``compute(folder)``, written to
    ``folder/result.json`` (atomically, so a killed run leaves no half result). A failure is written to
    ``folder/error.json`` and returned as ``{"error": ...}`` so the study goes on; the next run retries it.
    """
    folder = cell.folder(out)
    result_path = folder / RESULT_FILE
    if result_path.is_file():
        return json.loads(result_path.read_text(encoding="utf-8"))
    folder.mkdir(parents=True, exist_ok=True)
    (folder / ERROR_FILE).unlink(missing_ok=True)
    start = time.perf_counter()
    try:
        result = {**cell.to_dict(), **dict(compute(folder)), "seconds": round(time.perf_counter() - start, 1)}
    except Exception as e:  # noqa: BLE001 - a failed cell is reported and the study goes on
        error = {**cell.to_dict(), "error": f"{type(e).__name__}: {e}", "seconds": round(time.perf_counter() - start, 1)}
        write_json_atomic(folder / ERROR_FILE, error)
        return error
    write_json_atomic(result_path, result)
    return result
