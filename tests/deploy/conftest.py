"""tests/deploy run in the MONAI Deploy virtualenv (``.ci/deploy.sh``); elsewhere they are skipped.

The main suite collects everything under tests/, and its virtualenv has no MONAI Deploy App SDK, so every test here is
skipped there with the reason. ``.ci/deploy.sh`` sets ``USGEN_DEPLOY_TESTS=1``: then a missing SDK is an error, not
a skip, so CI cannot pass with these tests silently skipped.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REQUIRED = os.environ.get("USGEN_DEPLOY_TESTS") == "1"


def _sdk_available() -> bool:
    try:
        return importlib.util.find_spec("monai.deploy") is not None
    except (ImportError, ValueError):
        return False


def pytest_collection_modifyitems(config, items):
    mine = [item for item in items if HERE in Path(str(item.path)).resolve().parents]
    if not mine or _sdk_available():
        return
    if REQUIRED:
        raise pytest.UsageError(
            "USGEN_DEPLOY_TESTS=1 but monai.deploy (monai-deploy-app-sdk) is not importable in this interpreter "
            "(expected the deploy virtualenv, see .ci/deploy.sh)"
        )
    skip = pytest.mark.skip(
        reason="MONAI Deploy App SDK not installed here; tests/deploy run in the deploy virtualenv (.ci/deploy.sh)"
    )
    for item in mine:
        item.add_marker(skip)
