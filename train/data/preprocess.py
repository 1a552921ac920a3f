"""The official CycleGAN preprocessing (get_transform): resize, crop, flip, to [-1, 1]."""
import numpy as np
import torch
from PIL import Image

from .images import pil_to_tensor


def power_2_size(width, height, base=4):
    """(width, height) rounded to multiples of `base`, as the official __make_power_2."""
    return max(base, int(round(width / base) * base)), max(base, int(round(height / base) * base))


def make_power_2(img, base=4, method=Image.BICUBIC):
    """Resize so both sides are multiples of `base` (rounded), as the official __make_power_2."""
    size = power_2_size(*img.size, base)
    if size == img.size:
        return img
    return img.resize(size, method)


def center_crop_to_common_size(images):
    """(3, H, W) tensors of different sizes -> one (N, 3, h, w) batch, h and w the smallest
    height and width among them, each image cut around its center (--preprocess none keeps
    every image's own size; a sample grid needs one). Sides stay multiples of 4."""
    h = min(img.shape[1] for img in images)
    w = min(img.shape[2] for img in images)
    return torch.stack([_center_crop(img, h, w) for img in images])


def _center_crop(img, h, w):
    top, left = (img.shape[1] - h) // 2, (img.shape[2] - w) // 2
    return img[:, top:top + h, left:left + w]


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



def preprocess_fn(img, opt_preprocess, load_size, crop_size):
    return preprocess(img, opt_preprocess, load_size, crop_size, True, np.random.default_rng(0))
