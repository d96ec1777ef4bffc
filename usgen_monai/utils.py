"""Small shared helpers."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

__all__ = ["atomic_write"]


class atomic_write:
    """Context manager: yields a temporary path next to ``path`` (same suffixes, so libraries that pick the format
    from the extension still work) and moves it into place with ``os.replace`` on success, so readers never see a
    half-written file; on error the temporary file is removed and ``path`` is untouched. The temporary file is
    created by the writer itself, so it gets the usual permissions (umask), not a private temp-file mode.

    Args:
        path: final file path; its folder is created if needed.
        fsync: flush the file to disk before the rename (checkpoints: survive a power cut, not only a crash).

    Example::

        with atomic_write("out/img.png") as tmp:
            Image.fromarray(a).save(tmp)
    """

    def __init__(self, path: str | os.PathLike, fsync: bool = False) -> None:
        self.path = Path(path)
        self.fsync = fsync

    def __enter__(self) -> Path:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        suffix = "".join(self.path.suffixes) or ".tmp"
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part{suffix}")
        return self.tmp

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            if self.fsync:
                with open(self.tmp, "rb+") as f:
                    os.fsync(f.fileno())
            os.replace(self.tmp, self.path)
        else:
            self.tmp.unlink(missing_ok=True)
        return False
