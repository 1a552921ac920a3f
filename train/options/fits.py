"""Whether a run's images can fit in memory at all, checked before anything is allocated.

The check uses lower bounds, never estimates: the bytes that must exist at once for one
training step whatever the implementation, so it refuses only runs that cannot work (an
image side of 100000 would otherwise fail deep inside an allocation of hundreds of GiB).
"""
import os

import torch

GIB = 2 ** 30
HALF_PRECISION_BYTES = 2  # the smallest element any --amp setting computes the first feature map in
UINT8_RGB_BYTES = 3  # a decoded RGB image, before it becomes a tensor
SYNTHETIC_SUPERSAMPLING = 2  # the synthetic scenes are drawn at twice the side ...
SYNTHETIC_BYTES = 8  # ... in float64 (train/data/synthetic.py)


def least_bytes(opt):
    """(bytes, option, what) of the largest lower bound for one step of `opt`'s run; None when the image
    size is not known before the data is read (--preprocess none keeps each image's size)."""
    side = network_input_side(opt)
    if side is None:
        return None
    size_option = "--load_size" if opt.dataset == "folder" and opt.preprocess == "resize" else "--crop_size"
    bounds = [(opt.batch_size * opt.ngf * side * side * HALF_PRECISION_BYTES, size_option,
               f"the generator's first feature map: --batch_size {opt.batch_size} x --ngf {opt.ngf} x "
               f"{side}x{side} pixels")]
    if opt.dataset == "synthetic":
        drawn = SYNTHETIC_SUPERSAMPLING * side
        bounds.append((drawn * drawn * SYNTHETIC_BYTES, "--crop_size", f"one synthetic scene drawn at {drawn}x{drawn} in float64"))
    elif "resize" in opt.preprocess:
        bounds.append((opt.load_size ** 2 * UINT8_RGB_BYTES, "--load_size", f"one image resized to --load_size {opt.load_size}"))
    return max(bounds)


def network_input_side(opt):
    if opt.dataset == "synthetic" or "crop" in opt.preprocess:
        return opt.crop_size
    if opt.preprocess == "resize":
        return opt.load_size
    return None


def device_memory_bytes(device_name):
    """Total memory of the device a run trains on: the GPU's, else the machine's RAM."""
    from .checks import device_or_default
    device = device_or_default(device_name)
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
