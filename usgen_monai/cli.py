"""The ``usgen-monai`` command line (also ``python -m usgen_monai``).

Subcommands are registered in :data:`SUBCOMMANDS`; adding one takes a function that adds its arguments to an
:py:class:`argparse.ArgumentParser` and a function that runs it::

    def _add_train_arguments(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--config", required=True)

    def _run_train(args: argparse.Namespace) -> int:
        ...
        return 0

    register_subcommand("train", "train a bundle", _add_train_arguments, _run_train)

Run functions import what they need themselves, so ``usgen-monai --help`` stays fast. Errors in the arguments
(a :py:class:`CommandError` raised by a run function, or argparse's own checks) print
``usgen-monai <command>: error: ...`` and exit with status 2; other exceptions propagate with their traceback.

``simulate``::

    usgen-monai simulate --preset breast --num 100 --out DIR --layout busi|hc18|monai --size 256 --seed 0
                         [--difficulty 1.0] [--finding benign] [--split 0.7,0.15,0.15] [--overwrite] [--quiet]

writes a simulated data set (see :py:mod:`usgen_monai.data.layouts`), shows a progress bar on stderr and prints a
one-line summary on stdout. ``--size`` takes ``256`` or ``HEIGHTxWIDTH`` (``256x192``: 256 rows of depth, 192
columns). ``--layout hc18`` is meant for ``--preset fetal_head``; with another preset it writes the outline of that
preset's mask, leaves the head-circumference column empty and warns on stderr.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "CommandError",
    "SUBCOMMANDS",
    "Subcommand",
    "build_parser",
    "main",
    "parse_fractions",
    "parse_size",
    "register_subcommand",
]

PROG = "usgen-monai"


class CommandError(ValueError):
    """Bad command-line arguments found by a run function; :py:func:`main` reports it as a usage error (status 2)."""


@dataclass(frozen=True)
class Subcommand:
    """A subcommand: its name, one-line help, a function adding its arguments and one running it (-> exit code)."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None


SUBCOMMANDS: dict[str, Subcommand] = {}


def register_subcommand(
    name: str,
    help: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    description: str | None = None,
) -> Subcommand:
    """Add a subcommand to :data:`SUBCOMMANDS`.

    Raises:
        ValueError: when ``name`` is already registered.
    """
    if name in SUBCOMMANDS:
        raise ValueError(f"subcommand {name!r} is already registered.")
    SUBCOMMANDS[name] = Subcommand(name, help, add_arguments, run, description)
    return SUBCOMMANDS[name]


def parse_size(text: str) -> tuple[int, int]:
    """``"256"`` -> (256, 256); ``"256x192"`` -> (256, 192), as (height, width).

    Raises:
        argparse.ArgumentTypeError: for anything else, or sizes below 1.
    """
    match = re.fullmatch(r"\s*(\d+)\s*(?:[xX]\s*(\d+)\s*)?", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size must be N or HEIGHTxWIDTH (e.g. 256 or 256x192), got {text!r}")
    height = int(match[1])
    width = int(match[2]) if match[2] is not None else height
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return height, width


def parse_fractions(text: str) -> tuple[float, ...]:
    """``"0.7,0.15,0.15"`` -> (0.7, 0.15, 0.15); 1 to 3 non-negative numbers summing to 1.

    Raises:
        argparse.ArgumentTypeError: for anything else.
    """
    try:
        fractions = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"split must be comma-separated fractions, e.g. 0.7,0.15,0.15, got {text!r}")
    if not 1 <= len(fractions) <= 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(
            f"split takes 1 to 3 non-negative fractions (training,validation,test) summing to 1, got {text!r}"
        )
    return fractions


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


# ----------------------------------------------------------------------------------------------------------------
# simulate

# kept here (not imported from the simulator) so that building the parser stays cheap; a test checks they agree
_PRESETS = ("breast", "fetal_head", "msk")
_LAYOUTS = ("busi", "hc18", "monai")


def _add_simulate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", choices=_PRESETS, default="breast", help="simulator preset (default: breast)")
    parser.add_argument("--num", type=_positive_int, default=100, help="number of images (default: 100)")
    parser.add_argument("--out", required=True, help="output folder; created, must be empty unless --overwrite")
    parser.add_argument(
        "--layout",
        choices=_LAYOUTS,
        default="busi",
        help="busi: <finding>/<finding> (n).png + _mask.png (0/255); hc18: training_set/NNN_HC.png + "
        "NNN_HC_Annotation.png outline (0/255) + pixel-size CSV; monai: images/, labels/ (0/1), "
        "labels_multiclass/, datalist.json (default: busi)",
    )
    parser.add_argument(
        "--size", type=parse_size, default=(256, 256), help="N or HEIGHTxWIDTH in pixels, e.g. 256x192 (default: 256)"
    )
    parser.add_argument("--seed", type=_non_negative_int, default=0, help="data-set seed (default: 0)")
    parser.add_argument(
        "--difficulty", type=float, default=1.0, help="confounder scale; 0 gives clean images (default: 1.0)"
    )
    parser.add_argument("--finding", default=None, help="one finding for all images (default: drawn per image)")
    parser.add_argument(
        "--split",
        type=parse_fractions,
        default=None,
        help="monai layout only: training,validation,test fractions of datalist.json (default: 0.7,0.15,0.15)",
    )
    parser.add_argument("--overwrite", action="store_true", help="write into a non-empty --out folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_simulate(args: argparse.Namespace) -> int:
    from usgen_monai.data.layouts import check_simulation_arguments, simulate_dataset

    if args.difficulty < 0:
        raise CommandError(f"--difficulty must be >= 0, got {args.difficulty}")
    settings = dict(
        out_dir=args.out,
        preset=args.preset,
        num=args.num,
        layout=args.layout,
        size=args.size,
        seed=args.seed,
        difficulty=args.difficulty,
        finding=args.finding,
        split=args.split,
        overwrite=args.overwrite,
    )
    try:
        check_simulation_arguments(**settings)
    except ValueError as e:
        raise CommandError(str(e)) from e
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        summary = simulate_dataset(**settings, progress=not args.quiet, command=args.command_line)
    for warning in caught:
        print(f"{PROG} simulate: warning: {warning.message}", file=sys.stderr)
    print(summary.line())
    return 0


register_subcommand(
    "simulate",
    "write a simulated ultrasound data set in the BUSI, HC18 or MONAI layout",
    _add_simulate_arguments,
    _run_simulate,
    description="Simulate B-mode ultrasound images with their masks and write them in a data-set layout. "
    "Every image is flagged synthetic in the data set's dataset.json manifest.",
)


def _add_study_arguments(parser: argparse.ArgumentParser) -> None:
    from usgen_monai.study.command import add_study_arguments

    add_study_arguments(parser)


def _run_study(args: argparse.Namespace) -> int:
    from usgen_monai.study.command import run_study_command

    return run_study_command(args)


register_subcommand(
    "study",
    "measure whether synthetic data helps segmentation: resumable study with a report",
    _add_study_arguments,
    _run_study,
    description="Split the data once (test held out from everything), train the bundles through their own configs "
    "on few labelled pairs with and without synthetic data, and write OUT/report.md, OUT/results.json and figures. "
    "Run the same command again to resume.",
)


# ----------------------------------------------------------------------------------------------------------------
# deploy (the MONAI Deploy app runs in its own virtualenv: nothing of the SDK is imported here)


def _add_deploy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", help="folder of ultrasound DICOM files (searched recursively)")
    parser.add_argument("--output", help="folder for the DICOM SEG files and inference_summary.json")
    parser.add_argument("--bundle", default=None, help="the segmentation bundle folder (default: bundles/mgcc)")
    parser.add_argument(
        "--venv",
        default=None,
        help="the deploy virtualenv (default: $USGEN_DEPLOY_VENV, else .venv-deploy at the repository root)",
    )
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda:0 (default: the bundle's)")
    parser.add_argument(
        "--setup", action="store_true", help="build the deploy virtualenv (monai-deploy-app-sdk) first; idempotent"
    )


def _run_deploy(args: argparse.Namespace) -> int:
    from pathlib import Path

    from usgen_monai.deploy.environment import (
        DeployEnvironmentError,
        default_bundle,
        find_deploy_venv,
        launch_app,
        setup_deploy_venv,
    )

    if args.setup:
        try:
            setup_deploy_venv(args.venv or None, log=lambda m: print(f"{PROG} deploy: {m}", file=sys.stderr))
        except DeployEnvironmentError as e:
            print(f"{PROG} deploy: error: {e}", file=sys.stderr)
            return 1
        if not args.input and not args.output:
            return 0
    if not args.input or not args.output:
        raise CommandError("--input and --output are required (or --setup alone to build the deploy virtualenv)")
    if not Path(args.input).is_dir():
        raise CommandError(
            f"--input {args.input} is not a folder" + ("" if Path(args.input).exists() else " (it does not exist)")
        )
    bundle = Path(args.bundle) if args.bundle else default_bundle()
    if not (bundle / "configs" / "inference.json").is_file():
        raise CommandError(f"--bundle {bundle} is not a bundle folder (no configs/inference.json)")
    try:
        venv, _ = find_deploy_venv(args.venv)
    except DeployEnvironmentError as e:
        raise CommandError(str(e)) from e
    app_args = ["--input", str(Path(args.input).resolve()), "--output", str(Path(args.output).resolve())]
    app_args += ["--bundle", str(bundle.resolve())] + (["--device", args.device] if args.device else [])
    return launch_app(venv, app_args)


register_subcommand(
    "deploy",
    "segment a folder of ultrasound DICOM with the MGCC bundle and write DICOM SEG (MONAI Deploy app)",
    _add_deploy_arguments,
    _run_deploy,
    description="Run the MONAI Deploy application (usgen_monai/deploy) on a DICOM folder: every ultrasound image "
    "or cine is segmented by the bundle and written as a DICOM SEG that references it; unreadable and "
    "non-ultrasound files are reported and skipped (inference_summary.json). The app runs in the deploy "
    f"virtualenv; build it once with '{PROG} deploy --setup'.",
)


# ----------------------------------------------------------------------------------------------------------------
# label (the MONAI Label server runs in its own virtualenv: nothing of MONAI Label is imported here)


def _add_label_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--studies", help="folder of PNG / JPEG / NIfTI / ultrasound DICOM studies to annotate")
    parser.add_argument("--port", type=_positive_int, default=8000, help="port on 127.0.0.1 (default 8000)")
    parser.add_argument(
        "--venv",
        default=None,
        help="the MONAI Label virtualenv (default: $USGEN_LABEL_VENV, else .venv-label at the repository root)",
    )
    parser.add_argument(
        "--setup", action="store_true", help="build the MONAI Label virtualenv (monailabel 0.8.5) first; idempotent"
    )
    parser.add_argument(
        "--work", default=None, help="folder for the app, retrained weights and train runs (default <studies>/.usgen-label)"
    )
    parser.add_argument(
        "--conf",
        nargs=2,
        action="append",
        default=[],
        metavar=("KEY", "VALUE"),
        help="an app setting, e.g. --conf mgcc_bundle DIR (see usgen_monai/label/README.md); repeatable",
    )
    parser.add_argument(
        "--threads",
        type=_positive_int,
        default=1,
        help="torch / OpenMP threads of the server (default 1: on a shared 2-core machine one thread answers "
        "several times faster than two; train tasks use one each)",
    )
    parser.add_argument("--dry-run", action="store_true", help="set up the app and print the server command only")


def _run_label(args: argparse.Namespace) -> int:
    from usgen_monai.label.environment import (
        LabelEnvironmentError,
        find_label_venv,
        launch_server,
        setup_label_venv,
    )

    if args.setup:
        try:
            setup_label_venv(args.venv or None, log=lambda m: print(f"{PROG} label: {m}", file=sys.stderr))
        except LabelEnvironmentError as e:
            print(f"{PROG} label: error: {e}", file=sys.stderr)
            return 1
        if not args.studies:
            return 0
    if not args.studies:
        raise CommandError("--studies is required (or --setup alone to build the MONAI Label virtualenv)")
    try:
        venv, _ = find_label_venv(args.venv)
        return launch_server(
            venv,
            args.studies,
            port=args.port,
            conf=dict(args.conf),
            work_dir=args.work,
            threads=args.threads,
            dry_run=args.dry_run,
            log=lambda m: print(f"{PROG} label: {m}", file=sys.stderr),
        )
    except LabelEnvironmentError as e:
        raise CommandError(str(e)) from e


register_subcommand(
    "label",
    "serve the MGCC and SAM bundles to MONAI Label clients for 2D ultrasound annotation (127.0.0.1)",
    _add_label_arguments,
    _run_label,
    description="Start a MONAI Label server (usgen_monai/label) over a folder of ultrasound studies: automatic "
    "segmentation with the MGCC bundle (/infer/mgcc), box and click segmentation with the SAM bundle (/infer/sam), "
    "labels saved as PNG/NIfTI (and DICOM SEG for DICOM studies), retraining with /train/mgcc and /train/sam. The "
    f"server runs in the MONAI Label virtualenv; build it once with '{PROG} label --setup'.",
)


# ----------------------------------------------------------------------------------------------------------------
# entry point


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one sub-parser per entry of :data:`SUBCOMMANDS`."""
    import usgen_monai

    parser = argparse.ArgumentParser(
        prog=PROG, description="Synthetic ultrasound data and MONAI bundles that learn from it."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {usgen_monai.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for sub in SUBCOMMANDS.values():
        sub_parser = subparsers.add_parser(sub.name, help=sub.help, description=sub.description or sub.help)
        sub.add_arguments(sub_parser)
        sub_parser.set_defaults(_subcommand=sub, _parser=sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (the console script ``usgen-monai`` exits with it).

    Args:
        argv: arguments without the program name; default ``sys.argv[1:]``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with status 2 on bad arguments, 0 for --help
    args.command_line = shlex.join([PROG, *argv])
    try:
        return int(args._subcommand.run(args) or 0)
    except CommandError as e:
        args._parser.error(str(e))  # prints usage + "usgen-monai <command>: error: ..." and exits with status 2
    return 2  # not reached: error() exits
