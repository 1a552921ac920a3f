"""Side-by-side benchmark of the fused layers: ours vs eager reference vs torch.compile vs copy floor.

    python -m cyclegan_ext.bench                       # CPU, float32, all ops, default shapes
    python -m cyclegan_ext.bench --device cuda --dtypes float32,bfloat16 --json out.json
    python -m cyclegan_ext.bench --overhead             # per-call host cost vs torch's layers

Within a case, ours, the eager reference, torch.compile of it and the copy floor are timed
round-robin (so drift hits all alike), each as the median of many repetitions after warm-up. The floor is the time of one preallocated copy of the bytes the op must move
(forward: read x + write y = 1 copy; forward+backward: also read x and dy and write dx,
2.5 copies), measured in the same run.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass

import torch

from . import reference
from .layers import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN

GENERATOR_SHAPES = [(1, 256, 64, 64), (4, 256, 64, 64), (1, 64, 256, 256), (4, 128, 128, 128)]
LARGE_SHAPES = {"cpu": [(8, 128, 128, 128)], "cuda": [(8, 64, 512, 512), (32, 256, 128, 128)]}
OPS = ["adalin", "lin", "instance_norm", "instance_norm_relu"]
FLOOR_COPIES = {"fwd": 1.0, "fwdbwd": 2.5}
TENSOR_PASSES = {"fwd": 2, "fwdbwd": 5}  # full-size tensor reads + writes the op cannot avoid


@dataclass
class Result:
    op: str
    shape: tuple
    dtype: str
    layout: str
    mode: str
    fused_ms: float
    eager_ms: float
    compiled_ms: float | None
    floor_ms: float
    gbps: float

    @property
    def vs_eager(self):
        return self.eager_ms / self.fused_ms

    @property
    def vs_compiled(self):
        return None if self.compiled_ms is None else self.compiled_ms / self.fused_ms

    @property
    def floors(self):
        return self.fused_ms / self.floor_ms


def build_layers(op: str, channels: int, device, dtype):
    """(fused, eager) modules with identical parameters, and whether they take gamma/beta."""
    param_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    if op == "adalin":
        fused, eager, per_sample = FusedAdaLIN(channels), reference.AdaLIN(channels), True
    elif op == "lin":
        fused, eager, per_sample = FusedLIN(channels), reference.LIN(channels), False
    elif op in ("instance_norm", "instance_norm_relu"):
        act = "relu" if op.endswith("relu") else None
        fused = FusedInstanceNorm2d(channels, activation=act)
        eager = reference.InstanceNorm2d(channels, activation=act)
        per_sample = False
    else:
        raise ValueError(f"unknown op {op!r}; expected one of {OPS}")
    fused.load_state_dict(eager.state_dict())
    fused.to(device=device, dtype=param_dtype)
    eager.to(device=device, dtype=param_dtype)
    return fused, eager, per_sample


class Timer:
    """Median wall time in milliseconds of each of several closures, timed round-robin so that
    drift on a shared machine hits all of them alike (CUDA events on the GPU)."""

    def __init__(self, device: torch.device, warmup: int, reps: int):
        self.device, self.warmup, self.reps = device, warmup, reps

    def __call__(self, fns: dict) -> dict:
        for _ in range(self.warmup):
            for fn in fns.values():
                fn()
        times = {name: [] for name in fns}
        cuda = self.device.type == "cuda"
        for _ in range(self.reps):
            for name, fn in fns.items():
                if cuda:
                    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                    start.record()
                    fn()
                    end.record()
                    times[name].append((start, end))
                else:
                    t0 = time.perf_counter()
                    fn()
                    times[name].append((time.perf_counter() - t0) * 1e3)
        if cuda:
            torch.cuda.synchronize(self.device)
            times = {name: [s.elapsed_time(e) for s, e in pairs] for name, pairs in times.items()}
        return {name: statistics.median(ts) for name, ts in times.items()}


def make_step(module, x, extra, mode):
    """A closure running one forward (or forward+backward) of module."""
    params = [p for p in module.parameters()]
    inputs = [x] + [t for t in extra if t.requires_grad] + params
    if mode == "fwd":
        def step():
            with torch.no_grad():
                return module(x, *extra)
        return step
    grad_y = torch.randn_like(x)

    def step():
        y = module(x, *extra)
        return torch.autograd.grad(y, inputs, grad_y)
    return step


def bench_case(op, shape, dtype, layout, mode, device, timer, use_compile) -> Result:
    n, c = shape[0], shape[1]
    fused, eager, per_sample = build_layers(op, c, device, dtype)
    needs_grad = mode == "fwdbwd"
    x = torch.randn(shape, device=device, dtype=dtype)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(needs_grad)
    param_dtype = torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype
    extra = []
    if per_sample:
        extra = [torch.randn(n, c, device=device, dtype=param_dtype).requires_grad_(needs_grad),
                 torch.randn(n, c, device=device, dtype=param_dtype).requires_grad_(needs_grad)]
    copy_dst = torch.empty_like(x)
    x_plain = x.detach()
    fns = {"floor": lambda: copy_dst.copy_(x_plain), "fused": make_step(fused, x, extra, mode),
           "eager": make_step(eager, x, extra, mode)}
    if use_compile:
        torch._dynamo.reset()  # a fresh cache per case: no fall-back to eager after the recompile limit
        fns["compiled"] = make_step(torch.compile(eager, fullgraph=True, dynamic=False), x, extra, mode)
    t = timer(fns)
    fused_ms, eager_ms, compiled_ms = t["fused"], t["eager"], t.get("compiled")
    floor_ms = t["floor"] * FLOOR_COPIES[mode]
    nbytes = TENSOR_PASSES[mode] * x.numel() * x.element_size()
    return Result(op, tuple(shape), str(dtype).replace("torch.", ""), layout, mode, fused_ms, eager_ms,
                  compiled_ms, floor_ms, nbytes / (fused_ms * 1e-3) / 1e9)


def format_row(r: Result) -> str:
    comp = "-" if r.compiled_ms is None else f"{r.compiled_ms:9.3f}"
    vs_comp = "-" if r.vs_compiled is None else f"{r.vs_compiled:6.2f}x"
    shape = "x".join(map(str, r.shape))
    return (f"{r.op:19s} {shape:15s} {r.dtype:8s} {r.layout:13s} {r.mode:6s} {r.fused_ms:9.3f} {r.eager_ms:9.3f} "
            f"{comp:>9s} {r.floor_ms:9.3f} {r.vs_eager:7.2f}x {vs_comp:>7s} {r.floors:6.2f} {r.gbps:7.1f}")


HEADER = (f"{'op':19s} {'shape':15s} {'dtype':8s} {'layout':13s} {'mode':6s} {'fused ms':>9s} {'eager ms':>9s} "
          f"{'compile':>9s} {'floor ms':>9s} {'vs eager':>8s} {'vs comp':>7s} {'floors':>6s} {'GB/s':>7s}")


def parse_shapes(text: str):
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item]


def machine_description(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, {os.cpu_count()} cpus"


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m cyclegan_ext.bench", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--dtypes", default="float32", help="comma list: float32,float64,bfloat16,float16")
    parser.add_argument("--ops", default=",".join(OPS), help=f"comma list of {OPS}")
    parser.add_argument("--shapes", default=None,
                        help="comma list of NxCxHxW (default: the generator shapes plus a large one)")
    parser.add_argument("--layouts", default="nchw,channels_last", help="comma list: nchw,channels_last")
    parser.add_argument("--modes", default="fwd,fwdbwd", help="comma list: fwd,fwdbwd")
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions per case (default 30 cpu, 100 cuda)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed repetitions first (default 5 cpu, 20 cuda)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--calls", type=int, default=200, help="--overhead: back-to-back calls per timed round")
    parser.add_argument("--overhead", action="store_true",
                        help="per-call cost at a tiny shape, ours vs torch's layers, no_grad and forward+backward "
                             "(1 CPU thread unless --threads)")
    args = parser.parse_args(argv)

    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda given but no CUDA GPU is available")
    if args.threads or args.overhead:
        torch.set_num_threads(args.threads or 1)
    if args.overhead:
        return main_overhead(args, argv, device)
    dtypes = [getattr(torch, name) for name in args.dtypes.split(",")]
    shapes = parse_shapes(args.shapes) if args.shapes else GENERATOR_SHAPES + LARGE_SHAPES[device.type]
    ops = args.ops.split(",")
    for op in ops:
        if op not in OPS:
            parser.error(f"unknown op {op!r}; expected one of {OPS}")
    reps = args.reps or (100 if device.type == "cuda" else 30)
    warmup = args.warmup or (20 if device.type == "cuda" else 5)
    timer = Timer(device, warmup, reps)
    torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)

    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"# {started:%Y-%m-%d %H:%M} UTC, {machine_description(device)}, torch {torch.__version__}")
    print(f"# python -m cyclegan_ext.bench {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(HEADER, flush=True)
    results = []
    for dtype in dtypes:
        for op in ops:
            for shape in shapes:
                for layout in args.layouts.split(","):
                    for mode in args.modes.split(","):
                        r = bench_case(op, shape, dtype, layout, mode, device, timer, not args.no_compile)
                        results.append(r)
                        print(format_row(r), flush=True)
                        if args.json:  # after every case, so a run cut short keeps what it measured
                            write_json(args.json, results, started, device)
    print_worst_cases(results)
    return results


def main_overhead(args, argv, device):
    from .bench_overhead import OVERHEAD_SHAPE, run_overhead

    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"# {started:%Y-%m-%d %H:%M} UTC, {machine_description(device)}, torch {torch.__version__}")
    print(f"# python -m cyclegan_ext.bench {' '.join(sys.argv[1:] if argv is None else argv)}")
    shape = parse_shapes(args.shapes)[0] if args.shapes else OVERHEAD_SHAPE

    def save(rows):  # after every row, so a run cut short keeps what it measured
        if args.json:
            _write_json_atomically(args.json, {"date": started.isoformat(), "machine": machine_description(device),
                                               "torch": torch.__version__, "overhead": rows})

    return run_overhead(device, shape, rounds=args.reps or 15, calls=args.calls, on_row=save)


def print_worst_cases(results):
    print("\n# worst case per op and mode (speed-up over eager, over torch.compile; multiples of the floor)")
    keys = sorted({(r.op, r.mode) for r in results})
    for op, mode in keys:
        rows = [r for r in results if r.op == op and r.mode == mode]
        worst_eager = min(r.vs_eager for r in rows)
        comp = [r.vs_compiled for r in rows if r.vs_compiled is not None]
        worst_comp = f"{min(comp):.2f}x" if comp else "-"
        worst_floor = max(r.floors for r in rows)
        print(f"{op:19s} {mode:6s} vs eager >= {worst_eager:6.2f}x   vs compile >= {worst_comp:>7s}   "
              f"floors <= {worst_floor:5.2f}")


def write_json(path, results, started, device):
    payload = {"date": started.isoformat(), "machine": machine_description(device), "torch": torch.__version__,
               "results": [dict(asdict(r), vs_eager=r.vs_eager, vs_compiled=r.vs_compiled, floors=r.floors)
                           for r in results]}
    _write_json_atomically(path, payload)


def _write_json_atomically(path, payload):
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
