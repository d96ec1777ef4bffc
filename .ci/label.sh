#!/usr/bin/env bash
# Run the MONAI Label app's tests (tests/label) in the label virtualenv, next to the main run.
#
# Called by .ci/run once the main virtualenv (.venv) exists. `usgen-monai label --setup` builds .venv-label
# (idempotent: a stamp file records the requirements and the main virtualenv, so a second call does nothing):
#   monailabel 0.8.5 (--no-deps) with what its server imports, and the versions it needs that differ from the main
#   virtualenv: numpy 1.26.4, pydicom 2.4.5, highdicom 0.22.0, pynetdicom 2.1.1, dicomweb-client 0.59.3.
# Everything else (torch, torchvision, MONAI, segment-anything, scipy, pytest, usgen_monai itself) comes from the main
# virtualenv: a .pth file in .venv-label appends .venv's site-packages. No second torch install.
# See usgen_monai/label/environment.py and usgen_monai/label/README.md.
#
# The tests start the real server on 127.0.0.1. Where `unshare -n` works (root), they run in a network namespace of
# their own with only the loopback interface up, which proves the app fetches nothing (USGEN_LABEL_OFFLINE=1 makes
# a test check that only `lo` exists). USGEN_LABEL_TESTS=1 makes a missing MONAI Label and any skipped label test a
# failure (tests/label/conftest.py), so this script cannot pass with the tests skipped.
#
# Environment: MAIN_VENV (default .venv), USGEN_LABEL_VENV (default .venv-label); extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_VENV="${MAIN_VENV:-$ROOT/.venv}"
VENV="${USGEN_LABEL_VENV:-$ROOT/.venv-label}"

if [ ! -x "$MAIN_VENV/bin/python" ]; then
    echo "label.sh: main virtualenv not found at $MAIN_VENV (build it first)" >&2
    exit 2
fi

start=$(date +%s)
cd "$ROOT"
"$MAIN_VENV/bin/python" -m usgen_monai label --setup --venv "$VENV"
built=$(date +%s)
"$VENV/bin/python" - <<'PY'
import monai, monailabel, numpy, pydicom, torch
print(f"label.sh: monailabel {monailabel.__version__}, monai {monai.__version__}, numpy {numpy.__version__}, "
      f"pydicom {pydicom.__version__}, torch {torch.__version__} ({torch.__file__})")
PY

PYTEST=("$VENV/bin/python" -m pytest -q -p no:cacheprovider -rs tests/label "$@")
export USGEN_LABEL_TESTS=1 OMP_NUM_THREADS=1
set +e
if [ "$(id -u)" = 0 ] && command -v unshare >/dev/null && command -v ip >/dev/null \
        && unshare -n true 2>/dev/null; then
    echo "label.sh: running the tests without a network (unshare -n, loopback only)"
    unshare -n -- sh -c 'ip link set lo up && USGEN_LABEL_OFFLINE=1 exec "$@"' sh "${PYTEST[@]}"
else
    echo "label.sh: unshare -n is not available here; running the tests with the network (they use only 127.0.0.1)"
    "${PYTEST[@]}"
fi
rc=$?
set -e
end=$(date +%s)
echo "label.sh: pytest exit $rc; virtualenv $(( built - start )) s, tests $(( end - built )) s"
exit $rc
