"""python -m train.translate: translate images with a trained generator.

    python -m train.translate --checkpoint CKPT --input FILE_OR_DIR --output DIR
        [--direction AtoB|BtoA] [--size N] [--device cuda|cpu] [--batch_size 8] [--overwrite]

CKPT is anything models.load_generator reads: this project's training checkpoint
(checkpoints/NAME/latest.pt, both directions) or generator payload, an official CycleGAN
generator state_dict (latest_net_G_A.pth), a U-GAT-IT generator state_dict or checkpoint
(genA2B / genB2A). Images keep their size rounded to a multiple of 4 (the official
`--preprocess none`), or are resized to N x N with --size N (U-GAT-IT's full generator only
works at its training size, which is used automatically). Outputs are PNGs named after the
inputs (folder structure kept); existing outputs are never overwritten without --overwrite.
"""
import argparse
import os
import sys

import torch
from PIL import Image

from .checkpoint import UnsafeCheckpointError, safe_load
from .data import IMG_EXTENSIONS, load_rgb, make_power_2, pil_to_tensor
from .report import to_uint8


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.translate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="an image file or a folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="folder for the translated PNGs")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB")
    p.add_argument("--size", type=int, default=None, help="resize to N x N (N rounded to a multiple of 4)")
    p.add_argument("--device", default=None, help="cuda when available, else cpu")
    p.add_argument("--batch_size", type=int, default=8)
    p.add_argument("--norm_impl", choices=("fused", "eager"), default="fused")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files")
    p.add_argument("--no_progress", action="store_true")
    return p


def list_inputs(path):
    """[(input path, output relative name)]."""
    if os.path.isfile(path):
        return [(path, os.path.splitext(os.path.basename(path))[0] + ".png")]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input not found: {path}")
    items, taken = [], set()
    for root, _, names in sorted(os.walk(path)):
        for name in sorted(names):
            if not name.endswith(IMG_EXTENSIONS):
                continue
            rel_dir = os.path.relpath(root, path)
            stem, ext = os.path.splitext(name)
            out = os.path.normpath(os.path.join(rel_dir, stem + ".png"))
            if out in taken:  # a.jpg and a.png in one folder
                out = os.path.normpath(os.path.join(rel_dir, f"{stem}_{ext.lstrip('.').lower()}.png"))
            taken.add(out)
            items.append((os.path.join(root, name), out))
    if not items:
        raise FileNotFoundError(f"no images in {path}")
    return items


def load_network(checkpoint, direction, norm_impl, device):
    """Read the file with weights_only=True (nothing in it runs), then build the generator."""
    import models
    state = safe_load(checkpoint, map_location="cpu")
    return models.load_generator(state, direction=direction, norm_impl=norm_impl, map_location=device)


def fixed_size(net, size):
    """U-GAT-IT's full generator only runs at the size it was built for."""
    cfg = getattr(net, "config", {})
    if cfg.get("light") is False and "img_size" in cfg:
        if size is not None and size != cfg["img_size"]:
            print(f"note: this U-GAT-IT generator works at {cfg['img_size']}x{cfg['img_size']} only; "
                  f"ignoring --size {size}", file=sys.stderr)
        return cfg["img_size"]
    return size


def prepare(img, size):
    if size is not None:
        n = max(4, int(round(size / 4)) * 4)
        img = img.resize((n, n), Image.BICUBIC)
    else:
        img = make_power_2(img, 4)
    if min(img.size) < 8:
        img = img.resize((max(8, img.size[0]), max(8, img.size[1])), Image.BICUBIC)
    return pil_to_tensor(img)


def translate(args, log=print):
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    items = list_inputs(args.input)
    targets = [os.path.join(args.output, rel) for _, rel in items]
    existing = [t for t in targets if os.path.exists(t)]
    if existing and not args.overwrite:
        raise FileExistsError(f"{len(existing)} output file(s) already exist (e.g. {existing[0]}); "
                              f"pass --overwrite to replace them or choose another --output")
    net = load_network(args.checkpoint, args.direction, args.norm_impl, device)
    size = fixed_size(net, args.size)
    bar = None
    if not args.no_progress:
        from tqdm import tqdm
        bar = tqdm(total=len(items), unit="img", dynamic_ncols=True)
    skipped, written = [], []
    pending = {}  # image size -> [(tensor, target)]

    def flush(key):
        batch = pending.pop(key)
        x = torch.stack([t for t, _ in batch]).to(device)
        with torch.no_grad():
            y = net(x).float().cpu()
        for out, (_, target) in zip(y, batch):
            os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
            Image.fromarray(to_uint8(out)).save(target)
            written.append(target)
        if bar is not None:
            bar.update(len(batch))

    for (src, _), target in zip(items, targets):
        try:
            img = load_rgb(src)
        except Exception as e:
            skipped.append(src)
            print(f"warning: skipping unreadable image {src}: {type(e).__name__}: {e}", file=sys.stderr)
            if bar is not None:
                bar.update(1)
            continue
        t = prepare(img, size)
        key = tuple(t.shape)
        pending.setdefault(key, []).append((t, target))
        if len(pending[key]) >= args.batch_size:
            flush(key)
    for key in list(pending):
        flush(key)
    if bar is not None:
        bar.close()
    log(f"wrote {len(written)} image(s) to {args.output}" + (f"; skipped {len(skipped)} unreadable" if skipped else ""))
    return written, skipped


def main(argv=None):
    args = build_parser().parse_args(argv)
    import models
    try:
        translate(args)
    except (UnsafeCheckpointError, models.CheckpointError, FileNotFoundError, FileExistsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
