"""The package installs and imports without its optional extras."""

from __future__ import annotations

import subprocess
import sys


def test_import_does_not_pull_optional_extras():
    code = (
        "import sys, importlib, pkgutil, usgen_monai\n"
        "for m in pkgutil.walk_packages(usgen_monai.__path__, 'usgen_monai.'):\n"
        "    if not m.name.startswith(('usgen_monai.apps.', 'usgen_monai.deploy', 'usgen_monai.label')):\n"
        "        importlib.import_module(m.name)\n"
        "bad = [m for m in ('monailabel', 'monai.deploy', 'holoscan', 'itk') if m in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "", f"optional extras imported: {out.stdout}"


def test_plain_import_is_light():
    out = subprocess.run(
        [sys.executable, "-c", "import sys, usgen_monai, usgen_monai.data.simulator; print('torch' in sys.modules)"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
