"""Data: the official CycleGAN folder layout, preprocessing and a resumable sampler.

`DATAROOT/trainA`, `trainB` (and `testA`, `testB` for samples) hold images of any mode (converted
to RGB), searched recursively. Unaligned: each A image is drawn with a B image chosen at random.

Determinism: the sampler, not the workers, decides everything random about a sample: the A
index, the B index and a per-sample augmentation seed (crop position, flip). So the data is the
same whatever the number of workers, and a resumed run continues at the exact batch where it
stopped (`RunSampler.epoch_batches(epoch, start)`).
"""
import hashlib
import math
import os
import shutil
import tempfile
import warnings
import weakref

import numpy as np
import torch
from PIL import Image

IMG_EXTENSIONS = ('.jpg', '.JPG', '.jpeg', '.JPEG', '.png', '.PNG', '.ppm', '.PPM', '.bmp', '.BMP',
                  '.tif', '.TIF', '.tiff', '.TIFF', '.webp', '.WEBP')


class DataError(ValueError):
    """The dataset cannot be used (missing or empty folder, no readable image)."""


def make_dataset(folder, max_dataset_size=None):
    """Sorted list of image paths under `folder` (recursive, following symlinked folders), at most
    max_dataset_size of them (None: all), as the official make_dataset."""
    if not os.path.isdir(folder):
        raise DataError(f"image folder not found: {folder} (expected the CycleGAN layout "
                        f"DATAROOT/trainA, DATAROOT/trainB, optionally testA, testB)")
    paths = scan_images(folder)
    if not paths:
        raise DataError(f"no images in {folder} (looked for {', '.join(IMG_EXTENSIONS[::2])})")
    return paths[:capped_size(len(paths), max_dataset_size)]


def capped_size(n, max_dataset_size):
    """n, or max_dataset_size when smaller. None means no limit, and so does inf (the default
    that older runs wrote into opt.json)."""
    if max_dataset_size is None or max_dataset_size == float("inf"):
        return n
    return min(n, int(max_dataset_size))


def scan_images(folder):
    """Image paths under `folder`, sorted by folder then name. Symlinked folders that lead
    outside `folder` are followed; links to folders inside it are not (their files are listed
    under their own path). Each real folder is entered once, so a link back to a parent cannot
    loop, and each real file is listed once."""
    top = os.path.realpath(folder)
    entered, found = set(), []
    for root, dirs, names in os.walk(folder, followlinks=True):
        real_root = os.path.realpath(root)
        if real_root in entered:
            dirs[:] = []
            continue
        entered.add(real_root)
        dirs[:] = sorted(d for d in dirs if not _link_into(os.path.join(root, d), top))
        found.extend((root, name) for name in names if name.endswith(IMG_EXTENSIONS))
    listed, paths = set(), []
    for root, name in sorted(found):
        path = os.path.join(root, name)
        real = os.path.realpath(path)
        if real not in listed:
            listed.add(real)
            paths.append(path)
    return paths


def _link_into(path, top):
    if not os.path.islink(path):
        return False
    real = os.path.realpath(path)
    return real == top or real.startswith(top.rstrip(os.sep) + os.sep)


def make_power_2(img, base=4, method=Image.BICUBIC):
    """Resize so both sides are multiples of `base` (rounded), as the official __make_power_2."""
    ow, oh = img.size
    h, w = max(base, int(round(oh / base) * base)), max(base, int(round(ow / base) * base))
    if (h, w) == (oh, ow):
        return img
    return img.resize((w, h), method)


def preprocess(img, opt_preprocess, load_size, crop_size, no_flip, rng):
    """PIL RGB image -> tensor (3, H, W) in [-1, 1], as the official get_transform."""
    if "resize" in opt_preprocess:
        img = img.resize((load_size, load_size), Image.BICUBIC)
    if "crop" in opt_preprocess:
        w, h = img.size
        if w < crop_size or h < crop_size:
            img = img.resize((max(w, crop_size), max(h, crop_size)), Image.BICUBIC)
            w, h = img.size
        x = int(rng.integers(0, w - crop_size + 1))
        y = int(rng.integers(0, h - crop_size + 1))
        img = img.crop((x, y, x + crop_size, y + crop_size))
    if opt_preprocess == "none":
        img = make_power_2(img, 4)
    if not no_flip and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    return pil_to_tensor(img)


def pil_to_tensor(img):
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()) * 2.0 - 1.0


def load_rgb(path):
    """Open an image of any Pillow mode as RGB, keeping its content (see to_rgb)."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(img)


def to_rgb(img):
    """RGB from any Pillow mode: 16/32-bit integer and float images ('I;16', 'I', 'F') are scaled
    to 8 bits by their range, transparent ones ('RGBA', 'LA', 'P' with transparency, ...) are
    composited on white, everything else ('1', 'L', 'P', 'CMYK', 'YCbCr', ...) converted."""
    if img.mode == "F" or img.mode.startswith("I"):
        img = _scaled_to_8_bits(img)
    if img.mode in ("RGBa", "La"):  # premultiplied alpha: undo it first
        img = img.convert("RGBA" if img.mode == "RGBa" else "LA")
    if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img.convert("RGBA"))
    return img.convert("RGB")


def _scaled_to_8_bits(img):
    """'L' image from a single-channel integer or float image. An integer image within 0..255 or
    a float image within 0..1 keeps its values' meaning; others are scaled by their range: 0 (or
    the minimum, when negative) black, the maximum white."""
    arr = np.asarray(img, dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0:
        return Image.new("L", img.size, 0)
    low, high = min(0.0, finite.min()), finite.max()
    if low == 0 and high <= 1 and img.mode == "F":
        top = 1.0
    elif low == 0 and high <= 255 and img.mode != "F":
        top = 255.0
    else:
        top = high
    if top <= low:
        return Image.new("L", img.size, 0)
    arr = np.nan_to_num(arr, nan=low, posinf=high, neginf=low)
    return Image.fromarray(((arr - low) / (top - low) * 255).round().clip(0, 255).astype(np.uint8), "L")


class _FirstTimeMarkers:
    """Tells whether a file is met for the first time by any process sharing this object (the
    main process and every DataLoader worker, which get copies): the first one to create the
    file's marker in a shared temporary folder wins."""

    def __init__(self):
        self.folder = tempfile.mkdtemp(prefix="cyclegan_ext_seen_")
        weakref.finalize(self, _remove_folder_if_owner, self.folder, os.getpid())

    def first_time(self, key):
        marker = os.path.join(self.folder, hashlib.sha256(key.encode()).hexdigest())
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        except OSError:  # the folder is gone or unwritable: better a repeated warning than none
            return True
        return True


def _remove_folder_if_owner(folder, owner_pid):
    if os.getpid() == owner_pid:  # a forked worker must not remove the main process's folder
        shutil.rmtree(folder, ignore_errors=True)


class UnalignedDataset(torch.utils.data.Dataset):
    """Official 'unaligned' dataset over DATAROOT/{phase}A and {phase}B.

    Items are (index_A, index_B, augmentation_seed) tuples (see RunSampler). An unreadable or
    corrupt image is skipped with a warning naming the file, printed once per file whatever the
    number of workers and epochs (the next image is used instead).
    """

    def __init__(self, dataroot, phase="train", max_dataset_size=None, preprocess="resize_and_crop",
                 load_size=286, crop_size=256, no_flip=False):
        if not os.path.isdir(dataroot):
            raise DataError(f"--dataroot not found: {dataroot}")
        self.A_paths = make_dataset(os.path.join(dataroot, phase + "A"), max_dataset_size)
        self.B_paths = make_dataset(os.path.join(dataroot, phase + "B"), max_dataset_size)
        self.len_A, self.len_B = len(self.A_paths), len(self.B_paths)
        self.preprocess, self.load_size, self.crop_size, self.no_flip = preprocess, load_size, crop_size, no_flip
        self._unreadable_seen = _FirstTimeMarkers()
        for paths in (self.A_paths, self.B_paths):  # here, not in a worker: a clear error, no traceback
            self._load(paths, 0)

    def __len__(self):
        return max(self.len_A, self.len_B)

    def _load(self, paths, index):
        for k in range(len(paths)):
            path = paths[(index + k) % len(paths)]
            try:
                return load_rgb(path), path
            except Exception as e:  # corrupt, truncated, unreadable: skip it
                if self._unreadable_seen.first_time(path):
                    warnings.warn(f"skipping unreadable image {path}: {type(e).__name__}: {e}", stacklevel=2)
        raise DataError(f"no readable image among the {len(paths)} in {os.path.dirname(paths[0])} "
                        "(each was reported above)")

    def __getitem__(self, item):
        ia, ib, seed = item
        rng = np.random.default_rng(seed)
        a, a_path = self._load(self.A_paths, ia)
        b, b_path = self._load(self.B_paths, ib)
        args = (self.preprocess, self.load_size, self.crop_size, self.no_flip)
        return {"A": preprocess(a, *args, rng), "B": preprocess(b, *args, rng), "A_paths": a_path, "B_paths": b_path}


class RunSampler:
    """Decides the (A index, B index, augmentation seed) of every sample of every epoch from
    (seed, epoch) alone. Each epoch visits max(len_A, len_B) positions: A in a random
    permutation (in order with serial_batches), B at random (in order with serial_batches).
    With num_replicas > 1 it behaves like DistributedSampler: the epoch's list is padded to a
    multiple of num_replicas and rank r takes positions r, r + num_replicas, ...
    """

    def __init__(self, len_A, len_B, batch_size, seed=0, serial_batches=False, num_replicas=1, rank=0):
        self.len_A, self.len_B = len_A, len_B
        self.batch_size, self.seed, self.serial = batch_size, seed, serial_batches
        self.num_replicas, self.rank = num_replicas, rank
        self.n = max(len_A, len_B)
        self.per_rank = math.ceil(self.n / num_replicas)

    def __len__(self):
        """Batches per epoch (per rank)."""
        return math.ceil(self.per_rank / self.batch_size)

    def epoch_items(self, epoch):
        rng = np.random.default_rng([self.seed, 7919, epoch])
        positions = np.arange(self.n) if self.serial else rng.permutation(self.n)
        b_random = rng.integers(0, self.len_B, size=self.n)
        seeds = rng.integers(0, 2 ** 31 - 1, size=self.n)
        total = self.per_rank * self.num_replicas
        order = np.concatenate([np.arange(self.n)] * math.ceil(total / self.n))[:total]
        items = []
        for k in order[self.rank::self.num_replicas]:
            pos = int(positions[k])
            ib = pos % self.len_B if self.serial else int(b_random[k])
            items.append((pos % self.len_A, ib, int(seeds[k])))
        return items

    def epoch_batches(self, epoch, start=0):
        items = self.epoch_items(epoch)
        batches = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        return _Batches(batches[start:])


class _Batches:
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def make_loader(dataset, batches, num_workers, pin_memory=False, generator=None, worker_init_fn=None):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                       pin_memory=pin_memory, generator=generator,
                                       worker_init_fn=worker_init_fn if num_workers > 0 else None)


def load_test_images(dataroot, n, preprocess, load_size, crop_size):
    """Up to n fixed (A, B) test images for sample grids: testA/testB when present, else the
    first training images; deterministic preprocessing (center-free: crop at seed 0, no flip)."""
    out = []
    for side in ("A", "B"):
        folder = os.path.join(dataroot, "test" + side)
        if not os.path.isdir(folder) or not any(True for _ in os.scandir(folder)):
            folder = os.path.join(dataroot, "train" + side)
        try:
            paths = make_dataset(folder)
        except DataError:
            paths = make_dataset(os.path.join(dataroot, "train" + side))
        imgs = []
        for p in paths:
            if len(imgs) == n:
                break
            try:
                img = load_rgb(p)
            except Exception:
                continue
            imgs.append(preprocess_fn(img, preprocess, load_size, crop_size))
        out.append(torch.stack(imgs))
    m = min(len(out[0]), len(out[1]))
    return out[0][:m], out[1][:m]


def preprocess_fn(img, opt_preprocess, load_size, crop_size):
    return preprocess(img, opt_preprocess, load_size, crop_size, True, np.random.default_rng(0))
