#!/usr/bin/env bash
# Run the MONAI Deploy app's tests (tests/deploy) in the deploy virtualenv, next to the main run.
#
# Called by .ci/run once the main virtualenv (.venv) exists. `usgen-monai deploy --setup` builds .venv-deploy
# (idempotent: a stamp file records the requirements and the main virtualenv, so a second call does nothing):
#   monai-deploy-app-sdk 4.0.0 and what it adds (holoscan-cu13, cupy, cuda-python, tritonclient, ...; ~480 MB), plus
#   the main virtualenv's MONAI version next to the SDK's monai/deploy folder (pure Python, --no-deps).
# Everything else (torch, the rest of MONAI's stack, pydicom, highdicom, pytest, usgen_monai itself) comes from the
# main virtualenv: a .pth file in .venv-deploy appends .venv's site-packages. No second torch install.
# See usgen_monai/deploy/environment.py and usgen_monai/deploy/README.md.
#
# USGEN_DEPLOY_TESTS=1 makes a missing SDK an error in tests/deploy/conftest.py instead of a skip, so this script
# fails rather than passing with the tests skipped.
#
# Environment: MAIN_VENV (default .venv), USGEN_DEPLOY_VENV (default .venv-deploy); extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_VENV="${MAIN_VENV:-$ROOT/.venv}"
VENV="${USGEN_DEPLOY_VENV:-$ROOT/.venv-deploy}"

if [ ! -x "$MAIN_VENV/bin/python" ]; then
    echo "deploy.sh: main virtualenv not found at $MAIN_VENV (build it first)" >&2
    exit 2
fi

start=$(date +%s)
cd "$ROOT"
"$MAIN_VENV/bin/python" -m usgen_monai deploy --setup --venv "$VENV"
built=$(date +%s)
ulimit -s 32768 2>/dev/null || true  # Holoscan warns below a 32 MiB stack
"$VENV/bin/python" - <<'PY'
import monai, torch, monai.deploy
from importlib.metadata import version
print(f"deploy.sh: monai {monai.__version__} ({monai.__file__}), monai-deploy-app-sdk {version('monai-deploy-app-sdk')}, "
      f"holoscan {version('holoscan-cu13')}, torch {torch.__version__} ({torch.__file__})")
PY
set +e
USGEN_DEPLOY_TESTS=1 OMP_NUM_THREADS=1 "$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/deploy "$@"
rc=$?
set -e
end=$(date +%s)
echo "deploy.sh: pytest exit $rc; virtualenv $(( built - start )) s, tests $(( end - built )) s"
exit $rc
