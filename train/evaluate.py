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
here; see train/inception_features.py).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from . import feature_stats
from .atomic import AtomicWriteError, atomic_write
from .data import DataError, load_rgb, make_dataset

DEFAULT_SIZE = 256
OTHER_DOMAIN = {"A": "B", "B": "A"}
SOURCE_DOMAIN = {"AtoB": "A", "BtoA": "B"}


class EvaluateError(ValueError):
    """An option does not fit the checkpoint or the data."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.evaluate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--dataroot", required=True, help="folder holding testA/ and testB/")
    p.add_argument("--inception_weights", default=None,
                   help="torch-fidelity's InceptionV3 weights file (default: its cache; never downloaded)")
    p.add_argument("--direction", choices=("both", "AtoB", "BtoA"), default="both")
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


@dataclass(frozen=True)
class Row:
    direction: str        # AtoB / BtoA
    compared: str         # e.g. "G(testA) vs testB"
    images: tuple         # (n compared, n reference)
    fid: float
    kid_x100_mean: float
    kid_x100_std: float
    kid_subset_size: int  # after capping at the smaller set


# --- generators and size -------------------------------------------------------------------

def holds_both_directions(checkpoint) -> bool:
    from models.loading import UGATIT_GENERATOR_KEYS
    from models.training_checkpoint import TRAIN_FORMAT
    return isinstance(checkpoint, dict) and (
        checkpoint.get("format") == TRAIN_FORMAT or any(k in checkpoint for k in UGATIT_GENERATOR_KEYS.values()))


def load_generators(checkpoint, direction, norm_impl, device):
    """{"AtoB": net, "BtoA": net} restricted to what --direction asks for."""
    import models
    if direction == "both":
        if not holds_both_directions(checkpoint):
            raise EvaluateError("--checkpoint holds a single generator; pass --direction AtoB or BtoA to say "
                                "which way it translates")
        directions = ("AtoB", "BtoA")
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


# --- images and features ---------------------------------------------------------------------

def image_batches(paths, size, batch_size):
    """uint8 tensors (n, 3, size, size); unreadable images are skipped with a warning."""
    batch = []
    for path in paths:
        try:
            img = load_rgb(path)
        except Exception as error:  # PIL raises many types for damaged files
            print(f"warning: skipping unreadable image {path}: {type(error).__name__}: {error}", file=sys.stderr)
            continue
        array = np.asarray(img.resize((size, size), Image.BICUBIC), dtype=np.uint8)
        batch.append(torch.from_numpy(array.transpose(2, 0, 1).copy()))
        if len(batch) == batch_size:
            yield torch.stack(batch)
            batch = []
    if batch:
        yield torch.stack(batch)


@torch.no_grad()
def translate_uint8(net, images, device):
    """Translate uint8 images as train.translate does ([-1, 1] in, rounded to uint8 out)."""
    x = images.to(device=device, dtype=torch.float32) / 127.5 - 1.0
    y = net(x).float()
    return ((y + 1.0) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def features_of(paths, size, extract, batch_size, net=None, device="cpu"):
    """Features (n, d) of the images at `paths`, translated by `net` first when given."""
    chunks = []
    for images in image_batches(paths, size, batch_size):
        if net is not None:
            images = translate_uint8(net, images, device)
        chunks.append(np.asarray(extract(images), dtype=np.float64))
    features = np.concatenate(chunks) if chunks else np.zeros((0, 0))
    if len(features) < 2:
        raise DataError(f"FID / KID need at least 2 readable images; {os.path.dirname(paths[0])} has "
                        f"{len(features)} among {len(paths)} file(s)")
    return features


# --- metrics ---------------------------------------------------------------------------------

def compare(direction, compared, features, reference, kid_subsets, kid_subset_size, seed):
    kid = feature_stats.kid(features, reference, kid_subsets, kid_subset_size, seed)
    return Row(direction, compared, (len(features), len(reference)), feature_stats.fid(features, reference),
               100 * kid.mean, 100 * kid.std, kid.subset_size)


def evaluate(nets, test_paths, size, extract, *, batch_size=16, device="cpu",
             kid_subsets=feature_stats.KID_DEFAULT_SUBSETS, kid_subset_size=feature_stats.KID_DEFAULT_SUBSET_SIZE,
             seed=0, log=print):
    """Rows for each direction in `nets`: the translation, then the identity baseline.

    test_paths: {"A": [paths], "B": [paths]}; extract: uint8 (n, 3, H, W) -> features (n, d).
    """
    real = {}

    def real_features(domain):
        if domain not in real:
            log(f"features: test{domain} ({len(test_paths[domain])} images)")
            real[domain] = features_of(test_paths[domain], size, extract, batch_size)
        return real[domain]

    rows = []
    for direction, net in nets.items():
        source = SOURCE_DOMAIN[direction]
        target = OTHER_DOMAIN[source]
        name = "G" if direction == "AtoB" else "F"
        log(f"translating test{source} {direction} ({len(test_paths[source])} images)")
        translated = features_of(test_paths[source], size, extract, batch_size, net=net, device=device)
        reference = real_features(target)
        options = (kid_subsets, kid_subset_size, seed)
        rows.append(compare(direction, f"{name}(test{source}) vs test{target}", translated, reference, *options))
        rows.append(compare(direction, f"identity: test{source} vs test{target}", real_features(source),
                            reference, *options))
    return rows


def format_table(rows):
    header = f"{'direction':<9}  {'compared':<28}  {'images':>9}  {'FID':>9}  {'KID x100 (mean +- std)':>22}"
    lines = [header, "-" * len(header)]
    for r in rows:
        kid = f"{r.kid_x100_mean:.3f} +- {r.kid_x100_std:.3f}"
        lines.append(f"{r.direction:<9}  {r.compared:<28}  {r.images[0]:>4}/{r.images[1]:<4}  {r.fid:>9.3f}  {kid:>22}")
    return "\n".join(lines)


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
        raise FileNotFoundError(f"--checkpoint {args.checkpoint}: no such file")
    from models.checkpoint_file import read_checkpoint_file
    checkpoint = read_checkpoint_file(args.checkpoint)
    nets = load_generators(checkpoint, args.direction, args.norm_impl, device)
    return nets, evaluation_size(args.size, checkpoint, nets)


def run(args, feature_extractor=None, log=print):
    check_args(args)
    if feature_extractor is None:
        from .inception_features import InceptionFeatures, resolve_weights
        weights = resolve_weights(args.inception_weights)  # before any slow work
    test_paths = {d: make_dataset(os.path.join(args.dataroot, f"test{d}")) for d in ("A", "B")}
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


def main(argv=None, feature_extractor=None):
    """feature_extractor: replaces the Inception features (tests pass a small stand-in)."""
    args = build_parser().parse_args(argv)
    import models
    from .inception_features import InceptionWeightsError
    try:
        run(args, feature_extractor)
    except (EvaluateError, InceptionWeightsError, models.CheckpointError, DataError,
            FileNotFoundError, AtomicWriteError, ImportError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
