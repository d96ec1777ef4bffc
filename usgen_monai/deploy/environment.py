"""The MONAI Deploy virtualenv: where it is, how it is built, and how the app is launched in it (standard library
only: the core package never imports the SDK).

The MONAI Deploy App SDK (``monai-deploy-app-sdk``, the ``[deploy]`` extra) brings Holoscan (``holoscan-cu13``),
CuPy, cuda-python and the Triton client, and puts itself into the ``monai`` package (``monai/deploy``). It lives in
its own virtualenv, by default ``.venv-deploy`` at the repository root, built by :py:func:`setup_deploy_venv`
(``usgen-monai deploy --setup``) from the virtualenv that runs the command
(:py:func:`usgen_monai.layered_venv.build_layered_venv`):

1. ``python -m venv`` with that virtualenv's base interpreter; its old setuptools is removed (torch needs a newer
   one, which the main virtualenv has);
2. a ``.pth`` file, ``00_usgen_main_venv.pth``, appends the main virtualenv's site-packages (and processes its
   ``.pth`` files, so an editable ``usgen_monai`` install works): torch, MONAI's dependencies, pydicom, highdicom
   and ``usgen_monai`` come from there, with no second torch install. It sorts before Holoscan's own ``.pth``,
   whose first-start hook needs ``filelock`` from the main virtualenv;
3. ``pip install`` of :data:`DEPLOY_REQUIREMENTS`: pip sees the main virtualenv's packages through the ``.pth``
   and adds only what is missing (Holoscan, CuPy, cuda-python, tritonclient and their dependencies, about 480 MB);
4. ``pip install --no-deps --ignore-installed monai==<the main virtualenv's version>``: the SDK is a ``monai/deploy``
   folder without ``monai/__init__.py``, and Python takes a package from one folder only, so MONAI itself (pure
   Python, a few MB) is installed next to it; ``import monai`` then gives the same MONAI version with
   ``monai.deploy`` inside;
5. a check that ``import monai, monai.deploy, torch, usgen_monai`` works, and a stamp file (``.usgen-deploy``) so
   that a second call with the same requirements and main virtualenv does nothing.

The virtualenv is found by :py:func:`find_deploy_venv`: an explicit path (``--venv``), else the
``USGEN_DEPLOY_VENV`` environment variable, else ``.venv-deploy`` at the repository root.
"""

from __future__ import annotations

import os
import resource
import subprocess
from collections.abc import Sequence
from pathlib import Path

from usgen_monai.layered_venv import LayeredVenvError, build_layered_venv, find_layered_venv, venv_python

__all__ = [
    "DEPLOY_REQUIREMENTS",
    "DEPLOY_VENV_ENV",
    "SETUP_COMMAND",
    "DeployEnvironmentError",
    "default_bundle",
    "default_venv",
    "deploy_python",
    "find_bundle",
    "find_deploy_venv",
    "launch_app",
    "repo_root",
    "setup_deploy_venv",
]

#: what the deploy virtualenv installs on top of the main one (the ``deploy =`` extra of setup.cfg says the same)
DEPLOY_REQUIREMENTS: tuple[str, ...] = ("monai-deploy-app-sdk==4.0.0",)
#: environment variable naming the deploy virtualenv
DEPLOY_VENV_ENV = "USGEN_DEPLOY_VENV"
#: the command that builds the default deploy virtualenv
SETUP_COMMAND = "python -m usgen_monai deploy --setup"
_STAMP = ".usgen-deploy"
#: Holoscan warns below a 32 MiB stack; the launcher raises the soft limit of the app's process to this
_STACK_BYTES = 32 * 1024 * 1024


class DeployEnvironmentError(LayeredVenvError):
    """The deploy virtualenv is missing, broken, or cannot be built; the message says what to run."""


def repo_root() -> Path:
    """The folder above the ``usgen_monai`` package (the repository root for a source checkout)."""
    return Path(__file__).resolve().parents[2]


def default_venv() -> Path:
    """``.venv-deploy`` at the repository root."""
    return repo_root() / ".venv-deploy"


def default_bundle() -> Path:
    """The MGCC bundle of the repository, ``bundles/mgcc``."""
    return repo_root() / "bundles" / "mgcc"


def find_bundle(path: str | os.PathLike) -> Path:
    """The bundle folder at ``path``: ``path`` itself when it has ``configs/inference.json``, else its only
    sub-folder that has one (a MAP's model folder).

    Raises:
        ValueError: none, or several (naming them).
    """
    path = Path(path)
    if (path / "configs" / "inference.json").is_file():
        return path
    found = sorted(p for p in path.iterdir() if (p / "configs" / "inference.json").is_file()) if path.is_dir() else []
    if len(found) == 1:
        return found[0]
    if not found:
        raise ValueError(
            f"no MONAI bundle at {path}: expected {path / 'configs' / 'inference.json'} (or one bundle folder inside)."
        )
    raise ValueError(f"several bundles in {path}: {', '.join(p.name for p in found)}; pass the one to run.")


#: the interpreter of a virtualenv
deploy_python = venv_python


def _missing(venv: Path, how: str, setup: str) -> str:
    return (
        f"the MONAI Deploy virtualenv {venv} ({how}) does not exist or has no bin/python. The app runs in its own "
        f"virtualenv with monai-deploy-app-sdk (the [deploy] extra); build it once with:\n    {setup}\n"
        f"(it reuses this virtualenv's torch and MONAI; about 480 MB and a minute or two)."
    )


def find_deploy_venv(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The deploy virtualenv and how it was chosen (``"--venv"``, ``"$USGEN_DEPLOY_VENV"`` or ``"default"``).

    Raises:
        DeployEnvironmentError: it has no ``bin/python``; the message names the path and the setup command.
    """
    return find_layered_venv(
        explicit, DEPLOY_VENV_ENV, default_venv(), missing=_missing, setup_command=SETUP_COMMAND,
        error=DeployEnvironmentError,
    )  # fmt: skip


def _check_script(monai_version: str, venv_site: Path) -> str:
    return (
        "import monai, monai.deploy, torch, usgen_monai\n"
        f"assert monai.__version__ == {monai_version!r}, monai.__version__\n"
        f"assert monai.__file__.startswith({str(venv_site)!r}), monai.__file__\n"
        "print(monai.__version__, torch.__version__)\n"
    )


def setup_deploy_venv(
    venv: str | os.PathLike | None = None,
    requirements: Sequence[str] = DEPLOY_REQUIREMENTS,
    quiet: bool = True,
    log=print,
) -> Path:
    """Build the deploy virtualenv on top of the running one (see the module docstring); idempotent.

    Args:
        venv: where; defaults to ``$USGEN_DEPLOY_VENV``, else :py:func:`default_venv` (as :py:func:`find_deploy_venv`).
        requirements: pip requirements of the SDK. Defaults to :data:`DEPLOY_REQUIREMENTS`.
        quiet: capture pip's output (shown only on failure).
        log: progress messages (``print`` by default).

    Returns:
        the virtualenv's path.

    Raises:
        DeployEnvironmentError: ``venv`` exists but was not built by this function, the running interpreter has
            no MONAI, or a step fails (the message has the command and its output).
    """

    def steps(monai_version: str) -> list[tuple[list[str], str]]:
        return [
            (list(requirements), f"installing {', '.join(requirements)}"),
            (["--no-deps", "--ignore-installed", f"monai=={monai_version}"],
             f"installing monai=={monai_version} next to monai/deploy"),
        ]  # fmt: skip

    return build_layered_venv(
        Path(venv or os.environ.get(DEPLOY_VENV_ENV) or default_venv()),
        requirements=requirements,
        install_steps=steps,
        check_script=_check_script,
        check_what="monai, monai.deploy, torch and usgen_monai",
        stamp_name=_STAMP,
        setup_command=SETUP_COMMAND,
        name="deploy",
        error=DeployEnvironmentError,
        quiet=quiet,
        log=log,
    )


def _raise_stack_limit() -> None:  # pragma: no cover - runs in the child process
    soft, hard = resource.getrlimit(resource.RLIMIT_STACK)
    if soft != resource.RLIM_INFINITY and soft < _STACK_BYTES:
        target = _STACK_BYTES if hard == resource.RLIM_INFINITY else min(_STACK_BYTES, hard)
        try:
            resource.setrlimit(resource.RLIMIT_STACK, (target, hard))
        except (ValueError, OSError):
            pass


def launch_app(venv: str | os.PathLike, app_args: Sequence[str], env: dict[str, str] | None = None) -> int:
    """Run ``python -m usgen_monai.deploy APP_ARGS`` in the deploy virtualenv and return its exit status.

    The child gets a 32 MiB stack limit where the hard limit allows it (Holoscan warns below that).
    """
    args = [str(deploy_python(venv)), "-m", "usgen_monai.deploy", *app_args]
    return subprocess.run(args, env=env, preexec_fn=_raise_stack_limit, check=False).returncode
