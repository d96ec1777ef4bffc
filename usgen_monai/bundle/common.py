"""What every bundle's configs read: the bundle's version."""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = [
    "read_bundle_version",
]


def read_bundle_version(bundle_root: str | os.PathLike) -> str:
    """The ``version`` of ``<bundle_root>/configs/metadata.json``.

    Raises:
        ValueError: the file is missing, not JSON, or has no version, naming it.
    """
    path = Path(bundle_root) / "configs" / "metadata.json"
    try:
        version = json.loads(path.read_text(encoding="utf-8"))["version"]
    except FileNotFoundError:
        raise ValueError(f"bundle metadata {path} does not exist; is bundle_root={str(bundle_root)!r} right?") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"bundle metadata {path} has no readable version ({type(e).__name__}: {e}).") from None
    return str(version)
