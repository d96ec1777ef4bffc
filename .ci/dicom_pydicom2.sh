#!/usr/bin/env bash
# Run the DICOM tests under pydicom 2.4 (the line MONAI Label 0.8.5 environments use) next to the main run on 3.x.
#
# Called by .ci/run once the main virtualenv (.venv) exists. It builds a small second virtualenv, .venv-pydicom2,
# holding only the packages that must differ:
#   pydicom 2.4.4, highdicom 0.22.0 (the last release for pydicom 2.x), numpy 1.26.4 (highdicom 0.22 predates
#   numpy 2) and pillow-jpls (a highdicom 0.22 dependency).
# Everything else (torch, monai, pytest, the pylibjpeg 2.x decoders and pyjpegls, usgen_monai itself) comes from the
# main venv: a .pth file in .venv-pydicom2 appends .venv's site-packages (processing its .pth files, so the editable
# usgen_monai install works), and the packages above shadow their .venv versions because they come first on sys.path.
# No second torch install. NumPy-2-built extensions (torch, the decoders) run on NumPy 1.26 by NumPy's ABI rules.
#
# Environment: MAIN_VENV (default .venv), PYDICOM2_VENV (default .venv-pydicom2); extra arguments go to pytest.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
MAIN_VENV="${MAIN_VENV:-$ROOT/.venv}"
VENV="${PYDICOM2_VENV:-$ROOT/.venv-pydicom2}"
PINS=(pydicom==2.4.4 highdicom==0.22.0 numpy==1.26.4 pillow-jpls==1.3.2)
TESTS=(tests/data/test_dicom_reader.py tests/data/test_dicom_writers.py tests/data/test_dicom_fuzz.py
       tests/data/test_image_files.py tests/data/test_library_messages.py tests/engines/test_context_sources_dicom.py)
for t in "$ROOT"/tests/transforms/test_ultrasound_*.py; do [ -e "$t" ] && TESTS+=("${t#"$ROOT"/}"); done

if [ ! -x "$MAIN_VENV/bin/python" ]; then
    echo "dicom_pydicom2.sh: main virtualenv not found at $MAIN_VENV (build it first)" >&2
    exit 2
fi
MAIN_SITE="$("$MAIN_VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
BASE_PY="$("$MAIN_VENV/bin/python" -c 'import sys; print(sys._base_executable)')"
STAMP="$VENV/.usgen-pins"

start=$(date +%s)
if [ ! -x "$VENV/bin/python" ] || [ "$(cat "$STAMP" 2>/dev/null)" != "${PINS[*]} $MAIN_SITE" ]; then
    echo "dicom_pydicom2.sh: building $VENV (${PINS[*]})"
    rm -rf "$VENV"
    "$BASE_PY" -m venv "$VENV"
    # install before the .pth exists, so pip sees only this venv; --no-deps: the rest comes from the main venv
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: "${PINS[@]}"
    VENV_SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    printf "import site; site.addsitedir(%s)\n" "'$MAIN_SITE'" > "$VENV_SITE/zzz_usgen_main_venv.pth"
    echo "${PINS[*]} $MAIN_SITE" > "$STAMP"
fi

cd "$ROOT"
"$VENV/bin/python" - <<'PY'
import highdicom, numpy, pydicom, monai, torch, usgen_monai
assert pydicom.__version__.startswith("2.4."), f"expected pydicom 2.4, got {pydicom.__version__} from {pydicom.__file__}"
assert highdicom.__version__ == "0.22.0", f"expected highdicom 0.22.0, got {highdicom.__version__}"
print(f"dicom_pydicom2.sh: pydicom {pydicom.__version__} ({pydicom.__file__}), highdicom {highdicom.__version__}, "
      f"numpy {numpy.__version__}, monai {monai.__version__}, torch {torch.__version__}")
PY
set +e
"$VENV/bin/python" -m pytest -q -p no:cacheprovider "${TESTS[@]}" "$@"
rc=$?
set -e
echo "dicom_pydicom2.sh: pytest exit $rc in $(( $(date +%s) - start )) s"
exit $rc
