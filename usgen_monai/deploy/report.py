"""What a MONAI Deploy run did, shared by the app's operators (no SDK import here).

Every operator that can reject a file (the loader: unreadable or not DICOM; the ultrasound operator: not an
ultrasound series, or the bundle's preprocessing cannot read it; inference; the SEG writer) records it in one
:py:class:`RunReport`; the last operator writes it as ``inference_summary.json`` (the format of the MGCC bundle's own
summary, :py:class:`usgen_monai.engines.segmentation_inference.InferenceSummary`) and logs the line
``segmented N of M input(s) ...; K failed: ...``.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any

from usgen_monai.engines.segmentation_inference import InferenceSummary, failure_reason
from usgen_monai.utils import write_json_atomic

__all__ = ["SUMMARY_NAME", "RunReport"]

logger = logging.getLogger(__name__)

#: the summary file written into the output folder
SUMMARY_NAME = "inference_summary.json"


def _natural(path: str) -> list[Any]:
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(path))]


class RunReport:
    """Records of one run: one per input file, segmented or failed (with the reason).

    Args:
        output_dir: where the summary goes (``inference_summary.json``).
        input_dir: the input folder (written into the summary).
    """

    def __init__(self, output_dir: str | os.PathLike, input_dir: str | os.PathLike | None = None) -> None:
        self.output_dir = Path(output_dir)
        self.input_dir = None if input_dir is None else str(input_dir)
        self.summary = InferenceSummary()
        self._start = time.perf_counter()
        self._lock = threading.Lock()
        self.finished = False

    @property
    def summary_path(self) -> Path:
        return self.output_dir / SUMMARY_NAME

    def fail(self, source: str | os.PathLike, error: BaseException | str, stage: str) -> None:
        """Record that ``source`` was skipped at ``stage`` (``"load"``, ``"select"``, ``"preprocess"``, ...)."""
        reason = error if isinstance(error, str) else failure_reason(error)
        with self._lock:
            self.summary.failed.append({"input": os.fspath(source), "stage": stage, "reason": reason})
        logger.warning(f"skipped {source}: {reason}")
        if isinstance(error, BaseException):
            logger.debug(f"{source} failed", exc_info=error)

    def succeed(self, record: dict[str, Any]) -> None:
        """Record a segmented input (``input``, ``outputs``, ``format``, ``shape``, ``frames``, ...)."""
        with self._lock:
            self.summary.succeeded.append(record)

    def failed_inputs(self) -> set[str]:
        return {r["input"] for r in self.summary.failed}

    def finish(self) -> InferenceSummary:
        """Sort the records, write the summary JSON atomically and log the summary line."""
        summary = self.summary
        summary.seconds = time.perf_counter() - self._start
        summary.succeeded.sort(key=lambda r: _natural(r["input"]))
        summary.failed.sort(key=lambda r: _natural(r["input"]))
        data = summary.to_dict()
        if self.input_dir is not None:
            data = {"input_dir": self.input_dir, **data}
        write_json_atomic(self.summary_path, data)
        summary.summary_path = str(self.summary_path)
        self.finished = True
        (logger.warning if summary.failed else logger.info)(f"{summary.line()}; summary in {self.summary_path}")
        return summary
