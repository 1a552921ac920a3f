"""FID and KID of translators on a test split: images read and resized, translated as
train.translate does, turned into Inception features, and compared with the other domain's real
images next to the identity baseline. `python -m train.evaluate` and the run's FID tracking both
use `evaluate`."""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..data import DataError, load_rgb
from . import feature_stats

OTHER_DOMAIN = {"A": "B", "B": "A"}
SOURCE_DOMAIN = {"AtoB": "A", "BtoA": "B"}


@dataclass(frozen=True)
class Row:
    direction: str        # AtoB / BtoA
    compared: str         # e.g. "G(testA) vs testB"
    images: tuple         # (n compared, n reference)
    fid: float
    kid_x100_mean: float
    kid_x100_std: float
    kid_subset_size: int  # after capping at the smaller set


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
