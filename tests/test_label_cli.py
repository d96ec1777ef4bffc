"""``usgen-monai label`` in the main environment: the core package never imports MONAI Label, the command explains
how to build the label virtualenv when it is missing, and it sets up the app and the server command (127.0.0.1)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from usgen_monai import cli
from usgen_monai.label import environment


def test_core_package_and_cli_do_not_import_monailabel():
    code = (
        "import sys, usgen_monai, usgen_monai.cli, usgen_monai.label, usgen_monai.label.environment\n"
        "usgen_monai.cli.build_parser()\n"
        "bad = sorted(m for m in sys.modules if m == 'monailabel' or m.startswith('monailabel.'))\n"
        "assert not bad, bad\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr


def test_label_is_registered_with_its_options():
    assert "label" in cli.SUBCOMMANDS
    args = cli.build_parser().parse_args(["label", "--studies", "s", "--port", "8123", "--conf", "models", "mgcc"])
    assert args.studies == "s" and args.port == 8123 and args.conf == [["models", "mgcc"]]


def test_missing_virtualenv_names_the_setup_command(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv(environment.LABEL_VENV_ENV, raising=False)
    with pytest.raises(SystemExit) as exc:
        cli.main(["label", "--studies", str(tmp_path), "--venv", str(tmp_path / "nowhere")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert str(tmp_path / "nowhere") in err and "python -m usgen_monai label --setup --venv" in err
    monkeypatch.setenv(environment.LABEL_VENV_ENV, str(tmp_path / "env-venv"))
    with pytest.raises(environment.LabelEnvironmentError, match=r"\$USGEN_LABEL_VENV"):
        environment.find_label_venv()


def test_studies_are_required_and_must_be_a_folder(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["label"])
    assert "--studies is required" in capsys.readouterr().err
    venv = _fake_venv(tmp_path)
    with pytest.raises(SystemExit):
        cli.main(["label", "--studies", str(tmp_path / "missing"), "--venv", str(venv)])
    assert "does not exist" in capsys.readouterr().err


def _fake_venv(tmp_path: Path) -> Path:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    for name in ("python", "monailabel"):
        (venv / "bin" / name).write_text("#!/bin/sh\n")
    return venv


def test_dry_run_sets_up_the_app_and_serves_on_loopback(tmp_path, capsys):
    studies = tmp_path / "studies"
    studies.mkdir()
    venv = _fake_venv(tmp_path)
    code = cli.main(["label", "--studies", str(studies), "--venv", str(venv), "--port", "8123", "--dry-run",
                     "--conf", "models", "mgcc"])  # fmt: skip
    assert code == 0
    err = capsys.readouterr().err
    work = studies.resolve() / ".usgen-label"
    assert (work / "app" / "main.py").read_text() == (environment.app_dir() / "main.py").read_text()
    assert "--host 127.0.0.1 --port 8123" in err and f"--app {work / 'app'}" in err
    assert "--conf models mgcc" in err and f"--conf work_dir {work}" in err
    assert f"{venv / 'bin' / 'python'} -m monailabel.main start_server" in err


def test_server_environment_and_command():
    env = environment.server_environment({"PATH": "/usr/bin"}, threads=2, venv="/opt/v")
    assert env["OMP_NUM_THREADS"] == "2" and env["PATH"].startswith(str(Path("/opt/v").resolve() / "bin") + os.pathsep)
    assert env["MONAI_LABEL_DATASTORE_AUTO_RELOAD"] == "false"
    args = environment.server_command("/opt/v", "/data", port=9000, conf={"a": "b"})
    assert args[:4] == ["/opt/v/bin/python", "-m", "monailabel.main", "start_server"]
    assert args[args.index("--host") + 1] == "127.0.0.1" and args[-3:] == ["--conf", "a", "b"]


def test_setup_refuses_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "venv").mkdir()
    with pytest.raises(environment.LabelEnvironmentError, match="was not built by"):
        environment.setup_label_venv(tmp_path / "venv", log=lambda m: None)
