"""``python -m usgen_monai study``: the whole comparison in one resumable command.

::

    python -m usgen_monai study --out OUT [--dataset-dir DIR --layout auto --anatomy breast] [--quick]
                                [--labeled-sizes 8,16,32] [--seeds 0,1,2] [--arms unet,supervised,...]
                                [--device cpu] [--num-threads 1]

splits the data once (``OUT/split.json``), runs every cell (``OUT/cells/<anatomy>/n<N>/seed<s>/<arm>/``: logs,
weights, ``result.json``; a cell that has one is not run again, a failed one leaves ``error.json`` and is retried
by the next run) and writes ``OUT/report.md``, ``OUT/results.json`` and the figures. Interrupt it at any point and
run the same command again to go on.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_study_arguments", "run_study", "run_study_command"]


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None
    if not values or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated non-negative integers, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in text.split(",") if v.strip())


def add_study_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``study`` subcommand's arguments."""
    parser.add_argument("--out", required=True, help="output folder (created; a second run resumes it)")
    parser.add_argument("--dataset-dir", default=None, help="a labelled data set (default: the built-in simulator)")
    parser.add_argument("--layout", default="auto", help="layout of --dataset-dir (default: detected)")
    parser.add_argument(
        "--anatomy", type=_names, default=None,
        help="simulator presets to study, comma-separated (default: breast,fetal_head); with --dataset-dir the one "
        "preset the data set is (e.g. breast for BUSI, fetal_head for HC18)",
    )
    parser.add_argument("--quick", action="store_true", help="the quick study (about 30 minutes on 2 CPU cores)")
    parser.add_argument("--labeled-sizes", type=_int_list, default=None, help="labelled-set sizes, e.g. 8,16,32")
    parser.add_argument("--seeds", type=_int_list, default=None, help="seeds, e.g. 0,1,2")
    parser.add_argument("--arms", type=_names, default=None, help="arms to run (default: all)")
    parser.add_argument("--image-size", type=int, default=None, help="input side of the MGCC arms")
    parser.add_argument("--simulator-image-size", type=int, default=None, help="side of the simulated images")
    parser.add_argument("--segmenter-iterations", type=int, default=None, help="labelled batches per segmenter")
    parser.add_argument("--generator-iterations", type=int, default=None, help="ControlNet iterations per generator")
    parser.add_argument("--num-synthetic", type=int, default=None, help="synthetic pairs per generator")
    parser.add_argument("--num-test", type=int, default=None, help="simulator test images per anatomy")
    parser.add_argument("--num-labeled-pool", type=int, default=None, help="simulator labelled-pool images")
    parser.add_argument("--num-unlabeled-pool", type=int, default=None, help="simulator unlabelled-pool images")
    parser.add_argument("--device", default="", help="device of every bundle run (default: each bundle's own)")
    parser.add_argument("--num-threads", type=int, default=1, help="OMP_NUM_THREADS of each bundle run")
    parser.add_argument(
        "--workers", type=int, default=None,
        help="cells run in this many processes at once (default: 2 with --quick, else 1)",
    )
    parser.add_argument(
        "--nproc-per-node", type=int, default=None,
        help="run each segmenter training under torchrun with this many processes (GPUs; with --no-in-process)",
    )
    parser.add_argument("--no-in-process", dest="in_process", action="store_false", default=None,
                        help="one process per bundle run (the default without --quick)")
    parser.add_argument("--segmenter-optimizer", choices=("adam", "sgd"), default=None,
                        help="optimizer of the MGCC bundle arms (default adam)")
    parser.add_argument("--segmenter-learning-rate", type=float, default=None, help="their Adam learning rate")
    parser.add_argument("--sam-learning-rate", type=float, default=None, help="the SAM arms' learning rate")
    parser.add_argument("--sam-architecture", default=None, help="the SAM arms' configuration (small, tiny)")
    parser.add_argument(
        "--sam-checkpoint", default=None,
        help="a checkpoint of that configuration the SAM arms fine-tune (default: trained from scratch)",
    )
    parser.add_argument(
        "--sam-train-mode", choices=("auto", "decoder", "full"), default=None,
        help="what the SAM arms train (auto: the mask decoder of a --sam-checkpoint, everything from scratch)",
    )
    parser.add_argument(
        "--sam-synthetic-fraction", type=float, default=None,
        help="share of each batch the sam_csg arm draws from synthetic pairs (default 0.5)",
    )
    parser.add_argument("--bundles-dir", default=None, help="folder holding the bundles (default: the repository's)")
    parser.add_argument(
        "--in-process", action="store_true", default=None,
        help="run the bundles in this process (faster start-up; default: one process per bundle run)",
    )


def _settings(args: argparse.Namespace) -> Any:
    from usgen_monai.study.protocol import StudySettings

    changes = {
        "anatomies": args.anatomy,
        "labeled_sizes": args.labeled_sizes,
        "seeds": args.seeds,
        "arms": args.arms,
        "image_size": args.image_size,
        "simulator_image_size": args.simulator_image_size,
        "segmenter_iterations": args.segmenter_iterations,
        "generator_iterations": args.generator_iterations,
        "num_synthetic": args.num_synthetic,
        "num_test": args.num_test,
        "num_labeled_pool": args.num_labeled_pool,
        "num_unlabeled_pool": args.num_unlabeled_pool,
        "device": args.device,
        "num_threads": args.num_threads,
        "in_process": args.in_process,
        "workers": args.workers,
        "nproc_per_node": args.nproc_per_node,
        "segmenter_optimizer": args.segmenter_optimizer,
        "segmenter_learning_rate": args.segmenter_learning_rate,
        "sam_learning_rate": args.sam_learning_rate,
        "sam_architecture": args.sam_architecture,
        "sam_checkpoint": args.sam_checkpoint,
        "sam_train_mode": args.sam_train_mode,
        "sam_synthetic_fraction": args.sam_synthetic_fraction,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.dataset_dir and "anatomies" not in changes:
        raise ValueError("--dataset-dir needs --anatomy: the one preset the data set is (breast for BUSI).")
    return StudySettings.quick(**changes) if args.quick else StudySettings.full(**changes)


def _check_device(device: str) -> None:
    """Refuse a ``--device`` this machine cannot run, before any cell: every bundle run would fail on it."""
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"--device {device!r} is not a device torch knows ({error}); e.g. cpu or cuda:0.") from None
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device}: no CUDA device on this machine (torch.cuda.is_available() is False).")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise ValueError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s).")


def run_study(
    out: str | Path,
    settings: Any,
    dataset_dir: str | Path | None = None,
    layout: str = "auto",
    bundles_dir: str | Path | None = None,
    command: str = "",
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a study and write its report; returns the results document of
    :py:func:`usgen_monai.study.report.write_report`.

    Raises:
        ValueError: unknown arms, or the errors of :py:func:`usgen_monai.study.protocol.prepare_study_data`.
    """
    from tqdm import tqdm

    from usgen_monai.study.arms import ARMS, GENERATOR_ARM, StudyContext, default_bundles_dir, run_arm
    from usgen_monai.study.protocol import prepare_study_data
    from usgen_monai.study.quality import QUALITY_ARM
    from usgen_monai.study.report import write_report
    from usgen_monai.study.runner import Cell

    from usgen_monai.networks.sam import SAM_ARCHITECTURES

    # settings every cell would trip over, refused before hours of generator training
    if any(ARMS[a][0] == "sam" for a in settings.arms if a in ARMS) and settings.sam_architecture not in SAM_ARCHITECTURES:
        raise ValueError(f"unknown SAM architecture {settings.sam_architecture!r}; one of {sorted(SAM_ARCHITECTURES)}.")
    if settings.sam_checkpoint and not Path(settings.sam_checkpoint).is_file():
        raise ValueError(f"--sam-checkpoint {settings.sam_checkpoint}: no such file.")
    if settings.sam_train_mode not in ("auto", "decoder", "full"):
        raise ValueError(f"sam_train_mode must be 'auto', 'decoder' or 'full', got {settings.sam_train_mode!r}.")
    if not 0.0 < settings.sam_synthetic_fraction < 1.0:
        raise ValueError(f"sam_synthetic_fraction must lie between 0 and 1, got {settings.sam_synthetic_fraction}.")
    if settings.segmenter_optimizer not in ("adam", "sgd"):
        raise ValueError(f"segmenter_optimizer must be 'adam' or 'sgd', got {settings.segmenter_optimizer!r}.")
    if settings.nproc_per_node > 1 and settings.in_process:
        raise ValueError("--nproc-per-node launches torchrun, which needs one process per bundle run (--no-in-process).")
    if settings.device:
        _check_device(settings.device)
    unknown = [a for a in settings.arms if a not in ARMS]
    if unknown:
        raise ValueError(f"unknown arm(s) {unknown}; arms are {sorted(ARMS)}.")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    finished_before = _finished_results(out)
    data = prepare_study_data(out, settings, dataset_dir=dataset_dir, layout=layout)
    context = StudyContext(out, settings, data, Path(bundles_dir) if bundles_dir else default_bundles_dir())
    cells = [
        Cell(anatomy, n, seed, arm)
        for anatomy in settings.anatomies
        for n in settings.labeled_sizes
        for seed in settings.seeds
        for arm in settings.arms
    ]
    if settings.workers > 1:
        results = _run_cells_in_workers(context, cells, settings.workers, progress)
    else:
        by_cell: dict[Any, dict[str, Any]] = {}
        bar = tqdm(total=len(cells), desc="study cells", unit="cell", disable=not progress)
        for group in _cell_groups(cells).values():
            by_cell.update(zip(group, _run_cell_group(context, group, on_cell=lambda c: bar.update())))
        bar.close()
        results = [by_cell[cell] for cell in cells]
    generators, qualities = [], []
    for anatomy in settings.anatomies:
        for n in settings.labeled_sizes:
            for seed in settings.seeds:
                for arm, found in ((GENERATOR_ARM, generators), (QUALITY_ARM, qualities)):
                    result = Cell(anatomy, n, seed, arm).folder(out) / "result.json"
                    error = result.with_name("error.json")
                    if result.is_file():
                        found.append(json.loads(result.read_text(encoding="utf-8")))
                    elif error.is_file():
                        found.append(json.loads(error.read_text(encoding="utf-8")))
    runs = _record_run(out, started, time.perf_counter() - start, _finished_results(out) - finished_before, command)
    machine = f"{platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}"
    machine += f", {os.cpu_count()} logical CPUs, device {settings.device or 'each bundle default'}"
    return write_report(
        out,
        results,
        settings.to_dict(),
        {name: part.source for name, part in data.items()},
        {arm: ARMS[arm][1] for arm in settings.arms},
        generators=generators,
        qualities=qualities,
        runs=runs,
        speed_benchmark=context.bundles_dir.parent / "benchmarks" / "results" / "csg_sampling.json",
        command=command,
        machine=machine,
    )


def _start_worker(num_threads: int) -> None:
    os.environ["OMP_NUM_THREADS"] = str(num_threads)
    import torch

    torch.set_num_threads(num_threads)


def _finished_results(out: Path) -> int:
    return sum(1 for _ in (out / "cells").glob("*/*/*/*/result.json"))


def _record_run(out: Path, started: str, seconds: float, computed: int, command: str) -> list[dict[str, Any]]:
    """Append this run to ``out/runs.json`` (each run of a resumed study: when, how long, how many results it
    computed) and return them all."""
    from usgen_monai.utils import write_json_atomic

    path = out / "runs.json"
    runs = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []
    runs.append({"started": started, "wall_seconds": round(seconds, 1), "results_computed": computed,
                 "command": command, "cpus": os.cpu_count()})  # fmt: skip
    write_json_atomic(path, runs)
    return runs


def _cell_groups(cells: list[Any]) -> dict[tuple[str, int, int], list[Any]]:
    """The cells of one anatomy, N and seed: they share one generator, whose quality is measured after them."""
    groups: dict[tuple[str, int, int], list[Any]] = {}
    for cell in cells:
        groups.setdefault((cell.anatomy, cell.num_labeled, cell.seed), []).append(cell)
    return groups


def _run_cell_group(context: Any, cells: list[Any], on_cell: Any = None) -> list[dict[str, Any]]:
    from usgen_monai.study.arms import run_arm, run_quality

    results = []
    for cell in cells:
        results.append(run_arm(context, cell))
        if on_cell is not None:
            on_cell(cell)
    try:
        run_quality(context, cells[0].anatomy, cells[0].num_labeled, cells[0].seed)
    except Exception as e:  # noqa: BLE001 - generator_quality keeps its own error.json; never lose the arms
        print(f"study: generator quality of {cells[0].name} failed: {e}", file=sys.stderr)
    return results


def _run_cells_in_workers(context: Any, cells: list[Any], workers: int, progress: bool) -> list[dict[str, Any]]:
    """Run ``cells`` in ``workers`` processes; the cells of one anatomy, N and seed (one generator) share a worker,
    the groups of larger N start first (they take longest)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm import tqdm

    groups = _cell_groups(cells)
    order = sorted(groups, key=lambda key: -key[1])
    by_cell: dict[Any, dict[str, Any]] = {}
    bar = tqdm(total=len(cells), desc=f"study cells ({workers} workers)", unit="cell", disable=not progress)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),  # no fork of a process holding torch's thread pools
        initializer=_start_worker,
        initargs=(context.settings.num_threads,),
    ) as pool:
        futures = {pool.submit(_run_cell_group, context, groups[key]): key for key in order}
        for future in as_completed(futures):
            key = futures[future]
            group = groups[key]
            try:
                group_results = future.result()
            except Exception as e:  # noqa: BLE001 - a worker that died takes only its group's cells
                group_results = [{**c.to_dict(), "error": f"worker failed: {type(e).__name__}: {e}"} for c in group]
            by_cell.update(zip(group, group_results))
            bar.update(len(group))
            bar.set_postfix_str(f"{key[0]}/n{key[1]:03d}/seed{key[2]} done")
    bar.close()
    return [by_cell[cell] for cell in cells]


def run_study_command(args: argparse.Namespace) -> int:
    """The ``study`` subcommand: run it, print where the report is and how many cells failed (exit 1 if any)."""
    from usgen_monai.cli import CommandError

    try:
        settings = _settings(args)
    except ValueError as e:
        raise CommandError(str(e)) from None
    command = getattr(args, "command_line", "") or "usgen-monai study " + shlex.join(sys.argv[1:])
    try:
        document = run_study(
            args.out, settings, dataset_dir=args.dataset_dir, layout=args.layout, bundles_dir=args.bundles_dir,
            command=command,
        )
    except (ValueError, FileNotFoundError) as e:  # the data set or the settings; a failing cell is caught per cell
        raise CommandError(str(e)) from None
    failed = document["failures"]
    print(
        f"study: {len(document['cells'])} cell(s), {len(failed)} failed; report {Path(args.out) / 'report.md'}",
        file=sys.stdout,
    )
    for f in failed:
        print(f"  failed: {f['anatomy']} N={f['num_labeled']} seed {f['seed']} {f['arm']}: {f['error'].splitlines()[0]}")
    return 1 if failed else 0

