"""python -m train.evaluate: FID and KID of a trained translator on a dataset's test split.

    python -m train.evaluate --checkpoint CKPT --dataroot DIR [--inception_weights PATH]
        [--direction both|AtoB|BtoA] [--size N] [--json OUT] [--overwrite]

Translates DATAROOT/testA with the A->B generator and DATAROOT/testB with the B->A generator
and compares them with the real testB / testA: FID, and KID x100 (mean +- std over random
subsets, as the U-GAT-IT paper reports it). The identity baseline (the untranslated test
images against the other domain) comes with each direction: a translator worth keeping
scores well below it. Every image (real or translated) is resized to N x N first; N defaults
to the training crop size stored in this project's checkpoints, U-GAT-IT's img_size for its
full generator, else 256.

CKPT is anything models.load_generator reads. A file holding one generator (an official
latest_net_G_A.pth, a single U-GAT-IT generator) needs --direction to say which way it goes.
The Inception features come from torch-fidelity and need its weights file (never downloaded
here; see train/evaluation/inception.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

import torch

from .atomic import atomic_write
from .cli import MissingFileError, UserError, command
from .data import image_paths
from .evaluation import feature_stats
from .evaluation.fid_kid import evaluate, format_table

DEFAULT_SIZE = 256


class EvaluateError(UserError, ValueError):
    """An option does not fit the checkpoint or the data."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataroot", required=True, help="folder holding testA/ and testB/")
    p.add_argument("--inception_weights", default=None,
                   help="torch-fidelity's InceptionV3 weights file (default: its cache; never downloaded)")
    p.add_argument("--direction", choices=("both", "AtoB", "BtoA"), default="both",
                   help="both: every direction the checkpoint holds (AtoB alone for CUT's training checkpoints)")
    p.add_argument("--size", type=int, default=None, help="resize every image to N x N (multiple of 4)")
    p.add_argument("--kid_subsets", type=int, default=feature_stats.KID_DEFAULT_SUBSETS)
    p.add_argument("--kid_subset_size", type=int, default=feature_stats.KID_DEFAULT_SUBSET_SIZE,
                   help="capped at the smaller image set")
    p.add_argument("--seed", type=int, default=0, help="seed of the KID subsets")
    p.add_argument("--batch_size", type=int, default=16)
    p.add_argument("--device", default=None, help="cuda when available, else cpu")
    p.add_argument("--norm_impl", choices=("fused", "eager"), default="fused")
    p.add_argument("--json", default=None, help="also write the results here (atomically)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --json file")
    return p


# --- generators and size -------------------------------------------------------------------

def held_directions(checkpoint) -> tuple:
    """The directions a checkpoint names its generators by: both for U-GAT-IT's, those of a
    training checkpoint (AtoB alone for CUT's), none for a file holding a single generator."""
    from models.loading import DIRECTIONS, UGATIT_GENERATOR_KEYS
    from models.training_checkpoint import TRAIN_FORMAT
    if not isinstance(checkpoint, dict):
        return ()
    if checkpoint.get("format") == TRAIN_FORMAT:
        generators = checkpoint.get("generators")
        return tuple(d for d in DIRECTIONS if isinstance(generators, dict) and d in generators) or DIRECTIONS
    return DIRECTIONS if any(k in checkpoint for k in UGATIT_GENERATOR_KEYS.values()) else ()


def load_generators(checkpoint, direction, norm_impl, device):
    """{"AtoB": net, "BtoA": net} restricted to what --direction asks for ("both": every
    direction the checkpoint holds)."""
    import models
    if direction == "both":
        directions = held_directions(checkpoint)
        if not directions:
            raise EvaluateError("--checkpoint holds a single generator; pass --direction AtoB or BtoA to say "
                                "which way it translates")
    else:
        directions = (direction,)
    return {d: models.load_generator(checkpoint, direction=d, norm_impl=norm_impl, map_location=device)
            for d in directions}


def evaluation_size(requested, checkpoint, nets):
    fixed = {getattr(net, "fixed_input_size", None) for net in nets.values()} - {None}
    if fixed:
        (size,) = fixed
        if requested is not None and requested != size:
            raise EvaluateError(f"--size {requested}: this U-GAT-IT generator only runs at {size}x{size}")
        return size
    if requested is not None:
        return requested
    options = checkpoint.get("opt") if isinstance(checkpoint, dict) else None
    if isinstance(options, dict) and isinstance(options.get("crop_size"), int):
        return options["crop_size"]
    return DEFAULT_SIZE


# --- command ---------------------------------------------------------------------------------

def check_args(args):
    if args.size is not None and (args.size < 8 or args.size % 4):
        raise EvaluateError(f"--size must be a multiple of 4 and at least 8, got {args.size}")
    if args.batch_size < 1:
        raise EvaluateError(f"--batch_size must be >= 1, got {args.batch_size}")
    if args.kid_subsets < 1 or args.kid_subset_size < 2:
        raise EvaluateError(f"--kid_subsets must be >= 1 and --kid_subset_size >= 2, got "
                            f"{args.kid_subsets} and {args.kid_subset_size}")
    if args.json and os.path.exists(args.json) and not args.overwrite:
        raise EvaluateError(f"--json {args.json} already exists; pass --overwrite to replace it")


def load_translator(args, device):
    """(generators by direction, evaluation size) from --checkpoint."""
    if not os.path.isfile(args.checkpoint):
        raise MissingFileError(f"--checkpoint {args.checkpoint}: no such file")
    from models.checkpoint_file import read_checkpoint_file
    checkpoint = read_checkpoint_file(args.checkpoint)
    nets = load_generators(checkpoint, args.direction, args.norm_impl, device)
    return nets, evaluation_size(args.size, checkpoint, nets)


def run(args, feature_extractor=None, log=print):
    check_args(args)
    if feature_extractor is None:
        from .evaluation.inception import InceptionFeatures, resolve_weights
        weights = resolve_weights(args.inception_weights)  # before any slow work
    test_paths = {d: image_paths(os.path.join(args.dataroot, f"test{d}")) for d in ("A", "B")}
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    nets, size = load_translator(args, device)
    if feature_extractor is None:
        extract, extractor_name = InceptionFeatures(weights, device), "inception-v3 pool3 (torch-fidelity)"
    else:
        extract, extractor_name = feature_extractor, getattr(feature_extractor, "__name__", "custom")
    rows = evaluate(nets, test_paths, size, extract, batch_size=args.batch_size, device=device,
                    kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, seed=args.seed,
                    log=lambda message: print(message, file=sys.stderr))
    log(f"{args.checkpoint} on {args.dataroot}, {size}x{size}, features: {extractor_name}")
    log(format_table(rows))
    if args.json:
        report = {"checkpoint": args.checkpoint, "dataroot": args.dataroot, "size": size, "features": extractor_name,
                  "kid_subsets": args.kid_subsets, "kid_subset_size_requested": args.kid_subset_size,
                  "seed": args.seed, "results": [asdict(r) for r in rows]}
        atomic_write(args.json, lambda f: f.write(json.dumps(report, indent=2).encode() + b"\n"), what="results file")
        log(f"wrote {args.json}")
    return rows


@command
def main(argv=None, feature_extractor=None):
    """feature_extractor: replaces the Inception features (tests pass a small stand-in)."""
    run(build_parser().parse_args(argv), feature_extractor)
    return 0


if __name__ == "__main__":
    sys.exit(main())
