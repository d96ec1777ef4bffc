"""``usgen-monai deploy`` from the main virtualenv: the core import path never touches the MONAI Deploy SDK, a missing
deploy virtualenv gives the command that builds it, and the deploy pins agree across setup.cfg, the environment module
and the app's packaging files. (The app itself is tested in tests/deploy, in the deploy virtualenv.)"""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from usgen_monai.deploy import environment
from usgen_monai.deploy.environment import (
    DEPLOY_REQUIREMENTS,
    DEPLOY_VENV_ENV,
    DeployEnvironmentError,
    find_bundle,
    find_deploy_venv,
    setup_deploy_venv,
)

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "usgen_monai" / "deploy"


def test_core_import_path_never_imports_the_sdk():
    """An import hook records every attempt (also failed or optional ones) to import monai.deploy or holoscan while
    the package, the command line (building every subcommand's parser) and the SDK-free deploy modules load."""
    code = (
        "import sys\n"
        "tried = []\n"
        "class Recorder:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'holoscan' or name.startswith(('holoscan.', 'monai.deploy')):\n"
        "            tried.append(name)\n"
        "        return None\n"
        "sys.meta_path.insert(0, Recorder())\n"
        "import usgen_monai, usgen_monai.cli, usgen_monai.deploy, usgen_monai.deploy.environment\n"
        "usgen_monai.cli.build_parser().parse_args(['deploy', '--input', 'a', '--output', 'b'])\n"
        "import usgen_monai.deploy.report, usgen_monai.engines.bundle_segmenter\n"
        "print(','.join(sorted(set(tried))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO, check=False
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "", f"tried to import: {out.stdout}"


def _deploy(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    env = {k: v for k, v in os.environ.items() if k != DEPLOY_VENV_ENV} | (env or {})
    return subprocess.run(
        [sys.executable, "-m", "usgen_monai", "deploy", *args], capture_output=True, text=True, timeout=120,
        cwd=REPO, env=env, check=False,
    )  # fmt: skip


def test_missing_deploy_venv_gives_the_setup_command(tmp_path):
    (tmp_path / "in").mkdir()
    common = ["--input", str(tmp_path / "in"), "--output", str(tmp_path / "out")]
    proc = _deploy(*common, "--venv", str(tmp_path / "nowhere"))
    assert proc.returncode == 2
    assert f"the MONAI Deploy virtualenv {tmp_path / 'nowhere'} (--venv) does not exist" in proc.stderr
    assert f"python -m usgen_monai deploy --setup --venv {tmp_path / 'nowhere'}" in proc.stderr
    proc = _deploy(*common, env={DEPLOY_VENV_ENV: str(tmp_path / "elsewhere")})
    assert proc.returncode == 2 and f"(${DEPLOY_VENV_ENV}) does not exist" in proc.stderr
    assert not (tmp_path / "out").exists()


def test_deploy_argument_errors(tmp_path):
    proc = _deploy("--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--input and --output are required" in proc.stderr
    proc = _deploy("--input", str(tmp_path / "missing"), "--output", str(tmp_path / "out"))
    assert proc.returncode == 2 and "is not a folder (it does not exist)" in proc.stderr
    proc = _deploy("--input", str(tmp_path), "--output", str(tmp_path / "out"), "--bundle", str(tmp_path))
    assert proc.returncode == 2 and "is not a bundle folder" in proc.stderr


def test_find_deploy_venv_order(tmp_path, monkeypatch):
    for name in ("explicit", "from_env", "default"):
        (tmp_path / name / "bin").mkdir(parents=True)
        (tmp_path / name / "bin" / "python").write_text("")
    monkeypatch.setattr(environment, "default_venv", lambda: tmp_path / "default")
    monkeypatch.delenv(DEPLOY_VENV_ENV, raising=False)
    assert find_deploy_venv() == (tmp_path / "default", "default")
    monkeypatch.setenv(DEPLOY_VENV_ENV, str(tmp_path / "from_env"))
    assert find_deploy_venv() == (tmp_path / "from_env", f"${DEPLOY_VENV_ENV}")
    assert find_deploy_venv(tmp_path / "explicit") == (tmp_path / "explicit", "--venv")


def test_find_bundle(tmp_path):
    assert find_bundle(REPO / "bundles" / "mgcc") == REPO / "bundles" / "mgcc"
    (tmp_path / "models" / "mgcc" / "configs").mkdir(parents=True)
    (tmp_path / "models" / "mgcc" / "configs" / "inference.json").write_text("{}")
    assert find_bundle(tmp_path / "models") == tmp_path / "models" / "mgcc"  # a MAP's model folder with one bundle
    with pytest.raises(ValueError, match="no MONAI bundle at"):
        find_bundle(tmp_path)
    shutil.copytree(tmp_path / "models" / "mgcc", tmp_path / "models" / "other")
    with pytest.raises(ValueError, match="several bundles in .*: mgcc, other"):
        find_bundle(tmp_path / "models")


def test_setup_refuses_a_folder_it_did_not_build(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(DeployEnvironmentError, match="was not built by"):
        setup_deploy_venv(tmp_path, log=lambda m: None)
    assert (tmp_path / "mine.txt").read_text() == "keep me"


def test_deploy_pins_agree_everywhere():
    cfg = configparser.ConfigParser()
    cfg.read(REPO / "setup.cfg")
    extra = [line.strip() for line in cfg["options.extras_require"]["deploy"].splitlines() if line.strip()]
    assert tuple(extra) == DEPLOY_REQUIREMENTS
    requirements = [line.split("#")[0].strip() for line in (DEPLOY / "requirements.txt").read_text().splitlines()]
    assert set(DEPLOY_REQUIREMENTS) <= set(requirements)
    monai_pin = next(line.strip() for line in cfg["options"]["install_requires"].splitlines() if "monai" in line)
    assert monai_pin in requirements
    app_yaml = (DEPLOY / "app.yaml").read_text()
    assert "usgen_monai.deploy" in app_yaml and "monai-deploy-app-sdk" not in app_yaml  # the sdk version lives once
