"""End-to-end benchmark: whole CycleGAN training iterations and inference, three builds.

    python -m train.bench                                   # CPU defaults
    python -m train.bench --archs adalin --sizes 128 --reps 5 --json e2e.json

Each generator architecture is built three ways with identical convolution weights: our fused
layers, the eager reference layers, and a "free norm" stand-in (a per-channel affine map,
which costs almost nothing). The three are timed round-robin in one process; the free build
gives the limit, so the share of the removable normalization time that our kernels remove is

    removed = (t_eager - t_fused) / (t_eager - t_free)

Memory: the activation bytes autograd saves for the backward of a training iteration (what
the iteration holds at its peak beyond weights and optimiser state), per build; on the GPU
also how far one step raises torch.cuda.max_memory_allocated.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import time

import torch

import models
from .losses import GANLoss, cycle_loss, identity_loss

IMPLS = ("fused", "eager", "free")
DEFAULT_ARCHS = ("resnet_9blocks", "adalin", "ugatit_light")


class CycleGANSetup:
    """Two generators, two PatchGAN discriminators and their optimisers, as in CycleGAN."""

    def __init__(self, arch, norm_impl, img_size, device, batch_size, channels_last, weights=None):
        config = {"img_size": img_size} if arch.startswith("ugatit") else {}
        torch.manual_seed(0)
        self.G_A = models.build_generator(arch, norm_impl=norm_impl, **config)
        self.G_B = models.build_generator(arch, norm_impl=norm_impl, **config)
        self.D_A = models.NLayerDiscriminator(norm_impl=norm_impl)
        self.D_B = models.NLayerDiscriminator(norm_impl=norm_impl)
        self.nets = [self.G_A, self.G_B, self.D_A, self.D_B]
        if weights is not None:  # the same convolution weights in every build
            for net, state in zip(self.nets, weights):
                net.load_state_dict(state, strict=norm_impl != "free")
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        for net in self.nets:
            net.to(device=device, memory_format=fmt)
        g_params = list(self.G_A.parameters()) + list(self.G_B.parameters())
        d_params = list(self.D_A.parameters()) + list(self.D_B.parameters())
        self.opt_G = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999))
        self.opt_D = torch.optim.Adam(d_params, lr=2e-4, betas=(0.5, 0.999))
        self.gan = GANLoss("lsgan").to(device)
        gen = torch.Generator().manual_seed(1)
        shape = (batch_size, 3, img_size, img_size)
        self.real_A = torch.rand(shape, generator=gen).mul(2).sub(1).to(device).contiguous(memory_format=fmt)
        self.real_B = torch.rand(shape, generator=gen).mul(2).sub(1).to(device).contiguous(memory_format=fmt)

    def state_dicts(self):
        return [net.state_dict() for net in self.nets]

    def train_step(self):
        A, B = self.real_A, self.real_B
        for d in (self.D_A, self.D_B):
            d.requires_grad_(False)
        self.opt_G.zero_grad(set_to_none=True)
        fake_B, fake_A = self.G_A(A), self.G_B(B)
        loss_G = (self.gan(self.D_A(fake_B), True) + self.gan(self.D_B(fake_A), True)
                  + cycle_loss(self.G_B(fake_B), A, 10.0) + cycle_loss(self.G_A(fake_A), B, 10.0)
                  + identity_loss(self.G_A(B), B, 10.0, 0.5) + identity_loss(self.G_B(A), A, 10.0, 0.5))
        loss_G.backward()
        self.opt_G.step()
        for d in (self.D_A, self.D_B):
            d.requires_grad_(True)
        self.opt_D.zero_grad(set_to_none=True)
        loss_D = 0.5 * (self.gan(self.D_A(B), True) + self.gan(self.D_A(fake_B.detach()), False)
                        + self.gan(self.D_B(A), True) + self.gan(self.D_B(fake_A.detach()), False))
        loss_D.backward()
        self.opt_D.step()

    @torch.inference_mode()
    def infer_step(self):
        self.G_A(self.real_A)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_round_robin(steps: dict, device, warmup: int, reps: int) -> dict:
    """Median seconds of each named step, the steps interleaved so drift hits all alike."""
    for _ in range(warmup):
        for step in steps.values():
            step()
    times = {name: [] for name in steps}
    for _ in range(reps):
        for name, step in steps.items():
            synchronize(device)
            t0 = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) for name, ts in times.items()}


def build_setups(arch, img_size, device, batch_size, channels_last):
    fused = CycleGANSetup(arch, "fused", img_size, device, batch_size, channels_last)
    weights = fused.state_dicts()
    return {"fused": fused,
            "eager": CycleGANSetup(arch, "eager", img_size, device, batch_size, channels_last, weights),
            "free": CycleGANSetup(arch, "free", img_size, device, batch_size, channels_last, weights)}


def removed_share(t):
    removable = t["eager"] - t["free"]
    return (t["eager"] - t["fused"]) / removable if removable > 0 else float("nan")


def saved_activation_bytes(setup) -> int:
    """Bytes of activations autograd keeps for the backward of one generator step.

    That is what a training iteration holds at its peak on top of the weights and optimiser
    state, and what fused normalization saves: it keeps x and per-channel statistics where the
    eager layers keep several full-size intermediates. Each storage is counted once;
    parameters are left out (they are held anyway).
    """
    param_ptrs = {p.data_ptr() for net in setup.nets for p in net.parameters()}
    seen = {}

    def pack(t):
        ptr = t.untyped_storage().data_ptr()
        if ptr not in param_ptrs:
            seen[ptr] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        setup.train_step()
    return sum(seen.values())


def peak_step_bytes(setup, device) -> int | None:
    """On the GPU: how far one training step raises allocated memory above the steady state."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    setup.train_step()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m train.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--archs", default=",".join(DEFAULT_ARCHS), help=f"comma list of {models.GENERATOR_ARCHS}")
    p.add_argument("--sizes", default="128,256", help="comma list of image sizes")
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    device = torch.device(args.device)
    for arch in args.archs.split(","):
        if arch not in models.GENERATOR_ARCHS:
            p.error(f"unknown arch {arch!r}; expected one of {models.GENERATOR_ARCHS}")

    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"# {started:%Y-%m-%d %H:%M} UTC, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}")
    print(f"{'arch':15s} {'size':>4s} {'mode':5s} {'fused s':>8s} {'eager s':>8s} {'free s':>8s} "
          f"{'fused/eager':>11s} {'removed':>8s} {'saved MB fused':>14s} {'eager':>7s} {'ratio':>6s} "
          f"{'GPU peak MB fused':>17s} {'eager':>7s}",
          flush=True)
    results = []
    for arch in args.archs.split(","):
        for size in (int(s) for s in args.sizes.split(",")):
            setups = build_setups(arch, size, device, args.batch_size, args.channels_last)
            memory = {impl: saved_activation_bytes(setups[impl]) for impl in ("fused", "eager")}
            peaks = {impl: peak_step_bytes(setups[impl], device) for impl in ("fused", "eager")}
            for mode in ("train", "infer"):
                steps = {impl: getattr(s, f"{mode}_step") for impl, s in setups.items()}
                t = time_round_robin(steps, device, args.warmup, args.reps)
                row = {"arch": arch, "size": size, "mode": mode, **{f"{k}_s": v for k, v in t.items()},
                       "removed": removed_share(t)}
                mem = ""
                if mode == "train":
                    row.update(saved_fused=memory["fused"], saved_eager=memory["eager"],
                               saved_ratio=memory["fused"] / memory["eager"],
                               gpu_peak_fused=peaks["fused"], gpu_peak_eager=peaks["eager"])
                    mem = f"{memory['fused'] / 2**20:14.0f} {memory['eager'] / 2**20:7.0f} {row['saved_ratio']:6.2f}"
                    if peaks["fused"] is not None:
                        mem += f" {peaks['fused'] / 2**20:17.0f} {peaks['eager'] / 2**20:7.0f}"
                results.append(row)
                print(f"{arch:15s} {size:4d} {mode:5s} {t['fused']:8.3f} {t['eager']:8.3f} {t['free']:8.3f} "
                      f"{t['eager'] / t['fused']:10.2f}x {row['removed']:8.0%} {mem}", flush=True)
            del setups
    if args.json:
        tmp = f"{args.json}.tmp"
        with open(tmp, "w") as f:
            json.dump({"date": started.isoformat(), "device": str(device), "torch": torch.__version__,
                       "threads": torch.get_num_threads(), "results": results}, f, indent=1)
        os.replace(tmp, args.json)
    return results


if __name__ == "__main__":
    main()
