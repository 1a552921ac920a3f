"""python -m train.translate: translate images with a trained generator.

    python -m train.translate --checkpoint CKPT --input FILE_OR_DIR --output DIR
        [--direction AtoB|BtoA] [--size N] [--device cuda|cpu] [--batch_size 8] [--overwrite]

CKPT is anything models.load_generator reads: this project's training checkpoint
(checkpoints/NAME/latest.pt, both directions) or generator payload, an official CycleGAN
generator state_dict (latest_net_G_A.pth), a U-GAT-IT generator state_dict or checkpoint
(genA2B / genB2A). Every output has its input's size: the image is padded by reflection to the
multiple of 4 the generators need, translated, and cropped back. With --size N the generator
works on an N x N resize (U-GAT-IT's full generator always works at its training size) and the
result is resized back. Outputs are PNGs named after the inputs (folder structure kept; inputs
that differ only in extension or case get distinct names, names.py), and index.html
(index_2.html, ... for more than 50 images) shows each input, embedded, next to its output.
Existing outputs are never overwritten without --overwrite, and inputs never are.

Exit status: 0 when every image was translated, 1 when some could not be (each is named, with
the reason), 2 when the arguments, checkpoint or folders do not allow a translation, or one
stopped (e.g. no space left on device), 130 on Ctrl-C.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F
from PIL import Image

from ..atomic import atomic_write
from ..cli import EXIT_INTERRUPTED, MissingFileError, UserError, command
from ..data import IMG_EXTENSIONS, load_rgb, pil_to_tensor, scan_images, to_uint8
from ..options.checks import GENERATOR_MULTIPLE, device_or_default
from . import results_page
from .names import output_names

RGB = 3
MIN_SIDE = 8  # smaller images are enlarged first: the generators' reflection pads need the room
EXIT_OK, EXIT_SOME_FAILED, EXIT_NOTHING_DONE = 0, 1, UserError.exit_status


class TranslateError(UserError, ValueError):
    """Arguments that cannot work or would destroy files; nothing was translated."""


def build_parser():
    p = argparse.ArgumentParser(prog="python -m train.translate", description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--input", required=True, help="an image file or a folder of images (searched recursively)")
    p.add_argument("--output", required=True, help="folder for the translated PNGs and index.html")
    p.add_argument("--direction", choices=("AtoB", "BtoA"), default="AtoB")
    p.add_argument("--size", type=int, default=None,
                   help="translate at N x N (N rounded to a multiple of 4), then resize back to the input's size; "
                        "use it for images too large for memory")
    p.add_argument("--device", default=None, help="cuda when available, else cpu")
    p.add_argument("--batch_size", type=int, default=8, help="images of the same size translated together")
    p.add_argument("--norm_impl", choices=("fused", "eager"), default="fused")
    p.add_argument("--overwrite", action="store_true", help="replace existing output files (never inputs)")
    p.add_argument("--no_progress", action="store_true", help="no line per translated image")
    return p


# --- what to translate, and where -----------------------------------------------------------

def list_inputs(path, output):
    """[(input path, output path relative to --output)]; a folder is searched recursively,
    skipping --output when it lies inside it. Output names: train/translate/names.py."""
    if os.path.isfile(path):
        return [(path, output_names([os.path.basename(path)])[0])]
    if not os.path.isdir(path):
        raise MissingFileError(f"--input {path}: no such file or folder")
    output_real = os.path.realpath(output)
    sources = [s for s in scan_images(path) if not _is_inside(os.path.realpath(s), output_real)]
    if not sources:
        raise MissingFileError(f"--input {path}: no images in it (looked for {', '.join(IMG_EXTENSIONS[::2])})")
    return list(zip(sources, output_names([os.path.relpath(s, path) for s in sources])))


def input_name(input_arg, source):
    """How the page names an input: its path under the --input folder, or its file name."""
    return os.path.relpath(source, input_arg) if os.path.isdir(input_arg) else os.path.basename(source)


def _is_inside(path, folder):
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def refuse_destroying_files(args, items, targets):
    """Inputs are never overwritten; earlier outputs and pages only with --overwrite."""
    inputs = {os.path.realpath(source) for source, _ in items}
    clash = next((t for t in targets if os.path.realpath(t) in inputs), None)
    if clash is not None:
        raise TranslateError(f"the output {clash} would overwrite an input image; choose another --output "
                             "(--overwrite does not change this)")
    existing = [t for t in targets if os.path.exists(t)] + results_page.existing_pages(args.output)
    if existing and not args.overwrite:
        raise TranslateError(f"{len(existing)} output file(s) already exist in {args.output} (e.g. {existing[0]}); "
                              "pass --overwrite to replace them or choose another --output")


def check_arguments(args):
    """The device to use, or TranslateError for an argument that cannot work."""
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise TranslateError(f"--output {args.output} is a file, not a folder")
    if os.path.isdir(args.input) and os.path.realpath(args.input) == os.path.realpath(args.output):
        raise TranslateError(f"--output {args.output} is the input folder; the outputs would mix with (and "
                             "could replace) the inputs. Choose another folder (--overwrite does not change this)")
    if args.size is not None and args.size < MIN_SIDE:
        raise TranslateError(f"--size must be at least {MIN_SIDE}, got {args.size}")
    if args.batch_size < 1:
        raise TranslateError(f"--batch_size must be >= 1, got {args.batch_size}")
    return device_or_default(args.device)


def check_channels(net, checkpoint):
    channels = {k: net.config.get(k, RGB) for k in ("input_nc", "output_nc")}
    if channels != {"input_nc": RGB, "output_nc": RGB}:
        raise TranslateError(f"{checkpoint} holds a generator for {channels['input_nc']}-channel inputs and "
                             f"{channels['output_nc']}-channel outputs; translate handles RGB (3 and 3)")


# --- one image: to the network and back -------------------------------------------------------

def working_size(net, size):
    """The N x N size the generator works at, or None to work at each image's own size. U-GAT-IT's
    full generator only runs at the size it was built for."""
    cfg = getattr(net, "config", {})
    if cfg.get("light") is False and "img_size" in cfg:
        if size is not None and size != cfg["img_size"]:
            print(f"note: this U-GAT-IT generator works at {cfg['img_size']}x{cfg['img_size']} only; "
                  f"ignoring --size {size}", file=sys.stderr)
        return cfg["img_size"]
    if size is None:
        return None
    return max(MIN_SIDE, int(round(size / GENERATOR_MULTIPLE)) * GENERATOR_MULTIPLE)


def network_input(img, size):
    """(1, 3, H, W) tensor in [-1, 1] that the generator accepts: the image resized to size x size,
    or (size None) padded by reflection on the right and bottom to multiples of 4, after
    enlarging an image with a side under MIN_SIDE."""
    if size is not None:
        return pil_to_tensor(img.resize((size, size), Image.BICUBIC))[None]
    w, h = img.size
    if min(w, h) < MIN_SIDE:
        img = img.resize((max(w, MIN_SIDE), max(h, MIN_SIDE)), Image.BICUBIC)
    t = pil_to_tensor(img)[None]
    pad_w, pad_h = -img.width % GENERATOR_MULTIPLE, -img.height % GENERATOR_MULTIPLE
    return F.pad(t, (0, pad_w, 0, pad_h), mode="reflect") if pad_w or pad_h else t


def output_image(y, input_size, size):
    """The generator's output (3, H, W) as a PIL image of the input's size (undoing network_input)."""
    w, h = input_size
    if size is None and min(w, h) >= MIN_SIDE:
        return Image.fromarray(to_uint8(y[:, :h, :w]))
    if size is None:  # enlarged before padding: crop the padding off, then shrink back
        y = y[:, :max(h, MIN_SIDE), :max(w, MIN_SIDE)]
    return Image.fromarray(to_uint8(y)).resize((w, h), Image.BICUBIC)


def is_out_of_memory(error):
    if isinstance(error, (MemoryError, torch.OutOfMemoryError)):
        return True
    text = str(error).lower()
    return isinstance(error, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def out_of_memory_advice(input_size, device):
    w, h = input_size
    smaller = max(MIN_SIDE, max(w, h) // 2 // GENERATOR_MULTIPLE * GENERATOR_MULTIPLE)
    on_gpu = "; or --device cpu, which has more memory" if device.type == "cuda" else ""
    return (f"out of memory translating a {w}x{h} image on {device}: translate it smaller with "
            f"--size {smaller} (the output is resized back to {w}x{h}), or cut it into tiles{on_gpu}")


# --- the run ---------------------------------------------------------------------------------

class Translation:
    """Translates the listed images, batching those of the same working shape, and keeps a
    record of what was written and what failed (and why)."""

    def __init__(self, net, device, size, batch_size, total, log, show_progress):
        self.net, self.device, self.size, self.batch_size = net, device, size, batch_size
        self.total, self.log, self.show_progress = total, log, show_progress
        self.done, self.translated, self.failed = 0, [], []
        self.pending = {}  # working shape -> [(tensor, job)]

    def add(self, source, name, rel, target):
        """Translate `source` (called `name` on the page) into `target` (`rel` in --output)."""
        try:
            img = load_rgb(source)
        except Exception as error:  # unreadable, corrupt, not an image: report it and go on
            self.fail(source, rel, f"cannot read it: {type(error).__name__}: {error}")
            return
        job = (source, name, rel, target, img.size)
        try:
            x = network_input(img, self.size)
        except MemoryError:
            self.fail(source, rel, out_of_memory_advice(img.size, self.device))
            return
        key = tuple(x.shape)
        self.pending.setdefault(key, []).append((x, job))
        if len(self.pending[key]) >= self.batch_size:
            self.flush(key)

    def finish(self):
        for key in list(self.pending):
            self.flush(key)

    def flush(self, key):
        batch = self.pending.pop(key)
        start = time.perf_counter()
        try:
            outputs = self.run(torch.cat([x for x, _ in batch]))
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            self.release_memory()
            if len(batch) > 1:  # perhaps one at a time fits
                for item in batch:
                    self.pending[key] = [item]
                    self.flush(key)
                return
            _, (source, _, rel, _, input_size) = batch[0]
            self.fail(source, rel, out_of_memory_advice(input_size, self.device))
            return
        seconds = (time.perf_counter() - start) / len(batch)
        for y, (_, job) in zip(outputs, batch):
            self.write(y, job, seconds)

    def run(self, x):
        with torch.no_grad():
            return self.net(x.to(self.device)).float().cpu()

    def release_memory(self):
        if self.device.type == "cuda":
            torch.cuda.empty_cache()

    def write(self, y, job, seconds):
        source, name, rel, target, input_size = job
        image = output_image(y, input_size, self.size)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        atomic_write(target, lambda f: image.save(f, format="PNG"), what="output")
        self.done += 1
        self.translated.append(results_page.Row(name, source, rel, target,
                                                f"{image.width}x{image.height}, {seconds:.1f} s"))
        if self.show_progress:
            self.log(f"[{self.done}/{self.total}] {rel} {input_size[0]}x{input_size[1]} -> {target} {seconds:.1f} s")

    def fail(self, source, rel, reason):
        self.done += 1
        self.failed.append((source, reason))
        print(f"[{self.done}/{self.total}] {source}: {reason}", file=sys.stderr)


def translate(args, log=print):
    """Translate args.input into args.output. Returns the Translation (translated, failed)."""
    import models
    device = check_arguments(args)
    items = list_inputs(args.input, args.output)
    targets = [os.path.join(args.output, rel) for _, rel in items]
    refuse_destroying_files(args, items, targets)
    net = models.load_generator(args.checkpoint, direction=args.direction, norm_impl=args.norm_impl,
                                map_location=device)
    check_channels(net, args.checkpoint)
    work = Translation(net, device, working_size(net, args.size), args.batch_size, len(items), log,
                       not args.no_progress)
    for (source, rel), target in zip(items, targets):
        work.add(source, input_name(args.input, source), rel, target)
    work.finish()
    os.makedirs(args.output, exist_ok=True)
    title = f"{os.path.basename(os.path.normpath(args.checkpoint))} {args.direction}: {args.input}"
    translated = sorted(work.translated, key=lambda row: row.output_name)
    pages = results_page.write_pages(args.output, translated, work.failed, title)
    summary = f"translated {len(work.translated)} of {len(items)} image(s) into {args.output} (see {pages[0]})"
    if work.failed:
        summary += f"; {len(work.failed)} could not be translated (listed above and on the page)"
    log(summary)
    return work


@command
def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        work = translate(args)
    except KeyboardInterrupt:
        print("interrupted: the outputs written so far are complete (each is written atomically); "
              "no results page was written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UserError:
        raise  # one line from @command (an AtomicWriteError is an OSError too)
    except OSError as error:  # e.g. --output not writable
        print(f"error: {error.strerror or error}: {error.filename or args.output}", file=sys.stderr)
        return EXIT_NOTHING_DONE
    return EXIT_SOME_FAILED if work.failed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
