"""Runs the CUDA kernels (csrc/cuda/*.cu) on the CPU, in a small emulation of the CUDA
execution model, and compares them with the float64 reference. No GPU needed.

    python scripts/emulate_cuda_kernels.py                  # default shapes (~3 min on 2 cores)
    python scripts/emulate_cuda_kernels.py --shapes 2x8x8x8,1x136x2x2 -v

What it checks: the launch plans, indexing, vector / scalar paths, split reductions (also
forced on small shapes), NHWC column tiles, the block / warp reductions (a real barrier per
__syncthreads, shuffles through a per-warp exchange), that every output element is written
(outputs and workspace start as NaN), for float32 / float16 / bfloat16 / float64.
What it cannot check: anything about real hardware (memory model across blocks, alignment
faults, occupancy, speed, nvcc-specific code generation, --use_fast_math approximations).

How: each .cu file is copied with `kernel<<<grid, block, smem, stream>>>(args)` rewritten to
`emu::launch(grid, block, smem, stream, &kernel, args)` and the dynamic shared memory
declaration to a buffer; emu_cuda.h defines the CUDA keywords for g++ (C++20 for
std::barrier). Blocks run one after another; the threads of a block are std::threads.
"""
import argparse
import ctypes
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

import torch

ROOT = pathlib.Path(__file__).resolve().parents[1]
HERE = pathlib.Path(__file__).resolve().parent / "cuda_emulation"
DEFAULT_SHAPES = [(1, 1, 1, 1), (2, 3, 1, 1), (2, 3, 5, 7), (2, 8, 8, 8), (1, 4, 32, 32), (3, 5, 4, 6), (2, 16, 2, 3),
                  (1, 40, 6, 6), (1, 136, 2, 2)]
DT = {torch.float32: 0, torch.float64: 1, torch.float16: 2, torch.bfloat16: 3}
ACTS = {None: 0, "relu": 1, "leaky_relu": 2}
TOL = {torch.float32: 2e-5, torch.float64: 1e-9, torch.float16: 1e-2, torch.bfloat16: 1e-2}


def build(workdir: pathlib.Path) -> pathlib.Path:
    src = workdir / "csrc"
    (src / "cuda").mkdir(parents=True)
    shutil.copy(ROOT / "csrc" / "norm_math.h", src / "norm_math.h")
    for f in (ROOT / "csrc" / "cuda").iterdir():
        if f.suffix not in (".h", ".cuh", ".cu"):
            continue
        s = f.read_text()
        s = re.sub(r"([A-Za-z_]\w*<[^<>;]*>)<<<([^>]*)>>>\(", r"::emu::launch(\2, &\1, ", s)
        s = s.replace("extern __shared__ __align__(16) unsigned char smem_raw[];",
                      "unsigned char* smem_raw = ::emu::dynamic_smem();")
        (src / "cuda" / (f.name + (".cpp" if f.suffix == ".cu" else ""))).write_text(s)
    inc = workdir / "inc"
    (inc / "c10" / "cuda").mkdir(parents=True)
    shutil.copy(HERE / "emu_cuda.h", inc / "emu_cuda.h")
    for stub in ("cuda_runtime.h", "cuda_runtime_api.h", "c10/cuda/CUDAException.h"):
        (inc / stub).write_text('#pragma once\n#include "emu_cuda.h"\n')
    shutil.copy(HERE / "emu_api.cpp", workdir / "emu_api.cpp")
    torch_dir = pathlib.Path(torch.__file__).parent
    flags = ["-std=c++20", "-O1", "-fPIC", "-pthread", f"-I{inc}", f"-I{workdir}", f"-I{torch_dir / 'include'}"]
    objs = []
    for name, extra in (("csrc/cuda/norm_forward.cu.cpp", ["-include", "emu_cuda.h"]),
                        ("csrc/cuda/norm_backward.cu.cpp", ["-include", "emu_cuda.h"]), ("emu_api.cpp", [])):
        obj = workdir / (pathlib.Path(name).stem + ".o")
        subprocess.run(["g++", *flags, *extra, "-c", str(workdir / name), "-o", str(obj)], check=True)
        objs.append(str(obj))
    lib = workdir / "libemu.so"
    subprocess.run(["g++", "-shared", "-pthread", *objs, "-o", str(lib), f"-L{torch_dir / 'lib'}", "-lc10",
                    f"-Wl,-rpath,{torch_dir / 'lib'}"], check=True)
    return lib


def load(lib_path):
    lib = ctypes.CDLL(str(lib_path))
    P, I64, I, D = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int, ctypes.c_double
    lib.emu_forward.argtypes = [I, P, P, P, I64, I64, P, I64, I64, P, I64, P, P, P, P, I64, I64, I64, I, I, D, I64, D,
                                I, I, I, P]
    lib.emu_backward.argtypes = [I, P, P, P, P, I64, I64, P, I64, I64, P, I64, P, P, P, P, P, P, P, I64, I64, I64, I,
                                 I, I64, D, I, I, I, P]
    return lib


def ptr(t):
    return None if t is None else t.data_ptr()


def rel_err(a, r, floor=0.0):
    return ((a.double() - r).abs().max() / r.abs().max().clamp_min(max(floor, 1e-30))).item()


def run_case(lib, reference, shape, dtype, cl, act, unbiased, rho_on, lin, sms, vec, small, offset=0.5, scale=2.0,
             slope=0.2, eps=1e-5, seed=0, affine=True):
    g = torch.Generator().manual_seed(seed)
    N, C, H, W = shape
    M = H * W
    acc = torch.float64 if dtype == torch.float64 else torch.float32
    x = (torch.randn(shape, generator=g, dtype=torch.float64) * scale + offset).to(dtype)
    if cl:
        x = x.contiguous(memory_format=torch.channels_last)
    rows = 1 if lin else N
    w = (1 + 0.5 * torch.randn(rows, C, generator=g, dtype=torch.float64)).to(acc).expand(N, C)
    b = (0.5 * torch.randn(rows, C, generator=g, dtype=torch.float64)).to(acc).expand(N, C)
    rho = torch.rand(C, generator=g, dtype=torch.float64).to(acc) if rho_on else None
    # affine=False: weight and bias are absent (null pointers), meaning 1 and 0
    w_arg, b_arg = (w, b) if affine else (None, None)
    if not affine:
        w, b = torch.ones(N, C, dtype=acc), torch.zeros(N, C, dtype=acc)
    nan = float("nan")
    y = torch.full_like(x, nan)
    mc, rc = torch.full((N, C), nan, dtype=acc), torch.full((N, C), nan, dtype=acc)
    ml, rl = torch.full((N,), nan, dtype=acc), torch.full((N,), nan, dtype=acc)
    info = (ctypes.c_int64 * 10)()
    assert lib.emu_forward(DT[dtype], ptr(x), ptr(y), ptr(w_arg), w.stride(0), w.stride(1), ptr(b_arg), b.stride(0),
                           b.stride(1), ptr(rho), 0 if rho is None else rho.stride(0), ptr(mc), ptr(rc), ptr(ml),
                           ptr(rl), N, C, M, int(cl), int(unbiased), eps, ACTS[act], slope, sms, vec, small, info) == 0
    plan = list(info)
    xd = x.double().requires_grad_()
    wd = w.double().requires_grad_()
    bd = b.double().requires_grad_()
    rd = (torch.ones(C, dtype=torch.float64) if rho is None else rho.double()).requires_grad_()
    yr = reference.adalin(xd, wd, bd, rd, eps, unbiased, act, slope)
    errs = {"y": rel_err(y, yr.detach()), "mean_c": rel_err(mc, x.double().mean((2, 3)))}
    go = torch.randn(shape, generator=g, dtype=torch.float64).to(dtype)
    if cl:
        go = go.contiguous(memory_format=torch.channels_last)
    yr.backward(go.double())
    gx = torch.full_like(x, nan)
    gw, gb, gr = (torch.full((N, C), nan, dtype=acc) for _ in range(3))
    assert lib.emu_backward(DT[dtype], ptr(go), ptr(x), ptr(gx), ptr(w_arg), w.stride(0), w.stride(1), ptr(b_arg),
                            b.stride(0), b.stride(1), ptr(rho), 0 if rho is None else rho.stride(0), ptr(mc), ptr(rc),
                            ptr(ml), ptr(rl), ptr(gw), ptr(gb), ptr(gr), N, C, M, int(cl), int(unbiased), ACTS[act],
                            slope, sms, vec, small, info) == 0
    # 1x1 planes: grad_x's instance part is a cancellation of terms of size |w| |g| / sqrt(eps).
    floor = (w.abs().max() * go.double().abs().max()).item() / eps ** 0.5 if M == 1 else 0.0
    errs["gx"] = rel_err(gx, xd.grad, floor)
    errs["gw"] = rel_err(gw, wd.grad)
    errs["gb"] = rel_err(gb, bd.grad)
    if rho is not None:
        # a difference of terms of grad_weight's size (identically 0 for C = 1)
        errs["grho"] = rel_err(gr.sum(0), rd.grad, (wd.grad.abs().max() * w.abs().max()).item())
    finite = all(torch.isfinite(t).all().item() for t in (y, mc, rc, ml, rl, gx, gw, gb, gr))
    zero_grho = rho is not None or bool((gr == 0).all())
    return errs, finite and zero_grho, plan


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shapes", default=None, help="comma list of NxCxHxW")
    parser.add_argument("--dtypes", default="float32,float16,bfloat16,float64")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("--keep", default=None, help="build in this folder (kept) instead of a temporary one")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    from cyclegan_ext import reference

    shapes = ([tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")] if args.shapes
              else DEFAULT_SHAPES)
    dtypes = [getattr(torch, d) for d in args.dtypes.split(",")]
    workdir = pathlib.Path(args.keep or tempfile.mkdtemp(prefix="cuda_emu_"))
    if args.keep and workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    lib = load(build(workdir))
    print(f"built the emulation in {time.time() - t0:.0f}s ({workdir})", flush=True)
    n = bad = 0
    for shape in shapes:
        for dtype in dtypes:
            width = 16 // torch.empty((), dtype=dtype).element_size()
            for cl in (False, True):
                run_len = shape[1] if cl else shape[2] * shape[3]
                vecs = sorted({width if run_len % width == 0 else 1, 1}, reverse=True)
                for small in (0, 1):
                    for vec in vecs:
                        act = ["leaky_relu", "relu", None][n % 3]
                        unbiased = shape[2] * shape[3] > 1 and n % 2 == 0
                        rho_on, lin, affine = n % 4 != 3, n % 5 == 1, n % 7 != 2
                        errs, ok_out, plan = run_case(lib, reference, shape, dtype, cl, act, unbiased, rho_on, lin,
                                                      sms=1 if small else 132, vec=vec, small=small, affine=affine)
                        n += 1
                        ok = ok_out and max(errs.values()) < TOL[dtype]
                        bad += not ok
                        if not ok or args.verbose:
                            print("OK  " if ok else "FAIL", "x".join(map(str, shape)), str(dtype)[6:],
                                  "nhwc" if cl else "nchw", f"vec={vec}", "small-plan" if small else "plan",
                                  f"act={act}", f"unbiased={unbiased}", f"rho={rho_on}", f"lin={lin}", f"affine={affine}",
                                  " ".join(f"{k}={v:.1e}" for k, v in errs.items()),
                                  f"reduce(splits,chunk,threads,tx,tiles)={plan[:5]} apply={plan[5:]}", flush=True)
    print(f"{n} cases, {bad} failed, {time.time() - t0:.0f}s")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
