"""Virtualenvs layered on the main one, for the optional extras whose pins clash with it (MONAI Label needs numpy 1
and pydicom 2; the MONAI Deploy SDK puts itself into the ``monai`` package). Standard library only.

:py:func:`build_layered_venv` builds one from the virtualenv that runs it:

1. ``python -m venv`` with that virtualenv's base interpreter; the seeded setuptools is removed (python 3.11 seeds
   setuptools 65, which would shadow the main virtualenv's; torch needs >= 77);
2. a ``.pth`` file, ``00_usgen_main_venv.pth``, appends the main virtualenv's site-packages (and processes its
   ``.pth`` files, so an editable ``usgen_monai`` install works): torch, MONAI and ``usgen_monai`` come from there,
   with no second torch install; what the layered virtualenv installs itself comes first on ``sys.path``;
3. the extra's ``pip install`` steps, then a check script, then a stamp file recording the requirements, the main
   site-packages and the MONAI version, so that a second call with the same ones does nothing (and a changed one
   rebuilds it).

:py:func:`find_layered_venv` finds one: an explicit path, else an environment variable, else the default folder.
The MONAI Label and MONAI Deploy environments (:py:mod:`usgen_monai.label.environment`,
:py:mod:`usgen_monai.deploy.environment`) say what they install and check.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path

__all__ = ["LayeredVenvError", "build_layered_venv", "find_layered_venv", "venv_python"]

_PTH = "00_usgen_main_venv.pth"

#: an install step: pip arguments after ``pip install`` and what it does (for the error message)
InstallStep = tuple[Sequence[str], str]


class LayeredVenvError(RuntimeError):
    """A layered virtualenv is missing, broken, or cannot be built; the message says what to run."""


def venv_python(venv: str | os.PathLike) -> Path:
    """The interpreter of a virtualenv."""
    return Path(venv) / "bin" / "python"


def find_layered_venv(
    explicit: str | os.PathLike | None,
    env_var: str,
    default: Path,
    required: Sequence[str] = ("bin/python",),
    missing: Callable[[Path, str, str], str] | None = None,
    setup_command: str = "",
    error: type[Exception] = LayeredVenvError,
) -> tuple[Path, str]:
    """The virtualenv and how it was chosen (``"--venv"``, ``"$ENV_VAR"`` or ``"default"``).

    Args:
        explicit: a path given on the command line (``--venv``), or ``None``.
        env_var: the environment variable that names it otherwise.
        default: the folder used when neither is given.
        required: files (relative to the virtualenv) it must have.
        missing: ``(venv, how, setup command) -> message`` when a required file is missing.
        setup_command: the command that builds the default one (``--venv PATH`` is added for another path).
        error: the exception type raised.

    Raises:
        error: a required file is missing.
    """
    if explicit:
        venv, how = Path(explicit), "--venv"
    elif os.environ.get(env_var):
        venv, how = Path(os.environ[env_var]), f"${env_var}"
    else:
        venv, how = default, "default"
    if not all((venv / r).is_file() for r in required):
        setup = setup_command if how == "default" else f"{setup_command} --venv {venv}"
        raise error(missing(venv, how, setup) if missing else f"the virtualenv {venv} ({how}) is incomplete.")
    return venv, how


def _run(args: Sequence[str], what: str, quiet: bool, error: type[Exception]) -> None:
    out = subprocess.run(list(args), capture_output=quiet, text=True, check=False)
    if out.returncode != 0:
        tail = ((out.stdout or "") + (out.stderr or ""))[-3000:] if quiet else ""
        raise error(f"{what} failed (exit {out.returncode}): {' '.join(args)}\n{tail}")


def build_layered_venv(
    venv: Path,
    requirements: Sequence[str],
    install_steps: Callable[[str], Sequence[InstallStep]],
    check_script: Callable[[str, Path], str],
    check_what: str,
    stamp_name: str,
    setup_command: str,
    name: str,
    error: type[Exception] = LayeredVenvError,
    quiet: bool = True,
    log: Callable[[str], object] = print,
    summary: str = "",
) -> Path:
    """Build ``venv`` on top of the running virtualenv (see the module docstring); idempotent.

    Args:
        venv: where.
        requirements: what it installs, recorded in the stamp and logged.
        install_steps: ``monai_version -> [(pip install arguments, what), ...]``, run in order.
        check_script: ``(monai_version, the virtualenv's site-packages) -> python code`` that must run without error.
        check_what: what the check checks (for the error message).
        stamp_name: the stamp file's name in ``venv`` (e.g. ``.usgen-label``).
        setup_command: the command that runs this (named when ``venv`` exists but was built otherwise).
        name: what the virtualenv is for, in messages (``"label"``, ``"deploy"``).
        error: the exception type raised.
        quiet: capture pip's output (shown only on failure).
        log: progress messages.
        summary: what it installs, in messages (default: ``requirements``).

    Returns:
        ``venv``.

    Raises:
        error: ``venv`` exists but was not built by this function, the running interpreter has no MONAI, or a step
            fails (the message has the command and its output).
    """
    main_site = sysconfig.get_paths()["purelib"]
    try:
        monai_version = metadata.version("monai")
    except metadata.PackageNotFoundError:
        raise error(
            f"MONAI is not installed in {sys.prefix}; run the setup from the project's main virtualenv."
        ) from None
    stamp = json.dumps({"requirements": list(requirements), "main_site": main_site, "monai": monai_version})
    stamp_file = venv / stamp_name
    summary = summary or ", ".join(requirements)
    if venv_python(venv).is_file() and stamp_file.is_file() and stamp_file.read_text() == stamp:
        log(f"{name} virtualenv {venv} is up to date ({summary}, monai {monai_version})")
        return venv
    if venv.exists():
        if not stamp_file.is_file():
            raise error(
                f"{venv} exists but was not built by '{setup_command}' (no {stamp_name} file); remove it or pass "
                "another --venv."
            )
        log(f"rebuilding {venv}: its requirements or main virtualenv changed")
        shutil.rmtree(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    log(f"building {venv} ({summary}; torch, MONAI and usgen_monai from {main_site})")
    _run([base, "-m", "venv", str(venv)], "creating the virtualenv", quiet, error)
    python = str(venv_python(venv))
    pip = [python, "-m", "pip", "--disable-pip-version-check"] + (["--quiet"] if quiet else [])
    _run([*pip, "uninstall", "--yes", "setuptools"], "removing the seeded setuptools", quiet, error)
    out = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    venv_site = Path(out.stdout.strip())
    (venv_site / _PTH).write_text(f"import site; site.addsitedir({main_site!r})\n")
    for args, what in install_steps(monai_version):
        _run([*pip, "install", *args], what, quiet, error)
    _run([python, "-c", check_script(monai_version, venv_site)], f"checking that {check_what} import", quiet, error)
    stamp_file.write_text(stamp)
    log(f"{name} virtualenv ready: {venv}")
    return venv
