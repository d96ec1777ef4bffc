"""The usgen-monai command line: argument parsing, errors, and round trips through the dataset readers."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from usgen_monai.cli import (
    SUBCOMMANDS,
    CommandError,
    build_parser,
    main,
    parse_fractions,
    parse_size,
    register_subcommand,
)
from usgen_monai.data.datasets import load_dataset, load_transforms
from usgen_monai.data.layouts import LAYOUTS, sample_seed
from usgen_monai.utils import to_uint8
from usgen_monai.data.simulator import PRESETS, UltrasoundSimulator

REPO = Path(__file__).resolve().parents[1]


def test_parse_size():
    assert parse_size("256") == (256, 256)
    assert parse_size("256x192") == (256, 192)
    assert parse_size("64X48") == (64, 48)
    for bad in ("", "x", "256x", "0", "256x0", "-4", "2.5", "256*192"):
        with pytest.raises(argparse.ArgumentTypeError, match="size"):
            parse_size(bad)


def test_parse_fractions():
    assert parse_fractions("0.7,0.15,0.15") == (0.7, 0.15, 0.15)
    assert parse_fractions("1") == (1.0,)
    for bad in ("0.5,0.4", "a,b", "0.5,0.5,0,0", "1.5,-0.5"):
        with pytest.raises(argparse.ArgumentTypeError, match="split"):
            parse_fractions(bad)


def test_choices_match_the_package():
    simulate = build_parser()._subparsers._group_actions[0].choices["simulate"]
    choices = {a.dest: tuple(a.choices) for a in simulate._actions if a.choices}
    assert sorted(choices["preset"]) == sorted(PRESETS)
    assert sorted(choices["layout"]) == sorted(LAYOUTS)


def _run_main(capsys, *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "args, message",
    [
        ("--size 256x", "argument --size: size must be N or HEIGHTxWIDTH"),
        ("--num 0", "argument --num: expected a positive integer, got '0'"),
        ("--seed -1", "argument --seed: expected a non-negative integer"),
        ("--preset liver", "argument --preset: invalid choice: 'liver'"),
        ("--layout nnunet", "argument --layout: invalid choice: 'nnunet'"),
        ("--finding effusion", "finding 'effusion' is not a finding of preset 'breast'"),
        ("--split 0.5,0.5", "split applies to the monai layout only"),
        ("--layout monai --split 0.5,0.4", "argument --split: split takes 1 to 3"),
        ("--difficulty -1", "--difficulty must be >= 0, got -1.0"),
    ],
)
def test_bad_arguments(capsys, tmp_path, args, message):
    code, out, err = _run_main(capsys, "simulate", "--out", str(tmp_path / "out"), "--num", "1", *args.split())
    assert code == 2
    assert "usgen-monai simulate: error:" in err and message in err
    assert not (tmp_path / "out").exists()


def test_usage_errors(capsys, tmp_path):
    code, _, err = _run_main(capsys)
    assert code == 2 and "the following arguments are required: COMMAND" in err
    code, _, err = _run_main(capsys, "simulate")
    assert code == 2 and "the following arguments are required: --out" in err
    code, out, _ = _run_main(capsys, "--version")
    assert code == 0 and out.startswith("usgen-monai ")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    code, _, err = _run_main(capsys, "simulate", "--out", str(tmp_path / "full"), "--num", "1", "--size", "32")
    assert code == 2 and "is not empty" in err and "--overwrite" in err


def test_simulate_in_process(capsys, tmp_path):
    out_dir = tmp_path / "busi"
    code, out, err = _run_main(
        capsys, "simulate", "--preset", "breast", "--num", "4", "--out", str(out_dir), "--size", "48x64", "--seed", "5"
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("wrote 4 breast images (busi layout, 48x64, seed 5;")
    assert "4/4" in err  # the tqdm progress bar
    manifest = json.loads((out_dir / "dataset.json").read_text())
    assert manifest["command"].startswith("usgen-monai simulate --preset breast --num 4")
    assert sum(manifest["findings"].values()) == 4 and manifest["size"] == [48, 64]


def test_hc18_with_other_preset_warns(capsys, tmp_path):
    code, out, err = _run_main(
        capsys, "simulate", "--preset", "msk", "--layout", "hc18", "--num", "1", "--size", "32", "--quiet",
        "--out", str(tmp_path / "h"),
    )  # fmt: skip
    assert code == 0 and out.startswith("wrote 1 msk images (hc18 layout")
    assert "usgen-monai simulate: warning: the hc18 layout is meant for the fetal_head preset" in err
    assert "it/s" not in err and "image/s" not in err  # --quiet: no progress bar


def test_register_subcommand(capsys):
    calls = []

    def add(parser):
        parser.add_argument("--n", type=int, default=1)

    def run(args):
        calls.append(args.n)
        return 3

    def run_failing(args):
        if args.n < 0:
            raise CommandError(f"--n must be >= 0, got {args.n}")
        raise ValueError("a bug, not a usage error")

    register_subcommand("echo-test", "test command", add, run)
    register_subcommand("fail-test", "test command", add, run_failing)
    try:
        assert main(["echo-test", "--n", "7"]) == 3 and calls == [7]
        with pytest.raises(SystemExit) as exit_info:
            main(["fail-test", "--n", "-1"])
        assert exit_info.value.code == 2 and "usgen-monai fail-test: error: --n must be >= 0" in capsys.readouterr().err
        with pytest.raises(ValueError, match="a bug"):  # other errors keep their traceback
            main(["fail-test"])
        with pytest.raises(ValueError, match="subcommand 'echo-test' is already registered"):
            register_subcommand("echo-test", "again", add, run)
    finally:
        del SUBCOMMANDS["echo-test"], SUBCOMMANDS["fail-test"]


def test_python_m_subprocess(tmp_path):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    result = subprocess.run(
        [sys.executable, "-m", "usgen_monai", "simulate", "--preset", "fetal_head", "--num", "3", "--layout", "hc18",
         "--size", "64", "--seed", "0", "--out", str(tmp_path / "hc18")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("wrote 3 fetal_head images (hc18 layout, 64x64, seed 0; normal 3)")
    assert len(list((tmp_path / "hc18" / "training_set").glob("*_HC.png"))) == 3
    bad = subprocess.run(
        [sys.executable, "-m", "usgen_monai", "simulate", "--size", "big", "--out", str(tmp_path / "x")],
        cwd=REPO, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip
    assert bad.returncode == 2 and "argument --size" in bad.stderr


# ----------------------------------------------------------------------------------------------------------------
# round trips: write with the command line, read back with the readers, compare with the simulator


def _expected(preset: str, num: int, seed: int, size: tuple[int, int]):
    sim = UltrasoundSimulator(preset, size=size)
    return [sim.sample(seed=sample_seed(seed, i)) for i in range(num)]


def _load(item: dict, layout: str) -> tuple[np.ndarray, np.ndarray]:
    data = load_transforms(layout)(item)
    # PIL reads (W, H) under MONAI's reverse indexing; transpose back to the simulator's (H, W)
    return np.asarray(data["image"])[0].T, np.asarray(data["label"])[0].T


@pytest.mark.parametrize(
    "layout, preset", [("busi", "breast"), ("hc18", "fetal_head"), ("monai", "msk"), ("busi", "msk")]
)
def test_round_trip(tmp_path, layout, preset):
    size, seed, num = (48, 56), 11, 6
    out_dir = tmp_path / layout
    args = ["simulate", "--preset", preset, "--num", str(num), "--layout", layout, "--out", str(out_dir)]
    assert main([*args, "--size", f"{size[0]}x{size[1]}", "--seed", str(seed), "--quiet"]) == 0
    kwargs = {"key": ("training", "validation", "test")} if layout == "monai" else {}
    items = load_dataset(out_dir, **kwargs)  # layout detected from the manifest
    assert len(items) == num
    per_finding: dict[str, int] = {}
    for i, s in enumerate(_expected(preset, num, seed, size)):
        finding = s.context["finding"]
        per_finding[finding] = per_finding.get(finding, 0) + 1
        if layout == "busi":
            name = f"{finding} ({per_finding[finding]}).png"
            item = next(it for it in items if Path(it["image"]).name == name and it["class"] == finding)
        elif layout == "hc18":
            item = next(it for it in items if Path(it["image"]).name == f"{i:03d}_HC.png")
        else:
            item = next(it for it in items if it["context"]["seed"] == sample_seed(seed, i))
        image, label = _load(item, layout)
        np.testing.assert_array_equal(image, to_uint8(s.image).astype(np.float32))
        np.testing.assert_array_equal(label, s.mask.astype(np.float32))  # masks identical after the round trip


def test_monai_layout_batches(tmp_path):
    """The monai layout goes through Dataset + DataLoader with batching (context dicts dropped by default)."""
    from monai.data import DataLoader, Dataset

    out_dir = tmp_path / "m"
    assert main(["simulate", "--preset", "breast", "--num", "6", "--layout", "monai", "--size", "32", "--quiet",
                 "--out", str(out_dir), "--split", "1"]) == 0  # fmt: skip
    items = load_dataset(out_dir)
    batch = next(iter(DataLoader(Dataset(items, transform=load_transforms("monai")), batch_size=6)))
    assert tuple(batch["image"].shape) == (6, 1, 32, 32) and tuple(batch["label"].shape) == (6, 1, 32, 32)
    assert set(np.unique(batch["label"].numpy())) <= {0.0, 1.0}
