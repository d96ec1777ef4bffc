"""Small helpers shared by the whole package: atomic file writing, JSON-safe values, 8-bit conversion and the device
of a module. Each exists once, here; modules import them instead of writing their own."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np

__all__ = [
    "as_flag",
    "atomic_write",
    "json_default",
    "json_safe",
    "module_device",
    "size_2d",
    "to_uint8",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


class atomic_write:  # noqa: N801 - a context manager used like a function, as contextlib's are
    """Context manager: yields a temporary path next to ``path`` (same suffixes, so libraries that pick the format
    from the extension still work) and moves it into place with ``os.replace`` on success, so readers never see a
    half-written file; on error the temporary file is removed and ``path`` is untouched. The temporary file is
    created by the writer itself, so it gets the usual permissions (umask), not a private temp-file mode.

    This is the one atomic file writer of the package: every image, label, DICOM, JSON and checkpoint file is
    written through it.

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


def write_bytes_atomic(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a new binary file that replaces ``path`` atomically once ``write`` returns."""
    with atomic_write(path) as tmp, open(tmp, "xb") as f:
        write(f)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 text atomically."""
    return write_bytes_atomic(path, lambda f: f.write(text.encode("utf-8")))


def json_default(value: Any) -> Any:
    """``default`` for :py:func:`json.dumps`: numpy and torch scalars become numbers, arrays and tensors lists, paths
    strings.

    Raises:
        TypeError: for any other type, naming it (silently writing ``repr`` would lose data unnoticed).
    """
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # torch tensors without importing torch
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable: {value!r}")


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON types (what writing it as JSON and reading it back gives); see
    :py:func:`json_default`."""
    return json.loads(json.dumps(value, default=json_default))


def write_json_atomic(path: str | os.PathLike, data: Any, indent: int | None = 2) -> Path:
    """Write ``data`` as JSON (a final newline) atomically; numpy/torch values are converted by
    :py:func:`json_default`."""
    return write_text_atomic(path, json.dumps(data, indent=indent, default=json_default) + "\n")


def to_uint8(image: Any) -> np.ndarray:
    """Map a float image in [0, 1] (numpy array or tensor) to uint8: ``round(255 * x)``, values outside [0, 1]
    clipped. The product is computed in float64 for float64 input and in float32 otherwise, so a file written from
    either is what that precision gives.

    Raises:
        ValueError: when ``image`` holds NaN or infinite values.
    """
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    image = image.astype(np.float64 if image.dtype == np.float64 else np.float32, copy=False)
    if not np.all(np.isfinite(image)):
        raise ValueError("image holds NaN or infinite values; cannot convert it to 8 bits.")
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def module_device(module: Any) -> Any:
    """The device of a module's first parameter (or buffer); CPU for a module without either."""
    import torch

    for tensor in module.parameters():
        return tensor.device
    for tensor in module.buffers():
        return tensor.device
    return torch.device("cpu")


def size_2d(size: Any, name: str = "image_size") -> tuple[int, int]:
    """``(H, W)`` from an int or a pair.

    Raises:
        ValueError: not two positive entries, naming the argument.
    """
    size = (int(size), int(size)) if np.isscalar(size) else tuple(int(s) for s in size)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"{name} must be (H, W) with positive entries, got {name}={size}.")
    return size


def as_flag(value: Any) -> bool:
    """A yes/no setting as a bool: ``True``/``False``, or the strings a command line gives (``"true"``, ``"false"``,
    ``"1"``, ``"0"``, ``"yes"``, ``"no"``, any case; MONAI's ``str2bool``). ``monai.bundle run --flag false`` passes
    the string ``"false"``, which ``bool()`` would take as true.

    Raises:
        ValueError: a string that is not one of those.
    """
    if isinstance(value, str):
        from monai.utils import str2bool

        try:
            return str2bool(value)
        except ValueError:
            raise ValueError(f"expected true or false, got {value!r}.") from None
    return bool(value)
