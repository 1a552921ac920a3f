#!/usr/bin/env bash
# The one script a lent GPU machine runs (issue 3): build the extension with its CUDA kernels,
# run the CUDA tests (and a quick CPU sanity), run the CUDA benchmark, print a short table.
#
#   bash scripts/gpu_check.sh            # from the repository root; results under $OUT
#
# Designed for the device tool: one call of well under 10 minutes (H200, 16 cores, no
# network). Every stage has its own time limit (seconds, overridable through the
# environment); a failing stage does not stop the later ones. Exit status: 0 when the build
# and every test passed, 1 when tests failed, 2 when the build failed.
#
# Outputs in $OUT (default ./gpu_check_out): build.log, pytest_cuda.log, junit_cuda.xml,
# pytest_ops.log, junit_ops.xml,
# pytest_models.log, junit_models.xml, bench.log, bench.json, bench_compile.log,
# bench_compile.json, summary.txt.
set -u
cd "$(dirname "$0")/.."

OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
BUILD_LIMIT="${BUILD_LIMIT:-160}"
CUDA_TEST_LIMIT="${CUDA_TEST_LIMIT:-150}"   # tests/cuda
OP_TEST_LIMIT="${OP_TEST_LIMIT:-90}"        # tests/test_*.py (CPU and CUDA cases)
MODEL_TEST_LIMIT="${MODEL_TEST_LIMIT:-25}"  # CUDA-marked tests under tests/models, tests/train
BENCH_LIMIT="${BENCH_LIMIT:-95}"            # benchmark sweep without torch.compile
COMPILE_BENCH_LIMIT="${COMPILE_BENCH_LIMIT:-80}"  # the torch.compile comparison (compiles per case)
PYTHON="${PYTHON:-python}"
T0=$(date +%s)
stamp() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

stamp "== machine"
nvidia-smi -L || true
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv || true
"$PYTHON" - <<'EOF' || true
import platform, sys, torch
print(f"python {platform.python_version()}  torch {torch.__version__}  torch.version.cuda {torch.version.cuda}  "
      f"cuda available {torch.cuda.is_available()}  devices {torch.cuda.device_count()}")
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    print(f"device 0: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, sm_{p.major}{p.minor}")
EOF

# nvcc: setup.py finds the toolkit root from the nvcc on PATH; add a standard location if none.
if ! command -v nvcc >/dev/null 2>&1; then
  for d in /usr/local/cuda/bin /usr/local/cuda-13.0/bin /usr/local/cuda-13/bin; do
    if [ -x "$d/nvcc" ]; then export PATH="$d:$PATH"; break; fi
  done
fi
echo "nvcc: $(command -v nvcc || echo 'not found')"; nvcc --version 2>/dev/null | tail -1
# The toolkit root, as nvcc itself reports it (the nvcc on PATH may be a wrapper elsewhere, and
# torch's cpp_extension would then guess a wrong root and miss cuda_runtime_api.h).
if [ -z "${CUDA_HOME:-}" ] && command -v nvcc >/dev/null 2>&1; then
  TOP=$(nvcc --dryrun -c -x cu /dev/null 2>&1 | sed -n 's/^#\$ TOP=//p' | head -1)
  [ -n "$TOP" ] && export CUDA_HOME="$(realpath "$TOP")"
fi
echo "CUDA_HOME=${CUDA_HOME:-unset}"

stamp "== build (MAX_JOBS=16, TORCH_CUDA_ARCH_LIST=9.0, no network: --no-build-isolation --no-deps)"
B0=$(date +%s)
export MAX_JOBS="${MAX_JOBS:-16}" TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}" CYCLEGAN_EXT_CUDA=1
timeout "$BUILD_LIMIT" "$PYTHON" -m pip install --no-build-isolation --no-deps -e . >"$OUT/build.log" 2>&1
BUILD_RC=$?
if [ "$BUILD_RC" -ne 0 ]; then
  stamp "pip install -e . failed (rc=$BUILD_RC); trying setup.py build_ext --inplace"
  tail -30 "$OUT/build.log"
  timeout "$BUILD_LIMIT" "$PYTHON" setup.py build_ext --inplace >>"$OUT/build.log" 2>&1
  BUILD_RC=$?
fi
BUILD_S=$(( $(date +%s) - B0 ))
tail -5 "$OUT/build.log"
HAS_CUDA=$("$PYTHON" -c "import cyclegan_ext; print(cyclegan_ext.has_cuda_kernels())" 2>&1 | tail -1)
stamp "build rc=$BUILD_RC in ${BUILD_S}s; CUDA kernels registered: $HAS_CUDA"
if [ "$BUILD_RC" -ne 0 ] || [ "$HAS_CUDA" != "True" ]; then
  echo "BUILD FAILED: see $OUT/build.log"; tail -60 "$OUT/build.log"
  echo "build: FAILED (rc=$BUILD_RC, cuda kernels: $HAS_CUDA)" >"$OUT/summary.txt"
  exit 2
fi

stamp "== tests: the CUDA suite (tests/cuda)"
timeout "$CUDA_TEST_LIMIT" "$PYTHON" -m pytest -q -p no:cacheprovider -rfE --durations=10 \
  --junitxml="$OUT/junit_cuda.xml" tests/cuda 2>&1 | tee "$OUT/pytest_cuda.log" | tail -40
CUDA_TEST_RC=${PIPESTATUS[0]}
stamp "CUDA tests rc=$CUDA_TEST_RC"

stamp "== tests: the op suites, CPU and CUDA cases (tests/test_*.py)"
OP_TESTS=(); for f in tests/test_*.py; do [ -e "$f" ] && OP_TESTS+=("$f"); done
OP_TEST_RC=0
if [ "${#OP_TESTS[@]}" -gt 0 ]; then
  timeout "$OP_TEST_LIMIT" "$PYTHON" -m pytest -q -p no:cacheprovider -rfE --durations=5 \
    --junitxml="$OUT/junit_ops.xml" "${OP_TESTS[@]}" 2>&1 | tee "$OUT/pytest_ops.log" | tail -25
  OP_TEST_RC=${PIPESTATUS[0]}
fi
stamp "op tests rc=$OP_TEST_RC"

MODEL_RC=0
if [ -d tests/models ] || [ -d tests/train ]; then
  stamp "== tests: CUDA-marked model / training tests"
  MODEL_DIRS=(); for d in tests/models tests/train; do [ -d "$d" ] && MODEL_DIRS+=("$d"); done
  timeout "$MODEL_TEST_LIMIT" "$PYTHON" -m pytest -q -p no:cacheprovider -rfE -m cuda \
    --junitxml="$OUT/junit_models.xml" "${MODEL_DIRS[@]}" 2>&1 | tee "$OUT/pytest_models.log" | tail -15
  MODEL_RC=${PIPESTATUS[0]}
  [ "$MODEL_RC" -eq 5 ] && MODEL_RC=0  # no CUDA-marked tests collected
  stamp "model tests rc=$MODEL_RC"
fi

stamp "== benchmark (CUDA events, medians; fused vs eager reference vs copy floor [vs torch.compile])"
export PYTHONUNBUFFERED=1
BENCH_RC=0
COMPILE_RC=0
if "$PYTHON" -c "import cyclegan_ext.bench" >/dev/null 2>&1; then
  # 1. The sweep: both dtypes, layouts and modes at the generator shapes and a large one.
  timeout "$BENCH_LIMIT" "$PYTHON" -m cyclegan_ext.bench --device cuda --dtypes float32,bfloat16 \
    --layouts nchw,channels_last --modes fwd,fwdbwd --ops adalin,instance_norm_relu \
    --shapes 1x256x64x64,4x256x64x64,1x64x256x256,8x64x512x512 --reps 30 --warmup 5 --no-compile \
    --json "$OUT/bench.json" 2>&1 | tee "$OUT/bench.log"
  BENCH_RC=${PIPESTATUS[0]}
  stamp "bench sweep rc=$BENCH_RC"
  # 2. torch.compile of the reference (one compilation per case, so few cases).
  timeout "$COMPILE_BENCH_LIMIT" "$PYTHON" -m cyclegan_ext.bench --device cuda --dtypes float32,bfloat16 \
    --layouts nchw --modes fwd,fwdbwd --ops adalin --shapes 1x256x64x64,8x64x512x512 --reps 30 --warmup 5 \
    --json "$OUT/bench_compile.json" 2>&1 | tee "$OUT/bench_compile.log"
  COMPILE_RC=${PIPESTATUS[0]}
  stamp "bench compile rc=$COMPILE_RC"
else
  echo "cyclegan_ext.bench not found; skipping the benchmark" | tee "$OUT/bench.log"
  BENCH_RC=127
fi

stamp "== summary"
"$PYTHON" - "$OUT" "$BUILD_S" "$CUDA_TEST_RC" "$OP_TEST_RC" "$MODEL_RC" "$BENCH_RC" "$COMPILE_RC" <<'EOF' | tee "$OUT/summary.txt"
import json, os, sys
import xml.etree.ElementTree as ET

out, build_s, cuda_rc, op_rc, model_rc, bench_rc, compile_rc = sys.argv[1], *sys.argv[2:]

def junit(path):
    if not os.path.exists(path):
        return "no report"
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    tot = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = tot["tests"] - tot["failures"] - tot["errors"] - tot["skipped"]
    return f"{passed} passed, {tot['failures']} failed, {tot['errors']} errors, {tot['skipped']} skipped"

print(f"build          : ok in {build_s}s")
print(f"CUDA tests     : {junit(os.path.join(out, 'junit_cuda.xml'))} (rc={cuda_rc})")
print(f"op tests       : {junit(os.path.join(out, 'junit_ops.xml'))} (rc={op_rc})")
print(f"model tests    : {junit(os.path.join(out, 'junit_models.xml'))} (rc={model_rc})")
print(f"benchmark      : sweep rc={bench_rc}, torch.compile comparison rc={compile_rc}")

COLS = ["op", "shape", "dtype", "layout", "mode", "fused_ms", "eager_ms", "compiled_ms", "floor_ms", "gbps",
        "vs_eager", "vs_compiled", "floors"]


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return "-" if v is None else str(v)


for name in ("bench.json", "bench_compile.json"):
    path = os.path.join(out, name)
    if not os.path.exists(path):
        print(f"{name}: not written")
        continue
    print(f"\n# {name}")
    try:
        data = json.load(open(path))
    except ValueError as e:
        print(f"unreadable: {e}")
        continue
    rows = data.get("results") if isinstance(data, dict) else data
    if not (isinstance(rows, list) and rows and isinstance(rows[0], dict)):
        print(json.dumps(data, indent=1)[:4000])
        continue
    cols = [c for c in COLS if c in rows[0]] or list(rows[0])
    if name == "bench.json":
        cols = [c for c in cols if c not in ("compiled_ms", "vs_compiled")]
    width = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in cols}
    print("  ".join(c.ljust(width[c]) for c in cols))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(width[c]) for c in cols))
EOF
stamp "done"

if [ "$CUDA_TEST_RC" -ne 0 ] || [ "$OP_TEST_RC" -ne 0 ] || [ "$MODEL_RC" -ne 0 ]; then exit 1; fi
exit 0
