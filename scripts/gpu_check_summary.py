"""Prints gpu_check.sh's summary: each stage's exit status, the test counts, and compact tables
of the benchmark JSON files. Usage: gpu_check_summary.py OUT LOGS BUILD_SECONDS name=rc ..."""
import json
import os
import sys
import xml.etree.ElementTree as ET

TABLES = {
    "bench.json": ["op", "shape", "dtype", "layout", "mode", "fused_ms", "eager_ms", "floor_ms", "vs_eager", "floors"],
    "overhead.json": ["layer", "mode", "ours_us", "torch_us", "ratio", "goal"],
    "e2e_b1.json": None,  # every column train.bench writes
    "e2e_b4.json": None,
    "e2e_compiled.json": None,
}


def junit_counts(path):
    if not os.path.exists(path):
        return "no report"
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "failures", "errors", "skipped")}
    passed = total["tests"] - total["failures"] - total["errors"] - total["skipped"]
    return f"{passed} passed, {total['failures']} failed, {total['errors']} errors, {total['skipped']} skipped"


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "x".join(map(str, v))
    return "-" if v is None else str(v)


def rows_of(data):
    if isinstance(data, list):
        return data
    for key in ("results", "overhead", "rows"):
        if isinstance(data.get(key), list):
            return data[key]
    return []


def print_table(name, path, columns):
    try:
        with open(path) as f:
            rows = [r for r in rows_of(json.load(f)) if isinstance(r, dict)]
    except (OSError, ValueError) as error:
        print(f"\n# {name}: {'not written' if isinstance(error, OSError) else f'unreadable ({error})'}")
        return
    if not rows:
        print(f"\n# {name}: no rows")
        return
    columns = [c for c in (columns or list(rows[0])) if any(c in r for r in rows)]
    width = {c: max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns}
    print(f"\n# {name}")
    print("  ".join(c.ljust(width[c]) for c in columns))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(width[c]) for c in columns))


def main(out, logs, build_seconds, *stage_rcs):
    print(f"build (s)      : {build_seconds}")
    for item in stage_rcs:
        name, rc = item.split("=")
        print(f"{name:15s}: {'not run' if rc == '-1' else 'rc=' + rc}")
    print(f"CUDA tests     : {junit_counts(os.path.join(logs, 'junit_cuda.xml'))}")
    print(f"op tests       : {junit_counts(os.path.join(logs, 'junit_ops.xml'))}")
    for name, columns in TABLES.items():
        print_table(name, os.path.join(out, name), columns)


if __name__ == "__main__":
    main(*sys.argv[1:])
