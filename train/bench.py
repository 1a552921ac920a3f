"""End-to-end benchmark: whole training iterations and inference, several builds.

    python -m train.bench                                   # CPU defaults
    python -m train.bench --config official --device cuda   # resnet_9blocks, ngf/ndf 64, batch 1, 128 and 256 px
    python -m train.bench --archs adalin --sizes 128 --reps 5 --json e2e.json
    python -m train.bench --quick                           # a tiny smoke run (checks the tool, not a figure)
    python -m train.bench --config official --sizes 256 --model cycle_gan,cut,fastcut   # the recipes side by side

An iteration is the training step of the --model recipe, by default cycle_gan
(train/recipes/cycle_gan/): both generator passes, identity and cycle losses, both
discriminators with image pools, two Adam steps; cut / fastcut (train/recipes/cut/): one
generator pass and one encoder pass, the discriminator, PatchNCE, three Adam steps (ResNet
generators only). Each generator architecture is built several ways with identical weights:

    fused           our fused normalization kernels
    eager           the eager reference layers (pure PyTorch)
    compiled        the eager layers under torch.compile (what PyTorch alone offers)
    fused_compiled  our fused kernels under torch.compile
    fused+save_memory   fused, each norm+activation(+pad) output rebuilt in the backward (--save_memory)
    fused+save_memory+grad_checkpoint   and each residual block run again in the backward
    free            a "free norm" stand-in (a per-channel affine map, which costs almost nothing)
    official        the official CycleGAN's layers and optimiser: torch.nn.InstanceNorm2d + in-place
                    ReLU / LeakyReLU, and torch.optim.Adam with its defaults (per parameter on the
                    CPU, foreach on CUDA) where our recipes use the fused Adam; for cut / fastcut
                    CUT's own iteration on those layers (train/bench_cut.py: four more encoder
                    passes for PatchNCE, each discriminator call on its own)

The builds are timed round-robin in one process. The free build gives the floor, so

    norm share of a build  = (t_build - t_free) / t_build   (the step's time spent normalizing)
    removed                = (t_eager - t_fused) / (t_eager - t_free)

Memory: the activation bytes autograd saves for the backward of a training iteration (what
the iteration holds at its peak beyond weights and optimiser state), for fused and eager;
on the GPU also how far one step raises torch.cuda.max_memory_allocated.

    python -m train.bench --count [--config official] [--sizes 256,512,1024] [--json F]

counts instead of timing, per build against the official one: the ATen operations one whole
iteration dispatches (below autograd, views left out: each is a kernel launch on a GPU; counted
at 32 px, the count does not depend on the image size), the
activation MB it saves for the backward at each --sizes (each storage once, parameters left
out; counted on the meta device, so any size is quick and the bytes are those of every
device), and the host milliseconds of one iteration at 32 px, ngf/ndf 8, one thread, where the
host's work (Python, dispatch, autograd) is what the time measures.
"""
from __future__ import annotations

import argparse
import datetime
import itertools
import json
import statistics
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode

import models

from .atomic import atomic_write
from .options import build_parser as training_parser
from .bench_cut import OfficialCUT, OfficialFastCUT
from .options import explicit_dests
from .recipes import RunContext, get_recipe
from .recipes.cut.recipe import RESNET_ARCH
from .recipes.cycle_gan import CycleGAN
from .run.compile import compile_recipe
from .run.precision import Precision

BUILDS = {  # name: (norm_impl, training options)
    "fused": ("fused", []), "eager": ("eager", []), "compiled": ("eager", ["--compile"]),
    "fused_compiled": ("fused", ["--compile"]), "free": ("free", []), "official": ("torch", []),
    "fused+save_memory": ("fused", ["--save_memory"]),
    "fused+save_memory+grad_checkpoint": ("fused", ["--save_memory", "--grad_checkpoint"]),
}
# --count: the reference first (the ratios' denominator)
COUNT_BUILDS = ("official", "fused", "eager", "fused+save_memory", "fused+save_memory+grad_checkpoint")
HOST_SIZE, HOST_WIDTH = 32, 8  # --count: host time at a size where the host's work dominates
DEFAULT_BUILDS = ("fused", "eager", "compiled", "free")
DEFAULT_ARCHS = ("resnet_9blocks", "adalin", "ugatit_light")
CONFIGS = {  # presets: options they set
    "official": {"archs": "resnet_9blocks", "ngf": 64, "ndf": 64, "batch_size": 1, "sizes": "128,256"},
}
QUICK = {"archs": "resnet_6blocks", "ngf": 8, "ndf": 8, "sizes": "32", "reps": 1, "warmup": 1}
MODELS = ("cycle_gan", "cut", "fastcut")  # the recipes the benchmark runs (--model)


def model_trains(model, arch) -> bool:
    """Whether --model `model` trains generator `arch` (CUT's recipes: ResNet generators only)."""
    return model == "cycle_gan" or RESNET_ARCH.fullmatch(arch) is not None


def recipe_options(model, argv):
    """The training options of argv for `model`: its recipe's defaults where argv gives none, as
    `python -m train` completes them (without the folder checks)."""
    parser = training_parser()
    opt = parser.parse_args(["--model", model, *argv])
    recipe, given = get_recipe(model), explicit_dests(parser, argv)
    for key, value in recipe.option_defaults.items():
        if key not in given:
            setattr(opt, key, value)
    recipe.derive_options(opt)
    return opt


class BenchSetup:
    """One build of the args.model recipe (cycle_gan without one) on fixed random images."""

    def __init__(self, arch, build, img_size, device, args, weights=None):
        norm_impl, options = BUILDS[build]
        model = getattr(args, "model", "cycle_gan")
        argv = ["--netG", arch, "--ngf", str(args.ngf), "--ndf", str(args.ndf), "--crop_size", str(img_size),
                "--batch_size", str(args.batch_size)]
        opt = recipe_options(model, argv + options + (["--channels_last"] if args.channels_last else []))
        opt.norm_impl = norm_impl  # "free" is a benchmark-only choice, not a training option
        torch.manual_seed(0)
        recipe = OFFICIAL[model] if build == "official" else get_recipe(model)
        self.recipe = recipe(opt, RunContext(device, Precision("none", device), steps_per_epoch=1))
        self.nets = list(self.recipe.networks().values())
        if weights is not None:  # the same weights in every build
            for net, state in zip(self.nets, weights):
                net.load_state_dict(state, strict=norm_impl != "free")
        self.mark_step = compile_recipe(self.recipe, args.compile_mode, device) if opt.compile else None
        fmt = torch.channels_last if args.channels_last else torch.contiguous_format
        gen = torch.Generator().manual_seed(1)
        shape = (args.batch_size, 3, img_size, img_size)
        self.real_A = torch.rand(shape, generator=gen).mul(2).sub(1).to(device).contiguous(memory_format=fmt)
        self.real_B = torch.rand(shape, generator=gen).mul(2).sub(1).to(device).contiguous(memory_format=fmt)

    def state_dicts(self):
        return [net.state_dict() for net in self.nets]

    def train_step(self):
        if self.mark_step is not None:
            self.mark_step()
        self.recipe.train_step(self.real_A, self.real_B)

    @torch.inference_mode()
    def infer_step(self):
        if self.mark_step is not None:
            self.mark_step()
        self.recipe.generators["AtoB"](self.real_A)


class OfficialCycleGAN(CycleGAN):
    """The official model's iteration, the reference of the benchmarks: each generator call on
    its own (six per iteration, two per discriminator step) and torch.optim.Adam with its default
    implementation. Built with norm_impl "torch", it is the official CycleGAN's step."""

    def __init__(self, opt, context):
        super().__init__(opt, context)
        self.optimizers = {"G": self.default_adam(self.generators), "D": self.default_adam(self.discriminators)}

    def default_adam(self, nets):
        params = itertools.chain(*(net.parameters() for net in nets.values()))
        return torch.optim.Adam(params, lr=self.opt.lr, betas=(self.opt.beta1, 0.999))

    def forward(self):
        self.fake_B = self.G_A(self.real_A)
        self.rec_A = self.G_B(self.fake_B)
        self.fake_A = self.G_B(self.real_B)
        self.rec_B = self.G_A(self.fake_A)
        if self.opt.lambda_identity > 0:
            self.idt_A, self.idt_B = self.G_A(self.real_B), self.G_B(self.real_A)

    def backward_D_basic(self, net_D, real, fake):
        with self.precision.autocast():
            loss = (self.gan_loss(net_D(real), True) + self.gan_loss(net_D(fake), False)) * 0.5
        self.precision.backward(loss)
        return loss


OFFICIAL = {"cycle_gan": OfficialCycleGAN, "cut": OfficialCUT, "fastcut": OfficialFastCUT}


class OpCounter(TorchDispatchMode):
    """Counts the ATen operations dispatched below autograd, views left out."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if not func.is_view:
            self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_iteration(setup) -> int:
    setup.train_step()  # the first step creates the optimiser states
    with OpCounter() as counter:
        setup.train_step()
    return counter.count


def host_ms_per_iteration(arch, builds, args, reps) -> dict:
    """{build: median ms of one iteration} at HOST_SIZE px, ngf / ndf HOST_WIDTH, one CPU thread,
    the builds interleaved."""
    tiny = argparse.Namespace(**{**vars(args), "ngf": HOST_WIDTH, "ndf": HOST_WIDTH})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        steps = {b: BenchSetup(arch, b, HOST_SIZE, torch.device("cpu"), tiny).train_step for b in builds}
        times = time_round_robin(steps, torch.device("cpu"), warmup=2, reps=max(reps, 5))
        return {b: 1e3 * t for b, t in times.items()}
    finally:
        torch.set_num_threads(threads)


def count_rows(arch, args) -> list:
    """One row per COUNT_BUILDS build: ops, saved MB per size, host ms; ratios to official."""
    rows = []
    host_ms = host_ms_per_iteration(arch, COUNT_BUILDS, args, args.reps)
    for build in COUNT_BUILDS:
        ops = ops_per_iteration(BenchSetup(arch, build, HOST_SIZE, torch.device(args.device), args))
        saved = {size: saved_activation_bytes(BenchSetup(arch, build, size, torch.device("meta"), args)) / 2**20
                 for size in args.sizes}
        rows.append({"model": args.model, "build": build, "arch": arch, "ops_per_iteration": ops,
                     "saved_mb": saved[args.sizes[-1]],
                     "saved_mb_by_size": saved, "host_ms": host_ms[build]})
    reference = rows[0]
    for row in rows:
        row["ops_ratio"] = row["ops_per_iteration"] / reference["ops_per_iteration"]
        row["saved_ratio"] = row["saved_mb"] / reference["saved_mb"]
        row["host_ratio"] = row["host_ms"] / reference["host_ms"]
    return rows


def format_count_row(row, sizes):
    saved = " ".join(f"{row['saved_mb_by_size'][s]:9.0f}" for s in sizes)
    return (f"{row['model']:9s} {row['arch']:15s} {row['build']:34s} {row['ops_per_iteration']:8d} "
            f"{row['ops_ratio']:6.2f}x "
            f"{saved} {row['saved_ratio']:6.2f}x {row['host_ms']:8.1f} {row['host_ratio']:6.2f}x")


def count_main(args, started):
    print(f"# {started:%Y-%m-%d %H:%M} UTC, ops counted on {args.device} at {HOST_SIZE} px, saved MB on the meta device, host ms at "
          f"{HOST_SIZE} px / ngf {HOST_WIDTH} / 1 thread; torch {torch.__version__}, batch {args.batch_size}, "
          f"ngf {args.ngf}, ndf {args.ndf}")
    print(f"{'model':9s} {'arch':15s} {'build':34s} {'ops':>8s} {'ratio':>7s} "
          + " ".join(f"{f'MB {s}px':>9s}" for s in args.sizes) + f" {'ratio':>7s} {'host ms':>8s} {'ratio':>7s}")
    rows = []
    for model_args, arch in model_archs(args):
        for row in count_rows(arch, model_args):
            rows.append(row)
            print(format_count_row(row, args.sizes), flush=True)
    if args.json:
        report = {"date": started.isoformat(), "torch": torch.__version__, "batch_size": args.batch_size,
                  "ngf": args.ngf, "ndf": args.ndf, "sizes": args.sizes, "results": rows}
        atomic_write(args.json, lambda f: f.write(json.dumps(report, indent=1).encode()), what="results file")
    return rows


def model_archs(args):
    """(args for one --model, arch) for every model and every arch it trains, in order."""
    for model in args.models:
        model_args = argparse.Namespace(**{**vars(args), "model": model})
        for arch in args.archs:
            if model_trains(model, arch):
                yield model_args, arch


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


def build_setups(arch, img_size, device, args):
    """Every requested build, with the weights of the first one that has real norm layers
    (the free build's parameters differ: it takes the convolution weights only)."""
    setups, weights = {}, None
    for build in sorted(args.builds, key=lambda b: b == "free"):
        setups[build] = BenchSetup(arch, build, img_size, device, args, weights)
        weights = weights or setups[build].state_dicts()
    return {b: setups[b] for b in args.builds}


def norm_shares(t):
    """Share of each build's step spent in normalization, from the free build's floor."""
    if "free" not in t:
        return {}
    return {b: (t[b] - t["free"]) / t[b] for b in t if b != "free" and t[b] > 0}


def removed_share(t):
    if not {"fused", "eager", "free"} <= set(t):
        return float("nan")
    removable = t["eager"] - t["free"]
    return (t["eager"] - t["fused"]) / removable if removable > 0 else float("nan")


def saved_activation_bytes(setup) -> int:
    """The most activation bytes autograd keeps at once for a backward in one training iteration.

    A step saves tensors during a forward and frees them in the backward that follows; the
    iteration's peak is the largest such set (the generator step's: every generator call and
    the discriminators judging the fakes). That is what it holds on top of the weights and
    optimiser state, and what fused normalization and save_memory reduce. Each storage is
    counted once, parameters are left out (they are held anyway), and what a backward itself
    recomputes (save_memory, grad_checkpoint) is transient and left out too.
    """
    phases = [{}]  # storage -> bytes, one dict per forward -> backward cycle

    def params():  # looked up at each save: CUT's netF is built during the first step
        return {_storage_id(p) for net in setup.recipe.networks().values() for p in net.parameters()}

    def pack(t):
        if torch._C._current_graph_task_id() == -1 and _storage_id(t) not in params():
            if phases[-1] is None:
                phases[-1] = {}
            phases[-1][_storage_id(t)] = t.untyped_storage().nbytes()
        return t

    def unpack(t):  # a backward runs: what comes next is saved by another forward
        if phases[-1] is not None:
            phases.append(None)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
        setup.train_step()
    return max(sum(phase.values()) for phase in phases if phase)


def _storage_id(t):
    """Which storage t views: the storage's own address, which, unlike data_ptr(), also tells
    storages apart on the meta device (where the byte counts can be had for any size)."""
    return t.untyped_storage()._cdata


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


def memory_row(setups, device):
    """Saved activation bytes (and on the GPU the peak of one step) of every build that runs
    uncompiled (a compiled graph keeps its intermediates inside it); saved_ratio is fused /
    eager where both ran."""
    builds = [b for b in setups if "--compile" not in BUILDS[b][1]]
    row = {f"saved_{b}": saved_activation_bytes(setups[b]) for b in builds}
    row.update({f"gpu_peak_{b}": peak_step_bytes(setups[b], device) for b in builds})
    if {"saved_fused", "saved_eager"} <= set(row):
        row["saved_ratio"] = row["saved_fused"] / row["saved_eager"]
    return row


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m train.bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--config", choices=tuple(CONFIGS), default=None,
                   help="preset: official = resnet_9blocks, ngf 64, ndf 64, batch 1, sizes 128,256 (the "
                        "official CycleGAN configuration); explicit options still win")
    p.add_argument("--model", default="cycle_gan",
                   help=f"comma list of the recipes to run, of {MODELS}; each runs the --archs it trains "
                        "(cut, fastcut: the ResNet ones), one after the other")
    p.add_argument("--archs", default=",".join(DEFAULT_ARCHS), help=f"comma list of {models.GENERATOR_ARCHS}")
    p.add_argument("--builds", default=",".join(DEFAULT_BUILDS), help=f"comma list of {tuple(BUILDS)}")
    p.add_argument("--sizes", default="128,256", help="comma list of image sizes (multiples of 4)")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--ndf", type=int, default=64)
    p.add_argument("--batch_size", type=int, default=1)
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--compile_mode", default=None,
                   help="torch.compile mode of the compiled builds (default: reduce-overhead on CUDA, default on CPU)")
    p.add_argument("--modes", default="train,infer", help="comma list of train, infer")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--warmup", type=int, default=1, help="untimed rounds first (compiled builds compile here)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: resnet_6blocks, ngf/ndf 8, 32 px, 1 warmup + 1 repetition")
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    p.add_argument("--count", action="store_true",
                   help="count instead of timing: ATen ops per iteration, saved activation MB per --sizes, host "
                        "ms at 32 px; builds official, fused, eager (see above)")
    args = p.parse_args(argv)
    _apply_presets(p, args, argv)
    _check(p, args)
    return args


def _apply_presets(parser, args, argv):
    given = {tok.split("=", 1)[0] for tok in (sys.argv[1:] if argv is None else argv)}
    presets = dict(CONFIGS.get(args.config, {}))
    if args.quick:
        presets.update(QUICK)
    for key, value in presets.items():
        if f"--{key}" not in given:
            setattr(args, key, value)
    args.models, args.archs, args.builds = args.model.split(","), args.archs.split(","), args.builds.split(",")
    args.sizes, args.modes = [int(s) for s in str(args.sizes).split(",")], args.modes.split(",")


def _check(parser, args):
    for model in args.models:
        if model not in MODELS:
            parser.error(f"unknown --model {model!r}; expected one of {MODELS}")
        if not any(model_trains(model, arch) for arch in args.archs):
            parser.error(f"--model {model} trains none of --archs {','.join(args.archs)}; it takes resnet_9blocks "
                         "or resnet_6blocks")
    for arch in args.archs:
        if arch not in models.GENERATOR_ARCHS:
            parser.error(f"unknown arch {arch!r}; expected one of {models.GENERATOR_ARCHS}")
    for build in args.builds:
        if build not in BUILDS:
            parser.error(f"unknown build {build!r}; expected one of {tuple(BUILDS)}")
    for mode in args.modes:
        if mode not in ("train", "infer"):
            parser.error(f"unknown mode {mode!r}; expected train or infer")
    if any(s < 4 or s % 4 for s in args.sizes):
        parser.error(f"--sizes must be multiples of 4, got {args.sizes}")
    if min(args.reps, args.batch_size, args.ngf, args.ndf) < 1 or args.warmup < 0:
        parser.error("--reps, --batch_size, --ngf, --ndf must be >= 1 and --warmup >= 0")


def format_row(row, builds):
    times = " ".join(f"{row.get(f'{b}_s', float('nan')):{len(b) + 2}.4f}" for b in builds)
    shares = " ".join(_percent(row["norm_share"].get(b, float("nan")), len(b) + 5) for b in builds if b != "free")
    text = (f"{row['model']:9s} {row['arch']:15s} {row['size']:4d} {row['mode']:5s} {times}   {shares} "
            f"{_percent(row['removed'], 8)}")
    if "saved_ratio" in row:
        text += (f" {row['saved_fused'] / 2**20:14.0f} {row['saved_eager'] / 2**20:7.0f} {row['saved_ratio']:6.2f}")
        if row["gpu_peak_fused"] is not None:
            text += f" {row['gpu_peak_fused'] / 2**20:17.0f} {row['gpu_peak_eager'] / 2**20:7.0f}"
    others = [k for k in row if k.startswith(("saved_", "gpu_peak_")) and k.split("_", 2)[-1] not in ("fused", "eager")
              and k != "saved_ratio" and row[k] is not None]
    text += "".join(f"  {k} {row[k] / 2**20:.0f} MB" for k in others)
    return text


def _percent(x, width):
    """x as a percentage, or "-" where it is not defined (a build it needs was not run)."""
    return f"{'-':>{width}s}" if x != x else f"{x:{width}.0%}"


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    started = datetime.datetime.now(datetime.timezone.utc)
    if args.count:
        return count_main(args, started)
    print(f"# {started:%Y-%m-%d %H:%M} UTC, device {device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, batch {args.batch_size}, ngf {args.ngf}, ndf {args.ndf}, "
          f"median of {args.reps} after {args.warmup} warmup")
    shared = [b for b in args.builds if b != "free"]
    print(f"{'model':9s} {'arch':15s} {'size':>4s} {'mode':5s} " + " ".join(f"{b + ' s':>{len(b) + 2}s}" for b in args.builds)
          + "   " + " ".join(f"{'norm ' + b:>{len(b) + 5}s}" for b in shared)
          + f" {'removed':>8s} {'saved MB fused':>14s} {'eager':>7s} {'ratio':>6s} {'GPU peak MB fused':>17s} "
          f"{'eager':>7s}", flush=True)
    results = []
    for model_args, arch in model_archs(args):
        for size in args.sizes:
            setups = build_setups(arch, size, device, model_args)
            memory = memory_row(setups, device) if "train" in args.modes else {}
            for mode in args.modes:
                steps = {b: getattr(s, f"{mode}_step") for b, s in setups.items()}
                t = time_round_robin(steps, device, args.warmup, args.reps)
                row = {"model": model_args.model, "arch": arch, "size": size, "mode": mode,
                       **{f"{b}_s": v for b, v in t.items()},
                       "norm_share": norm_shares(t), "removed": removed_share(t),
                       **(memory if mode == "train" else {})}
                results.append(row)
                print(format_row(row, args.builds), flush=True)
            del setups
    if args.json:
        report = {"date": started.isoformat(), "device": str(device), "torch": torch.__version__,
                  "threads": torch.get_num_threads(), "batch_size": args.batch_size, "ngf": args.ngf,
                  "ndf": args.ndf, "builds": args.builds, "results": results}
        atomic_write(args.json, lambda f: f.write(json.dumps(report, indent=1).encode()), what="results file")
    return results


if __name__ == "__main__":
    main()
