"""``python -m usgen_monai.deploy``: run the MONAI Deploy app (:py:mod:`usgen_monai.deploy.app`) in the deploy
virtualenv::

    python -m usgen_monai.deploy --input DICOM_DIR --output OUT [--bundle bundles/mgcc] [--device cpu]

Inside a MONAI Application Package the paths default to ``HOLOSCAN_INPUT_PATH``, ``HOLOSCAN_OUTPUT_PATH`` and
``HOLOSCAN_MODEL_PATH`` (the bundle folder, or a folder holding one bundle), as the SDK's apps read them. The
arguments and the folders are checked before torch, MONAI and the SDK are imported, so mistakes are reported at
once. Exit status: 0 when at least one file was segmented (the failures are in the summary), 1 when none was, 2 for
bad arguments or a bundle that cannot be loaded.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from usgen_monai.deploy.environment import default_bundle, find_bundle

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m usgen_monai.deploy",
        description="MONAI Deploy app: ultrasound DICOM folder -> bundle segmentation -> DICOM SEG.",
    )
    parser.add_argument(
        "--input", "-i", default=env.get("HOLOSCAN_INPUT_PATH"), help="DICOM folder ($HOLOSCAN_INPUT_PATH)"
    )
    parser.add_argument(
        "--output", "-o", default=env.get("HOLOSCAN_OUTPUT_PATH"), help="output folder ($HOLOSCAN_OUTPUT_PATH)"
    )
    parser.add_argument(
        "--bundle", "--model", "-m", dest="bundle", default=env.get("HOLOSCAN_MODEL_PATH") or str(default_bundle()),
        help="bundle folder, or a folder holding one ($HOLOSCAN_MODEL_PATH; default: the repository's bundles/mgcc)",
    )  # fmt: skip
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: the bundle's)")
    parser.add_argument("--num-threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--log-level", "-l", default="INFO", type=str.upper, help="logging level (default: INFO)")
    return parser


def _quiet_start_up() -> None:
    # Holoscan's C++ logger reads this when the SDK is imported: keep its start-up chatter out of the run's log
    os.environ.setdefault("HOLOSCAN_LOG_LEVEL", "WARN")
    # with CuPy installed (an SDK dependency) MONAI looks for NVIDIA's nvImageCodec and says on every start that it is
    # missing; the app decodes with pydicom's decoders, as the bundle does
    logging.getLogger("monai.data.nvimgcodec_pydicom_plugin").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="NvImgCodecPydicomReader", category=UserWarning)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the app; returns the exit status (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    level = getattr(logging, args.log_level, None)
    if not isinstance(level, int):
        parser.error(f"--log-level must be DEBUG, INFO, WARNING or ERROR, got {args.log_level!r}")
    for name in ("input", "output"):
        if not getattr(args, name):
            parser.error(f"--{name} is required (or set HOLOSCAN_{name.upper()}_PATH)")
    input_folder = Path(args.input)
    if not input_folder.is_dir():
        parser.error(
            f"--input {input_folder} is not a folder" + ("" if input_folder.exists() else " (it does not exist)")
        )
    if not any(p.is_file() and not p.name.startswith(".") for p in input_folder.rglob("*")):
        parser.error(f"--input {input_folder} holds no files")
    try:
        bundle = find_bundle(args.bundle)
    except ValueError as e:
        parser.error(str(e))
    # the SDK's operators log every selection step on the root logger: the root stays at WARNING unless DEBUG is asked
    logging.basicConfig(
        level=logging.DEBUG if level <= logging.DEBUG else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("usgen_monai").setLevel(level)
    _quiet_start_up()

    from usgen_monai.deploy.app import UltrasoundSegmentationApp
    from usgen_monai.engines.bundle_segmenter import BundleSegmenter

    try:
        segmenter = BundleSegmenter(bundle, device=args.device, num_threads=args.num_threads)
    except (ValueError, FileNotFoundError) as e:
        parser.error(str(e))
    app = UltrasoundSegmentationApp(
        [sys.argv[0]], input_folder=input_folder, output_folder=args.output, bundle=bundle, device=args.device,
        num_threads=args.num_threads,
    )  # fmt: skip
    app.segmenter = segmenter
    app.run()
    report = app.report
    if report is None or not report.finished:
        print("the app ended before writing its summary; see the log above", file=sys.stderr)
        return 1
    summary = report.summary
    print(f"{summary.line()}; DICOM SEG and {report.summary_path.name} in {report.output_dir}")
    return 0 if summary.succeeded else 1


if __name__ == "__main__":
    sys.exit(main())
