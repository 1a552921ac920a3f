#!/usr/bin/env bash
# The one script a lent GPU machine runs: build the extension with its CUDA kernels, run the
# CUDA tests, the CUDA op benchmark, the per-call overhead table and the end-to-end training
# step, and print a short summary table last.
#
#   bash scripts/gpu_check.sh              # on the GPU machine, from the repository root
#   bash scripts/gpu_check.sh --dry-run    # here, on a CPU machine: the same stages with CPU
#                                          # stand-ins and tiny sizes; checks the file count and
#                                          # the time budget before any device call
#
# Fits the device tool: one call (give it timeout_s 420: a first call plus a rerun on the warm
# machine, which rebuilds only what changed, fit in the session's 15 minutes),
# at most 8 files back from $OUT. Every stage has its own time limit (seconds, overridable
# through the environment); their sum stays well under the call's limit, and the summary is
# printed after the tests and again at the end, so even a run cut short reports. The heaviest,
# least important stage (the training step under torch.compile) runs last. A failing stage does not stop
# the later ones. Exit status: 0 when the build and every test passed, 1 when tests failed,
# 2 when the build failed, 3 when the dry run found the script over its limits.
#
# $OUT receives at most: summary.txt, logs.tar.gz (every log and junit report), and bench.json,
# overhead.json, e2e_b1.json, e2e_b4.json, e2e_compiled.json for direct reading (7 files).
set -u
cd "$(dirname "$0")/.."

DRY_RUN=0
[ "${1:-}" = "--dry-run" ] && DRY_RUN=1
OUT="${OUT:-$PWD/gpu_check_out}"
LOGS="$OUT/logs"
mkdir -p "$LOGS"
PYTHON="${PYTHON:-python3}"
[ "$DRY_RUN" -eq 1 ] && [ -x .venv/bin/python ] && PYTHON="${PYTHON_DRY:-.venv/bin/python}"
CALL_LIMIT=420   # the device call's timeout_s
BUILD_LIMIT="${BUILD_LIMIT:-120}"            # a rerun on the same (warm) machine rebuilds only what changed
CUDA_TEST_LIMIT="${CUDA_TEST_LIMIT:-50}"
OP_TEST_LIMIT="${OP_TEST_LIMIT:-35}"
BENCH_LIMIT="${BENCH_LIMIT:-25}"
OVERHEAD_LIMIT="${OVERHEAD_LIMIT:-15}"
E2E_LIMIT="${E2E_LIMIT:-40}"                 # fused vs eager (batch 1: + official, save_memory), batch 1 and 4
E2E_COMPILE_LIMIT="${E2E_COMPILE_LIMIT:-90}" # + torch.compile, batch 1 (compiles first: heaviest, last)
STAGE_SUM=$((BUILD_LIMIT + CUDA_TEST_LIMIT + OP_TEST_LIMIT + BENCH_LIMIT + OVERHEAD_LIMIT + E2E_LIMIT + E2E_COMPILE_LIMIT))
MAX_FILES=8
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }
# batch 1 also measures the official iteration and the memory builds (saved MB and
# torch.cuda.max_memory_allocated of one step for each); batch 4 the kernels' share only
e2e_builds() {
  if [ "$1" -eq 1 ]; then echo fused,eager,free,official,fused+save_memory,fused+save_memory+grad_checkpoint
  else echo fused,eager,free; fi
}

if [ "$DRY_RUN" -eq 1 ]; then
  DEVICE=cpu; BENCH_SHAPES=1x8x8x8; E2E=(--quick); E2E_BATCHES=(1); REPS=2; OVERHEAD_ARGS=(--reps 2 --calls 20)
  # inductor compiles C++ with gcc on this machine's 2 cores, far slower than Triton on the
  # GPU machine's 16: the dry run gives that stage more time (the budget check uses the
  # device's limits, above)
  E2E_COMPILE_LIMIT="${DRY_RUN_COMPILE_LIMIT:-300}"
  stamp "== DRY RUN on the CPU: stage limits sum to ${STAGE_SUM}s of the call's ${CALL_LIMIT}s"
else
  DEVICE=cuda; BENCH_SHAPES=1x256x64x64,4x256x64x64,1x64x256x256,8x64x512x512; REPS=30; OVERHEAD_ARGS=(--reps 7)
  E2E=(--config official --sizes 256 --reps 5 --warmup 2); E2E_BATCHES=(1 4)
fi

RC_BUILD=-1; RC_CUDA_TESTS=-1; RC_OP_TESTS=-1; RC_BENCH=-1; RC_OVERHEAD=-1; RC_E2E=-1; RC_E2E_COMPILE=-1
BUILD_S=0

summary() {
  "$PYTHON" scripts/gpu_check_summary.py "$OUT" "$LOGS" "$BUILD_S" "build=$RC_BUILD" "cuda_tests=$RC_CUDA_TESTS" \
    "op_tests=$RC_OP_TESTS" "bench=$RC_BENCH" "overhead=$RC_OVERHEAD" "e2e=$RC_E2E" "e2e_compile=$RC_E2E_COMPILE" \
    | tee "$OUT/summary.txt"
}

pack() {  # one archive of every log, so the file count stays within the device's limit
  tar -czf "$OUT/logs.tar.gz" -C "$OUT" logs && rm -rf "$LOGS"
}

# Runs a stage under its time limit: stage NAME LIMIT LOGFILE command...
stage() {
  local name=$1 limit=$2 log=$3; shift 3
  stamp "== $name (limit ${limit}s)"
  timeout "$limit" "$@" >"$LOGS/$log" 2>&1
  local rc=$?
  tail -15 "$LOGS/$log"
  [ "$rc" -eq 124 ] && echo "!! $name stopped at its ${limit}s limit"
  stamp "$name rc=$rc"
  return $rc
}

stamp "== machine"
nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
"$PYTHON" - <<'EOF' || true
import platform, torch
print(f"python {platform.python_version()}  torch {torch.__version__}  cuda {torch.version.cuda}  "
      f"available {torch.cuda.is_available()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}")
EOF

# The toolkit root, as nvcc itself reports it (the nvcc on PATH may be a wrapper elsewhere).
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin /usr/local/cuda-13/bin; do
    [ -x "$d/nvcc" ] && export PATH="$d:$PATH" && break
  done
fi
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null 2>&1; then
  TOP=$(nvcc --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
  [ -n "$TOP" ] && export CUDA_HOME="$(realpath "$TOP")"
fi
echo "nvcc: $(command -v nvcc || echo 'not found')  CUDA_HOME=${CUDA_HOME:-unset}"

B0=$(date +%s)
export MAX_JOBS="${MAX_JOBS:-$(nproc)}" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" PYTHONUNBUFFERED=1
if [ "$DRY_RUN" -eq 1 ] && [ "${DRY_RUN_BUILD:-1}" = "0" ] && "$PYTHON" -c "import cyclegan_ext" 2>/dev/null; then
  echo "dry run: DRY_RUN_BUILD=0, using the existing build" >"$LOGS/build.log"; RC_BUILD=0
else
  [ "$DRY_RUN" -eq 0 ] && export CYCLEGAN_EXT_CUDA=1
  stage build "$BUILD_LIMIT" build.log "$PYTHON" setup.py build_ext --inplace
  RC_BUILD=$?
fi
BUILD_S=$(( $(date +%s) - B0 ))
HAS_CUDA=$("$PYTHON" -c "import cyclegan_ext; print(cyclegan_ext.has_cuda_kernels())" 2>&1 | tail -1)
stamp "build rc=$RC_BUILD in ${BUILD_S}s; CUDA kernels registered: $HAS_CUDA"
if [ "$RC_BUILD" -ne 0 ] || { [ "$DRY_RUN" -eq 0 ] && [ "$HAS_CUDA" != "True" ]; }; then
  tail -60 "$LOGS/build.log"
  [ "$RC_BUILD" -eq 0 ] && RC_BUILD=1  # built, but without the CUDA kernels
  summary; pack; exit 2
fi

# Tests: the CUDA suite, then the op suites (their CPU and CUDA cases). TF32 stays off in
# every comparison (the tests set it); here it is also off by default in torch.
PYTEST=("$PYTHON" -m pytest -q -p no:cacheprovider -rfE)
stage "CUDA tests" "$CUDA_TEST_LIMIT" pytest_cuda.log "${PYTEST[@]}" --junitxml="$LOGS/junit_cuda.xml" tests/cuda
RC_CUDA_TESTS=$?
OP_TESTS=(tests/ops/test_*.py)
[ "$DRY_RUN" -eq 1 ] && OP_TESTS=(tests/ops/test_bad_inputs.py tests/ops/test_param_layouts.py tests/ops/test_activations.py)
stage "op tests" "$OP_TEST_LIMIT" pytest_ops.log "${PYTEST[@]}" --junitxml="$LOGS/junit_ops.xml" "${OP_TESTS[@]}"
RC_OP_TESTS=$?
summary  # early, so a run cut short still reports the tests

stage "op benchmark" "$BENCH_LIMIT" bench.log "$PYTHON" -m cyclegan_ext.bench --device "$DEVICE" \
  --dtypes float32,bfloat16 --layouts nchw,channels_last --modes fwd,fwdbwd --ops adalin,instance_norm_relu \
  --shapes "$BENCH_SHAPES" --reps "$REPS" --warmup 3 --no-compile --json "$OUT/bench.json"
RC_BENCH=$?
stage "per-call overhead" "$OVERHEAD_LIMIT" overhead.log "$PYTHON" -m cyclegan_ext.bench --overhead \
  --device "$DEVICE" "${OVERHEAD_ARGS[@]}" --json "$OUT/overhead.json"
RC_OVERHEAD=$?
RC_E2E=0
for b in "${E2E_BATCHES[@]}"; do
  stage "end-to-end training step, batch $b" "$((E2E_LIMIT / ${#E2E_BATCHES[@]}))" "e2e_b$b.log" "$PYTHON" -m train.bench \
    --device "$DEVICE" "${E2E[@]}" --batch_size "$b" --builds "$(e2e_builds "$b")" --modes train --json "$OUT/e2e_b$b.json"
  rc=$?; [ "$rc" -ne 0 ] && RC_E2E=$rc
done
stage "end-to-end training step with torch.compile, batch 1" "$E2E_COMPILE_LIMIT" e2e_compiled.log "$PYTHON" -m train.bench \
  --device "$DEVICE" "${E2E[@]}" --batch_size 1 --builds fused,compiled,fused_compiled --modes train \
  --json "$OUT/e2e_compiled.json"
RC_E2E_COMPILE=$?

summary
pack
stamp "done"
FILES=$(find "$OUT" -type f | wc -l)
if [ "$DRY_RUN" -eq 1 ]; then
  ELAPSED=$(( $(date +%s) - T0 ))
  echo "dry run: $FILES files in \$OUT (limit $MAX_FILES); stage limits sum to ${STAGE_SUM}s (call limit ${CALL_LIMIT}s); this run took ${ELAPSED}s"
  if [ "$FILES" -gt "$MAX_FILES" ] || [ "$STAGE_SUM" -gt $((CALL_LIMIT - 40)) ]; then
    echo "DRY RUN FAILED: over the device's limits"; exit 3
  fi
  for rc in "$RC_OP_TESTS" "$RC_BENCH" "$RC_OVERHEAD" "$RC_E2E" "$RC_E2E_COMPILE"; do
    [ "$rc" -ne 0 ] && echo "DRY RUN FAILED: a stage failed (see the summary)" && exit 1
  done
  echo "DRY RUN OK"; exit 0
fi
[ "$RC_CUDA_TESTS" -ne 0 ] || [ "$RC_OP_TESTS" -ne 0 ] && exit 1
exit 0
