"""The MONAI Label virtualenv: where it is, how it is built, and how the server is started in it (standard library
only: the core package never imports MONAI Label).

MONAI Label 0.8.5 (the ``[label]`` extra) needs pydicom 2.4 (``pydicom-seg`` breaks with pydicom 3) and so numpy 1.26
and highdicom 0.22, while the main environment stays on numpy 2 / pydicom 3. It lives in its own virtualenv, by
default ``.venv-label`` at the repository root, built by :py:func:`setup_label_venv` (``usgen-monai label --setup``)
from the virtualenv that runs the command (:py:func:`usgen_monai.layered_venv.build_layered_venv`):

1. ``python -m venv`` with that virtualenv's base interpreter; the seeded setuptools is removed (torch needs the
   newer one the main virtualenv has);
2. a ``.pth`` file, ``00_usgen_main_venv.pth``, appends the main virtualenv's site-packages (and processes its
   ``.pth`` files, so an editable ``usgen_monai`` install works): torch, torchvision, MONAI, segment-anything,
   scipy, scikit-image, nibabel, pillow and ``usgen_monai`` come from there, with no second torch install. Packages
   installed in the label virtualenv come first on ``sys.path`` and shadow the main ones (numpy, pydicom, highdicom);
3. ``pip install`` of :data:`LABEL_PINS` and :data:`LABEL_SERVER_REQUIREMENTS` (what MONAI Label imports to serve:
   FastAPI, uvicorn, ITK, SimpleITK through pydicom-seg, ...), then ``pip install --no-deps monailabel==0.8.5``.
   MONAI Label's own dependency list is not installed as a whole: it would add ``sam2`` (whose inference task
   downloads weights), MLflow, OpenSlide, LMDB and TensorBoard, none of which this app uses;
4. a check that ``monailabel``, ``monai``, ``torch`` and ``usgen_monai`` import with the pinned numpy and pydicom,
   and a stamp file (``.usgen-label``), so that a second call with the same requirements and main virtualenv does
   nothing.

The virtualenv is found by :py:func:`find_label_venv`: an explicit path (``--venv``), else the ``USGEN_LABEL_VENV``
environment variable, else ``.venv-label`` at the repository root. :py:func:`server_command` builds the
``monailabel start_server`` command line for the app folder (``usgen_monai/label/app``).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from usgen_monai.layered_venv import LayeredVenvError, build_layered_venv, find_layered_venv, venv_python

__all__ = [
    "LABEL_PINS",
    "LABEL_SERVER_REQUIREMENTS",
    "LABEL_VENV_ENV",
    "MONAILABEL_REQUIREMENT",
    "SETUP_COMMAND",
    "LabelEnvironmentError",
    "app_dir",
    "default_venv",
    "default_work_dir",
    "find_label_venv",
    "label_python",
    "launch_server",
    "prepare_app",
    "repo_root",
    "server_command",
    "server_environment",
    "setup_label_venv",
]

#: the MONAI Label release the app is written for (installed with --no-deps)
MONAILABEL_REQUIREMENT = "monailabel==0.8.5"
#: the versions that must differ from the main virtualenv (the working set measured in issue 13)
LABEL_PINS: tuple[str, ...] = (
    "numpy==1.26.4",
    "pydicom==2.4.5",
    "pynetdicom==2.1.1",
    "dicomweb-client[gcp]==0.59.3",
    "highdicom==0.22.0",
    "pillow-jpls==1.3.2",
)
#: what MONAI Label 0.8.5 imports to serve an app (its dependency list less sam2 and MONAI's heavy extras; the web
#: stack and ITK pinned to the versions the tests ran with)
LABEL_SERVER_REQUIREMENTS: tuple[str, ...] = (
    "fastapi==0.165.0",
    "uvicorn==0.54.0",
    "pydantic==2.14.4",
    "pydantic-settings==2.16.3",
    "python-dotenv>=1.0.1",
    "python-multipart>=0.0.9",
    "httpx>=0.27.0",
    "schedule>=1.2.1",
    "timeloop>=1.0.2",
    "expiringdict>=1.2.2",
    "expiring_dict>=1.1.0",
    "cachetools>=5.3.3",
    "watchdog>=4.0.0",
    "pydicom-seg>=0.4.1",
    "pynrrd>=1.0.0",
    "girder-client>=3.2.3",
    "passlib>=1.7.4",
    "pyjwt>=2.8.0",
    "bcrypt>=4.1.2",
    "shapely>=2.0.4",
    "requests>=2.31.0",
    "requests-toolbelt>=1.0.0",
    "urllib3>=2.2.1",
    "google-auth>=2.29.0",
    "itk==5.4.7",
    "psutil>=5.9",
)
#: environment variable naming the label virtualenv
LABEL_VENV_ENV = "USGEN_LABEL_VENV"
#: the command that builds the default label virtualenv
SETUP_COMMAND = "python -m usgen_monai label --setup"
_STAMP = ".usgen-label"


class LabelEnvironmentError(LayeredVenvError):
    """The label virtualenv is missing, broken, or cannot be built; the message says what to run."""


def repo_root() -> Path:
    """The folder above the ``usgen_monai`` package (the repository root for a source checkout)."""
    return Path(__file__).resolve().parents[2]


def app_dir() -> Path:
    """The MONAI Label app folder (``usgen_monai/label/app``, with ``main.py``)."""
    return Path(__file__).resolve().parent / "app"


def default_venv() -> Path:
    """``.venv-label`` at the repository root."""
    return repo_root() / ".venv-label"


#: the interpreter of a virtualenv
label_python = venv_python


def _missing(venv: Path, how: str, setup: str) -> str:
    return (
        f"the MONAI Label virtualenv {venv} ({how}) does not exist or has no monailabel. The server runs in its "
        f"own virtualenv with {MONAILABEL_REQUIREMENT}, numpy 1.26 and pydicom 2.4 (the [label] extra); build it "
        f"once with:\n    {setup}\n(it reuses this virtualenv's torch and MONAI; about 350 MB and a few minutes)."
    )


def find_label_venv(explicit: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The label virtualenv and how it was chosen (``"--venv"``, ``"$USGEN_LABEL_VENV"`` or ``"default"``).

    Raises:
        LabelEnvironmentError: it has no ``bin/python`` or no MONAI Label; the message names the path and the setup
            command.
    """
    return find_layered_venv(
        explicit, LABEL_VENV_ENV, default_venv(), required=("bin/python", "bin/monailabel"), missing=_missing,
        setup_command=SETUP_COMMAND, error=LabelEnvironmentError,
    )  # fmt: skip


def _check_script(monai_version: str, venv_site: Path) -> str:
    return (
        "import numpy, pydicom, highdicom, monai, torch, usgen_monai, monailabel\n"
        "from monailabel.interfaces.app import MONAILabelApp\n"
        "from monailabel.tasks.infer.bundle import BundleInferTask\n"
        "from monailabel.tasks.train.bundle import BundleTrainTask\n"
        "assert numpy.__version__ == '1.26.4', numpy.__version__\n"
        "assert pydicom.__version__.startswith('2.4.'), pydicom.__version__\n"
        f"assert monai.__version__ == {monai_version!r}, monai.__version__\n"
        "print(monailabel.__version__, numpy.__version__, pydicom.__version__, torch.__version__)\n"
    )


def setup_label_venv(venv: str | os.PathLike | None = None, quiet: bool = True, log=print) -> Path:
    """Build the label virtualenv on top of the running one (see the module docstring); idempotent.

    Args:
        venv: where; defaults to ``$USGEN_LABEL_VENV``, else :py:func:`default_venv` (as :py:func:`find_label_venv`).
        quiet: capture pip's output (shown only on failure).
        log: progress messages (``print`` by default).

    Returns:
        the virtualenv's path.

    Raises:
        LabelEnvironmentError: ``venv`` exists but was not built by this function, the running interpreter has no
            MONAI, or a step fails (the message has the command and its output).
    """
    steps = [
        (["--no-compile", *LABEL_PINS, *LABEL_SERVER_REQUIREMENTS], "installing the MONAI Label server's requirements"),
        (["--no-compile", "--no-deps", MONAILABEL_REQUIREMENT], f"installing {MONAILABEL_REQUIREMENT}"),
    ]
    return build_layered_venv(
        Path(venv or os.environ.get(LABEL_VENV_ENV) or default_venv()),
        requirements=(*LABEL_PINS, *LABEL_SERVER_REQUIREMENTS, MONAILABEL_REQUIREMENT),
        install_steps=lambda monai_version: steps,
        check_script=_check_script,
        check_what="monailabel, monai, torch and usgen_monai",
        stamp_name=_STAMP,
        setup_command=SETUP_COMMAND,
        name="label",
        error=LabelEnvironmentError,
        quiet=quiet,
        log=log,
        summary=f"{MONAILABEL_REQUIREMENT}, {', '.join(LABEL_PINS)}",
    )


def server_environment(
    base: Mapping[str, str] | None = None, threads: int | None = None, venv: str | os.PathLike | None = None
) -> dict[str, str]:
    """The environment of the server process: ``base`` (default ``os.environ``) with MONAI Label's settings for a
    local folder of 2D studies (no datastore watcher, no sessions, no scoring; the datastore's file patterns), the
    label virtualenv's ``bin`` first on ``PATH`` (MONAI Label starts its train tasks with ``python``) and, with
    ``threads``, the thread count of torch and OpenMP (``OMP_NUM_THREADS``)."""
    env = dict(os.environ if base is None else base)
    if venv is not None:
        env["PATH"] = os.pathsep.join([str(Path(venv).resolve() / "bin"), env.get("PATH", "")])
        env["VIRTUAL_ENV"] = str(Path(venv).resolve())
    env.setdefault("MONAI_LABEL_DATASTORE_AUTO_RELOAD", "false")
    env.setdefault("MONAI_LABEL_SESSIONS", "false")
    env.setdefault("MONAI_LABEL_TASKS_SCORING", "false")
    env.setdefault("MONAI_LABEL_AUTO_UPDATE_SCORING", "false")
    env.setdefault("MONAI_LABEL_TASKS_BATCH_INFER", "true")
    env.setdefault("MONAI_LABEL_INFER_CONCURRENCY", "-1")
    env.setdefault("MONAI_LABEL_DATASTORE_FILE_EXT", '["*.png", "*.jpg", "*.jpeg", "*.nii", "*.nii.gz", "*.dcm"]')
    env.setdefault("PYTHONUNBUFFERED", "1")
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def server_command(
    venv: str | os.PathLike,
    studies: str | os.PathLike,
    port: int = 8000,
    host: str = "127.0.0.1",
    conf: Mapping[str, str] | None = None,
) -> list[str]:
    """``monailabel start_server`` for the app folder over ``studies``, with ``--conf key value`` per ``conf`` item
    (run as ``<venv>/bin/python -m monailabel.main``: the ``monailabel`` script calls whichever ``python`` is first on
    ``PATH``)."""
    args = [
        str(label_python(venv)), "-m", "monailabel.main", "start_server",
        "--app", str(app_dir()), "--studies", str(Path(studies).resolve()),
        "--host", host, "--port", str(int(port)),
    ]  # fmt: skip
    for key, value in (conf or {}).items():
        args += ["--conf", str(key), str(value)]
    return args


def default_work_dir(studies: str | os.PathLike) -> Path:
    """``<studies>/.usgen-label``: the app folder, retrained weights, train runs and server logs."""
    return Path(studies).resolve() / ".usgen-label"


def prepare_app(work_dir: str | os.PathLike) -> Path:
    """Copy the app's ``main.py`` into ``<work_dir>/app`` (MONAI Label writes ``logs/``, ``model/``, ``lib/`` and
    ``bin/`` into the app folder it serves, so it is not served from the package) and return that folder."""
    target = Path(work_dir) / "app"
    target.mkdir(parents=True, exist_ok=True)
    text = (app_dir() / "main.py").read_text(encoding="utf-8")
    main = target / "main.py"
    if not main.is_file() or main.read_text(encoding="utf-8") != text:
        fd, tmp = tempfile.mkstemp(dir=target, prefix=".main.py.")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, main)
    return target


def launch_server(
    venv: str | os.PathLike,
    studies: str | os.PathLike,
    port: int = 8000,
    conf: Mapping[str, str] | None = None,
    work_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    dry_run: bool = False,
    log=print,
) -> int:
    """Set up the app in ``work_dir`` (default :py:func:`default_work_dir`) and run ``monailabel start_server`` on
    127.0.0.1 in the label virtualenv until it stops; returns its exit status (``dry_run``: print the command, 0).

    Raises:
        LabelEnvironmentError: ``studies`` is not a folder.
    """
    studies = Path(studies)
    if not studies.is_dir():
        raise LabelEnvironmentError(
            f"--studies {studies} is not a folder" + ("" if studies.exists() else " (it does not exist)")
        )
    work = Path(work_dir).resolve() if work_dir else default_work_dir(studies)
    conf = {"work_dir": str(work), **dict(conf or {})}
    args = server_command(venv, studies, port=port, conf=conf)
    args[args.index("--app") + 1] = str(prepare_app(conf["work_dir"]))
    env = server_environment(threads=threads, venv=venv)
    log(f"MONAI Label on http://127.0.0.1:{int(port)}/ (studies {studies.resolve()}, work {conf['work_dir']})")
    log(" ".join(shlex.quote(a) for a in args))
    if dry_run:
        return 0
    try:
        return subprocess.run(args, env=env, check=False).returncode
    except KeyboardInterrupt:
        return 130
