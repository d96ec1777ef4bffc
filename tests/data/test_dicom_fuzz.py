"""Fuzz the ultrasound DICOM reader: corrupted bytes and truncated files give clear errors (or a decoded image), never
another exception type and never a hang. Fixed seeds, bounded time."""

from __future__ import annotations

import signal
import time
import warnings

import numpy as np
import pytest

from tests.dicom_factory import build_variant
from usgen_monai.data.dicom_reader import UltrasoundDicomError, UltrasoundDicomReader

BASES = ["mono2_explicit", "mono2_rle", "mono2_j2k_lossless", "mono2_deflate", "ybr_full_422_jpeg_multiframe_overflow"]
PER_FILE_SECONDS = 10  # a hang is a failure
TOTAL_SECONDS = 60


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def mutations(data: bytes, seed: int):
    """(label, bytes) pairs: truncations, random byte flips, and flips concentrated in the header (lengths, VRs)."""
    rng = np.random.default_rng(seed)
    n = len(data)
    for cut in sorted(set(rng.integers(1, n, size=8).tolist()) | {132, 140, n - 1}):
        yield f"truncated at {cut}", data[:cut]
    for i in range(12):
        buf = bytearray(data)
        for pos in rng.integers(0, n, size=int(rng.integers(1, 9))):
            buf[pos] = int(rng.integers(0, 256))
        yield f"random flips #{i}", bytes(buf)
    header_end = min(n, 600)
    for i in range(10):
        buf = bytearray(data)
        for pos in rng.integers(128, header_end, size=int(rng.integers(1, 5))):
            buf[pos] = int(rng.integers(0, 256))
        yield f"header flips #{i}", bytes(buf)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("base", BASES)
def test_corrupted_and_truncated_files(base, seed, tmp_path):
    path, _ = build_variant(base, tmp_path)
    data = path.read_bytes()
    reader = UltrasoundDicomReader()
    target = tmp_path / "mutant.dcm"
    outcomes = {"decoded": 0, "clear error": 0}
    start = time.monotonic()
    previous = signal.signal(signal.SIGALRM, _alarm)
    try:
        for label, mutant in mutations(data, seed):
            target.write_bytes(mutant)
            signal.alarm(PER_FILE_SECONDS)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    arr, meta = reader.get_data(reader.read(target))
            except UltrasoundDicomError as e:
                assert str(e).startswith(f"{target}: ") and e.reason, f"{base} {label}: unclear error {e!r}"
                outcomes["clear error"] += 1
            except _Timeout:
                pytest.fail(f"{base} seed {seed} {label}: no answer within {PER_FILE_SECONDS} s")
            except Exception as e:  # noqa: BLE001 - the point of the test
                pytest.fail(f"{base} seed {seed} {label}: {type(e).__name__} instead of UltrasoundDicomError: {e}")
            else:
                assert arr.ndim in (2, 3) and arr.dtype == np.float32, f"{base} {label}: shape {arr.shape}"
                assert meta["filename_or_obj"] == str(target)
                outcomes["decoded"] += 1
            finally:
                signal.alarm(0)
    finally:
        signal.signal(signal.SIGALRM, previous)
    assert time.monotonic() - start < TOTAL_SECONDS
    # every truncation of the pixel data must be caught, so there is at least one error per file
    assert outcomes["clear error"] >= 8, outcomes


def test_truncation_anywhere_in_pixel_data_is_an_error(tmp_path):
    path, _ = build_variant("mono2_explicit", tmp_path)
    data = path.read_bytes()
    reader = UltrasoundDicomReader()
    target = tmp_path / "cut.dcm"
    for cut in range(len(data) - 3072 + 1, len(data), 97):  # inside the 64 x 48 x 8-bit pixel data
        target.write_bytes(data[:cut])
        with pytest.raises(UltrasoundDicomError, match="truncated"):
            reader.get_data(reader.read(target))
