"""Per-call host cost of the fused layers against torch's own, at a tiny shape where the
arithmetic is negligible (what decides speed at batch 1 on a GPU).

    python -m cyclegan_ext.bench --overhead                 # CPU, 1 thread, (1, 8, 4, 4)
    python -m cyclegan_ext.bench --overhead --device cuda

Every case is timed round-robin with its torch counterpart in one process: each round runs
`calls` back-to-back calls of each implementation, and the figure is the median over rounds
of the microseconds per call. On CUDA the rounds are timed on the host with a synchronize at
each end, so the figure is host cost plus whatever kernel time the host cannot hide.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

import torch
from torch import nn

from . import reference
from .layers import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN

OVERHEAD_SHAPE = (1, 8, 4, 4)
MODES = ("no_grad", "fwd_bwd")


@dataclass
class OverheadCase:
    name: str
    ours: nn.Module
    torch_twin: nn.Module  # the layer torch users run today
    twin_name: str
    goal: float  # ours / torch must stay at or below this
    per_sample_params: bool = False


def overhead_cases(channels: int):
    """The layers, each with the torch layer it replaces (or the closest torch has)."""
    relu_twin = nn.Sequential(nn.InstanceNorm2d(channels), nn.ReLU())
    return [
        OverheadCase("instance_norm", FusedInstanceNorm2d(channels), nn.InstanceNorm2d(channels),
                     "nn.InstanceNorm2d", 1.0),
        OverheadCase("instance_norm+relu", FusedInstanceNorm2d(channels, activation="relu"), relu_twin,
                     "nn.InstanceNorm2d + nn.ReLU", 1.0),
        OverheadCase("instance_norm affine", FusedInstanceNorm2d(channels, affine=True),
                     nn.InstanceNorm2d(channels, affine=True), "nn.InstanceNorm2d(affine=True)", 1.0),
        OverheadCase("adalin", FusedAdaLIN(channels), nn.InstanceNorm2d(channels, affine=True),
                     "nn.InstanceNorm2d(affine=True)", 1.3, per_sample_params=True),
        OverheadCase("adalin vs adaILN", FusedAdaLIN(channels), reference.AdaLIN(channels),
                     "U-GAT-IT adaILN", 1.0, per_sample_params=True),
        OverheadCase("lin", FusedLIN(channels), nn.InstanceNorm2d(channels, affine=True),
                     "nn.InstanceNorm2d(affine=True)", 1.3),
        OverheadCase("lin vs ILN", FusedLIN(channels), reference.LIN(channels), "U-GAT-IT ILN", 1.0),
    ]


def _caller(module, x, per_sample, gamma, beta, mode, grad):
    args = (x, gamma, beta) if per_sample else (x,)
    if mode == "no_grad":
        def call():
            with torch.no_grad():
                module(*args)
    else:
        def call():
            module(*args).backward(grad)
    return call


def _time_round(call, calls: int, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        call()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / calls * 1e6


def measure_case(case: OverheadCase, mode: str, device, shape, rounds: int, calls: int):
    """(ours_us, torch_us): medians over rounds, the two timed alternately."""
    n, c = shape[0], shape[1]
    x = torch.randn(shape, device=device, requires_grad=(mode == "fwd_bwd"))
    grad = torch.randn(shape, device=device)
    gamma = torch.randn(n, c, device=device, requires_grad=(mode == "fwd_bwd"))
    beta = torch.randn(n, c, device=device, requires_grad=(mode == "fwd_bwd"))
    uses_gamma = case.per_sample_params and not isinstance(case.torch_twin, nn.InstanceNorm2d)
    ours = _caller(case.ours.to(device), x, case.per_sample_params, gamma, beta, mode, grad)
    twin = _caller(case.torch_twin.to(device), x, uses_gamma, gamma, beta, mode, grad)
    for call in (ours, twin):  # warm-up
        _time_round(call, calls, device)
    ours_us, twin_us = [], []
    for _ in range(rounds):
        ours_us.append(_time_round(ours, calls, device))
        twin_us.append(_time_round(twin, calls, device))
    return statistics.median(ours_us), statistics.median(twin_us)


def run_overhead(device, shape=OVERHEAD_SHAPE, rounds: int = 15, calls: int = 200, printer=print, on_row=None):
    """Prints the table; on_row(rows so far) is called after every row (e.g. to save them)."""
    printer(f"# per-call cost, microseconds, shape {tuple(shape)}, {rounds} rounds x {calls} calls, "
            f"torch threads {torch.get_num_threads()}")
    printer(f"{'layer':22s} {'mode':8s} {'ours':>8s} {'torch':>8s} {'ratio':>6s} {'goal':>6s}  torch layer")
    rows = []
    for case in overhead_cases(shape[1]):
        for mode in MODES:
            ours_us, twin_us = measure_case(case, mode, device, shape, rounds, calls)
            ratio = ours_us / twin_us
            verdict = "ok" if ratio <= case.goal else "OVER"
            printer(f"{case.name:22s} {mode:8s} {ours_us:8.1f} {twin_us:8.1f} {ratio:6.2f} "
                    f"{case.goal:5.1f}x  {case.twin_name} {verdict}")
            rows.append({"layer": case.name, "mode": mode, "ours_us": ours_us, "torch_us": twin_us,
                         "ratio": ratio, "goal": case.goal, "torch_layer": case.twin_name})
            if on_row is not None:
                on_row(rows)
    return rows
