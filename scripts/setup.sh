#!/usr/bin/env bash
# Creates ./.venv (if missing), installs the dependencies and builds the cyclegan_ext
# kernels in place (CPU, plus CUDA when torch has CUDA and a toolkit is found).
# Idempotent: the object files are kept in build/cyclegan_ext (ignored by git), so a second run
# recompiles only the sources whose text, included headers or flags changed (ninja), then links.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "== installing dependencies (requirements.txt)"
.venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
echo "== building the cyclegan_ext kernels"
CYCLEGAN_EXT_BUILD_TEMP="${CYCLEGAN_EXT_BUILD_TEMP:-$PWD/build/cyclegan_ext}" \
  MAX_JOBS="${MAX_JOBS:-$(nproc)}" .venv/bin/pip install --quiet --disable-pip-version-check \
  --no-build-isolation --no-deps -e .
.venv/bin/python -c "import cyclegan_ext; print('cyclegan_ext ready: CUDA kernels built:', cyclegan_ext.has_cuda_kernels())"
