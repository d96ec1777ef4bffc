"""Library messages repeated on every file read are shown once per process (usgen_monai.data.library_messages);
warnings about the user's files are not."""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from pathlib import Path

from usgen_monai.data.library_messages import ONCE_PER_PROCESS, OncePerProcessFilter

REPO = Path(__file__).resolve().parents[2]


def test_once_per_process_filter_passes_the_first_match_of_each_pattern():
    logger = logging.getLogger("tests.once_per_process")
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    handler = Keep()
    logger.addHandler(handler)
    logger.addFilter(OncePerProcessFilter((r"plugin \d+ missing", r"copy attributes")))
    try:
        for i in range(3):
            logger.warning("plugin %d missing", i)
            logger.warning("copy attributes of module %r", f"M{i}")
            logger.warning("file case_%d.png: values out of range", i)  # about the data: every time
    finally:
        logger.removeHandler(handler)
    assert records == [
        "plugin 0 missing",
        "copy attributes of module 'M0'",
        "file case_0.png: values out of range",
        "file case_1.png: values out of range",
        "file case_2.png: values out of range",
    ]
    assert all(source and pattern for source, pattern in ONCE_PER_PROCESS)


def test_ten_file_reads_log_the_library_messages_once(tmp_path):
    """Reads 10 PNGs (read_grey_image), 10 DICOM files (a LoadImage per file, as a user's loop would, and
    read_context_image) and writes 3 DICOM SEGs, in a fresh process logging at INFO; counts the lines."""
    script = textwrap.dedent(
        f"""
        import logging, warnings
        import numpy as np
        from PIL import Image
        logging.basicConfig(level=logging.INFO)
        from tests.dicom_factory import OVERFLOW_REGIONS, bmode_frames, write_image
        from usgen_monai.data import SaveDicomSeg, UltrasoundDicomReader
        from usgen_monai.data.image_files import read_context_image, read_grey_image
        from monai.transforms import LoadImage

        root = {str(tmp_path)!r}
        for i in range(10):
            Image.fromarray(np.full((20, 20), 10 * i, np.uint8)).save(f"{{root}}/{{i}}.png")
            read_grey_image(f"{{root}}/{{i}}.png", (8, 8))
        paths = [write_image(f"{{root}}/c{{i}}.dcm", bmode_frames(seed=i)) for i in range(8)]
        for i in range(2):
            paths.append(write_image(f"{{root}}/overflow{{i}}.dcm", bmode_frames(), regions=OVERFLOW_REGIONS))
        for p in paths:
            LoadImage(reader=UltrasoundDicomReader(), image_only=True)(p)
            read_context_image(p, (8, 8))
        seg = SaveDicomSeg(output_dir=root, label_classes={{1: "lesion"}})
        for p in paths[:3]:
            mask = np.zeros((1, 64, 48)); mask[0, 10:20, 10:20] = 1
            seg.write(mask, source=p)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stderr.splitlines()
    assert sum("nvImageCodec is not available" in line for line in lines) <= 1
    assert sum("NvImgCodecPydicomReader: nvImageCodec decoder plugin did not register" in line for line in lines) <= 1
    assert sum("highdicom" in line and "copy " in line for line in lines) <= 2  # module lines once, dataset lines once
    # the warnings about the user's files still come for every file
    for i in range(2):
        assert any(f"overflow{i}.dcm: ultrasound region 0" in line and "clipped" in line for line in lines), i
    assert len(lines) < 40, "\n".join(lines)
