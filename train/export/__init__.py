"""python -m train.export: turn a training checkpoint into a file another program reads.

    python -m train.export --checkpoint RUN/latest.pt --ugatit_params OUT.pt
        U-GAT-IT's params file (znxlwm/UGATIT-pytorch: genA2B, genB2A, disGA, disGB, disLA,
        disLB state_dicts, loadable with strict=True by its networks and by
        `python -m train --model ugatit --init_from OUT.pt`), from a --model ugatit run.
    python -m train.export --checkpoint CKPT --onnx OUT.onnx [--direction AtoB|BtoA] [--size N | --dynamic]
        an ONNX model of one generator (any checkpoint models.load_generator reads), checked in
        onnxruntime against PyTorch before it is written (train/export/onnx.py).

The output is written atomically and an existing file is kept unless --overwrite is given.
Errors are one line on stderr, exit status 2.
"""
import argparse
import os

import torch

from models.checkpoint_file import describe_path
from models.training_checkpoint import read_training_checkpoint
from models.ugatit_params import ugatit_params_from_training_checkpoint

from ..atomic import atomic_write
from ..cli import UserError, command
from .onnx import DEFAULT_TOLERANCE, export_from_checkpoint


class ExportError(UserError, ValueError):
    """The export cannot be done as asked (output exists, output is the checkpoint itself)."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.export",
                                description="Export a training checkpoint (checkpoints/NAME/latest.pt) "
                                            "to another program's format.")
    p.add_argument("--checkpoint", required=True, help="a training checkpoint written by python -m train")
    formats = p.add_mutually_exclusive_group(required=True)
    formats.add_argument("--ugatit_params", metavar="OUT.pt",
                         help="write U-GAT-IT's params file (six state_dicts) from a --model ugatit run")
    formats.add_argument("--onnx", metavar="OUT.onnx", help="write an ONNX model of one generator")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB", help="(--onnx) which generator")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--size", type=int, default=None, help="(--onnx) fixed input size N x N (default 256)")
    size.add_argument("--dynamic", action="store_true",
                      help="(--onnx) any height and width >= 8 (the graph pads to multiples of 4 and crops back)")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help="(--onnx) largest max |onnxruntime - PyTorch| accepted before writing")
    p.add_argument("--overwrite", action="store_true", help="replace OUT if it exists")
    return p


def check_output_path(out_path, checkpoint_path, overwrite: bool) -> None:
    """ExportError when `out_path` is the checkpoint itself, or exists and overwrite is False."""
    if os.path.exists(out_path) and os.path.exists(checkpoint_path) and os.path.samefile(out_path, checkpoint_path):
        raise ExportError(f"the output {out_path} is the checkpoint itself; choose another path")
    if os.path.exists(out_path) and not overwrite:
        raise ExportError(f"{out_path} already exists; pass --overwrite to replace it")


def export_ugatit_params(checkpoint_path, out_path, overwrite: bool = False) -> str:
    """Write U-GAT-IT's params file for a --model ugatit training checkpoint; returns out_path."""
    check_output_path(out_path, checkpoint_path, overwrite)
    checkpoint = read_training_checkpoint(checkpoint_path)
    params = ugatit_params_from_training_checkpoint(checkpoint, describe_path(checkpoint_path))
    atomic_write(out_path, lambda f: torch.save(params, f), what="U-GAT-IT params file")
    return os.fspath(out_path)


def export_onnx(opt):
    check_output_path(opt.onnx, opt.checkpoint, opt.overwrite)
    export_from_checkpoint(opt.checkpoint, opt.onnx, opt.direction, opt.size, opt.dynamic, opt.tolerance)


@command
def main(argv=None) -> int:
    opt = build_parser().parse_args(argv)
    if opt.onnx:
        export_onnx(opt)
        return 0
    out = export_ugatit_params(opt.checkpoint, opt.ugatit_params, opt.overwrite)
    print(f"wrote {out} (U-GAT-IT params: genA2B, genB2A, disGA, disGB, disLA, disLB)")
    return 0
