"""The official 'unaligned' dataset over DATAROOT/{phase}A and {phase}B, and the fixed test images
of a folder run's sample grids."""
import hashlib
import os
import shutil
import tempfile
import warnings
import weakref

import numpy as np
import torch

from .folders import DataError, image_paths
from .images import load_rgb, upright_size
from .preprocess import center_crop_to_common_size, power_2_size, preprocess, preprocess_fn


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
        self.dataroot = dataroot
        self.A_paths = image_paths(os.path.join(dataroot, phase + "A"), max_dataset_size)
        self.B_paths = image_paths(os.path.join(dataroot, phase + "B"), max_dataset_size)
        self.len_A, self.len_B = len(self.A_paths), len(self.B_paths)
        self.preprocess, self.load_size, self.crop_size, self.no_flip = preprocess, load_size, crop_size, no_flip
        self._unreadable_seen = _FirstTimeMarkers()
        for paths in (self.A_paths, self.B_paths):  # here, not in a worker: a clear error, no traceback
            self._load(paths, 0)

    def __len__(self):
        return max(self.len_A, self.len_B)

    def identity(self):
        """What identifies the training images wherever the folder lies: per side, the number of
        images and a digest of their paths relative to the dataroot and their sizes in bytes."""
        return {side: {"images": len(paths), "digest": _files_digest(self.dataroot, paths)}
                for side, paths in (("trainA", self.A_paths), ("trainB", self.B_paths))}

    def check_one_size(self, batch_size):
        """DataError unless every image comes out of --preprocess none at one size: a batch of
        more than one image stacks them. Reads the image headers only."""
        sizes = {}
        for path in self.A_paths + self.B_paths:
            try:
                sizes.setdefault(power_2_size(*upright_size(path)), path)
            except Exception:  # unreadable: training skips it (and says so)
                continue
            if len(sizes) > 1:
                (size_1, path_1), (size_2, path_2) = sizes.items()
                raise DataError(f"--preprocess none with --batch_size {batch_size}: a batch stacks images of one "
                                f"size, but {path_1} is {size_1[0]}x{size_1[1]} and {path_2} is "
                                f"{size_2[0]}x{size_2[1]} (after rounding to multiples of 4); use --batch_size 1 "
                                "or a --preprocess that gives one size (resize_and_crop, crop, resize)")

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


def _files_digest(root, paths):
    digest = hashlib.sha256()
    for path in paths:
        size = os.stat(path).st_size if os.path.exists(path) else -1
        digest.update(f"{os.path.relpath(path, root)}\0{size}\n".encode())
    return digest.hexdigest()[:16]


def load_test_images(dataroot, n, preprocess, load_size, crop_size):
    """Up to n fixed (A, B) test images for sample grids: testA/testB when present, else the
    first training images; deterministic preprocessing (center-free: crop at seed 0, no flip)."""
    out = []
    for side in ("A", "B"):
        folder = os.path.join(dataroot, "test" + side)
        if not os.path.isdir(folder) or not any(True for _ in os.scandir(folder)):
            folder = os.path.join(dataroot, "train" + side)
        try:
            paths = image_paths(folder)
        except DataError:
            paths = image_paths(os.path.join(dataroot, "train" + side))
        imgs = []
        for p in paths:
            if len(imgs) == n:
                break
            try:
                img = load_rgb(p)
            except Exception:
                continue
            imgs.append(preprocess_fn(img, preprocess, load_size, crop_size))
        out.append(imgs)
    m = min(len(out[0]), len(out[1]))
    both = center_crop_to_common_size(out[0][:m] + out[1][:m])  # --preprocess none keeps each image's size
    return both[:m], both[m:]


