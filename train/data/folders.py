"""Image folders as the official CycleGAN lays them out: DATAROOT/trainA, trainB (testA, testB),
images of the listed extensions searched recursively."""
import os

from models.errors import UserError

IMG_EXTENSIONS = ('.jpg', '.JPG', '.jpeg', '.JPEG', '.png', '.PNG', '.ppm', '.PPM', '.bmp', '.BMP',
                  '.tif', '.TIF', '.tiff', '.TIFF', '.webp', '.WEBP')


class DataError(UserError, ValueError):
    """The dataset cannot be used (missing or empty folder, no readable image)."""


def image_paths(folder, max_dataset_size=None):
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

