"""Library messages that would repeat on every file read or written, shown once per process instead.

Some libraries report the state of the machine each time a reader or writer is built or used, and a run reads or
writes thousands of files: MONAI's ``LoadImage`` builds every registered reader, and its ``NvImgCodecPydicomReader``
then logs ``nvImageCodec is not available; skipping pydicom decoder plugin registration.`` and warns that its
decoder plugin did not register; highdicom logs at INFO which attributes it copies into every DICOM SEG. They say
nothing about the data, so :py:func:`install_library_message_filters` lets the first of each through and drops the
repeats.

:py:data:`ONCE_PER_PROCESS` is the one list of what is filtered: each entry names the logger (or ``"warnings"``)
and a regular expression the message must match at its start. Nothing else is touched: warnings about the
user's files (pydicom's on invalid values, :py:class:`usgen_monai.data.UltrasoundRegionWarning` on clipped regions,
the package's "skipping FILE: reason" lines) reach the user every time.

The package also builds MONAI's ``LoadImage`` once per process where it reads file by file
(:py:func:`usgen_monai.data.image_files.load_2d`), so those messages are not even produced per file. The filters
are installed, idempotently, where the package builds readers and writers:
:py:class:`usgen_monai.data.UltrasoundDicomReader`, :py:func:`usgen_monai.data.image_files.load_2d`,
:py:func:`usgen_monai.data.datasets.load_transforms` and :py:class:`usgen_monai.data.SaveDicomSeg`. Call
:py:func:`install_library_message_filters` yourself to get the same in your own ``LoadImage`` pipelines.
"""

from __future__ import annotations

import logging
import re
import threading
import warnings
from collections.abc import Callable

__all__ = ["ONCE_PER_PROCESS", "OncePerProcessFilter", "install_library_message_filters"]

#: ``(logger name, or "warnings" for Python warnings, message start as a regular expression)`` of the library
#: messages shown once per process; each pattern lets its first match through
ONCE_PER_PROCESS: tuple[tuple[str, str], ...] = (
    ("monai.data.nvimgcodec_pydicom_plugin", r"nvImageCodec is not available"),
    ("warnings", r"NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register"),
    ("highdicom.base", r"copy (attributes of module|\S+-related attributes from dataset)"),
)


class OncePerProcessFilter(logging.Filter):
    """A ``logging.Filter`` that passes the first record matching each of ``patterns`` and drops later matches;
    records matching none pass.

    Args:
        patterns: regular expressions matched at the start of the formatted message.
    """

    def __init__(self, patterns: tuple[str, ...]) -> None:
        super().__init__()
        self.patterns = tuple(re.compile(p) for p in patterns)
        self._seen: set[int] = set()
        self._lock = threading.Lock()

    def allow(self, message: str) -> bool:
        """Whether ``message`` is shown: it matches no pattern, or is the first match of its pattern."""
        for index, pattern in enumerate(self.patterns):
            if pattern.match(message):
                with self._lock:
                    if index in self._seen:
                        return False
                    self._seen.add(index)
                return True
        return True

    def filter(self, record: logging.LogRecord) -> bool:
        return self.allow(record.getMessage())


_WARNINGS_GATE = OncePerProcessFilter(tuple(p for source, p in ONCE_PER_PROCESS if source == "warnings"))


def _gated(showwarning: Callable) -> Callable:
    """``warnings.showwarning`` that drops the repeats :py:data:`_WARNINGS_GATE` stops, then calls ``showwarning``."""

    def show(message, category, filename, lineno, file=None, line=None):
        if _WARNINGS_GATE.allow(str(message)):
            showwarning(message, category, filename, lineno, file, line)

    show.usgen_once_per_process = True  # type: ignore[attr-defined]
    return show


def install_library_message_filters() -> None:
    """Show each message of :py:data:`ONCE_PER_PROCESS` once per process (idempotent, cheap to call again).

    Logged messages get an :py:class:`OncePerProcessFilter` on their logger. Python warnings are gated where they are
    shown (``warnings.showwarning``, which Python lets programs replace), after the warning filters have decided, not
    by a ``"once"`` filter: Python forgets what ``"once"`` has shown whenever the filters change, and readers change
    them per file (``warnings.catch_warnings``), so a ``"once"`` filter would still repeat the message per file.
    Filters of your own (an ``"ignore"``, ``logging.captureWarnings``) keep working.
    """
    if not getattr(warnings.showwarning, "usgen_once_per_process", False):
        warnings.showwarning = _gated(warnings.showwarning)
    by_logger: dict[str, list[str]] = {}
    for source, pattern in ONCE_PER_PROCESS:
        if source != "warnings":
            by_logger.setdefault(source, []).append(pattern)
    for name, patterns in by_logger.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, OncePerProcessFilter) for f in logger.filters):
            logger.addFilter(OncePerProcessFilter(tuple(patterns)))
