"""python -m train.onnx_export --bench: the median CPU latency of one translation in PyTorch (the
fused and the eager network) and in onnxruntime, side by side.

    python -m train.onnx_export --bench [--checkpoint CKPT | --netG adalin --ngf 64]
        [--size 256] [--runs 20] [--threads N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from .cli import UserError, command
from .export.onnx import (DEFAULT_SIZE, INPUT_NAME, OUTPUT_NAME, checked_model, export_size, load_references,
                          onnx_session)


def median_ms(run, runs, warmup=3):
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def bench(references, size, runs, threads, log=print):
    """Median CPU latency (ms) of one size x size translation: each PyTorch network, onnxruntime."""
    torch.set_num_threads(threads)
    model_bytes, report = checked_model(references, size, dynamic=False)
    session = onnx_session(model_bytes, threads)
    x = torch.rand(1, 3, size, size) * 2 - 1
    timings = {}
    with torch.inference_mode():
        for name, net in references.items():
            timings[f"PyTorch ({name})"] = median_ms(lambda: net(x), runs)
    feed = {INPUT_NAME: x.numpy()}
    timings["onnxruntime"] = median_ms(lambda: session.run([OUTPUT_NAME], feed), runs)
    log(f"{size}x{size} translation, batch 1, CPU, {threads} thread(s), median of {runs} runs after 3 warm-up runs")
    for name, ms in timings.items():
        log(f"  {name:<20} {ms:10.1f} ms")
    log("  max |onnxruntime - PyTorch|: " + ", ".join(f"{k} {v:.2e}" for k, v in report.checks[0]["max_abs_diff"].items()))
    return timings, report


def build_bench_parser():
    p = argparse.ArgumentParser(prog="python -m train.onnx_export",
                                description="PyTorch vs onnxruntime CPU latency of one translation.")
    p.add_argument("--bench", action="store_true", required=True)
    p.add_argument("--checkpoint", default=None, help="a generator checkpoint (default: a freshly initialised --netG)")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB")
    p.add_argument("--netG", default="adalin", help="adalin, resnet_9blocks, resnet_6blocks, ugatit, ugatit_light")
    p.add_argument("--ngf", type=int, default=64)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    return p


def fresh_references(arch, ngf, size):
    import models
    config = {"ngf": ngf}
    if arch.startswith("ugatit"):
        config["img_size"] = size
    torch.manual_seed(0)
    eager = models.build_generator(arch, norm_impl="eager", **config).eval()
    references = {"eager": eager}
    try:
        fused = models.build_generator(arch, norm_impl="fused", **config).eval()
        fused.load_state_dict(eager.state_dict())
        references["fused"] = fused
    except ImportError:
        pass
    return references


@command
def main(argv=None):
    args = build_bench_parser().parse_args(argv)
    if args.runs < 1 or args.threads < 1:
        raise UserError("--runs and --threads must be >= 1")
    references = (load_references(args.checkpoint, args.direction) if args.checkpoint
                  else fresh_references(args.netG, args.ngf, args.size))
    bench(references, export_size(references["eager"], args.size, False), args.runs, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
