"""Reading images of any Pillow mode as RGB, and the tensor <-> image conversions ([-1, 1])."""
import numpy as np
import torch
from PIL import Image, ImageOps


def pil_to_tensor(img):
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.transpose(2, 0, 1).copy()) * 2.0 - 1.0


def load_rgb(path):
    """Open an image of any Pillow mode as RGB, keeping its content (see to_rgb), turned upright
    as its EXIF orientation says (a phone photo taken sideways is stored sideways with a tag)."""
    with Image.open(path) as img:
        img.load()
        return to_rgb(ImageOps.exif_transpose(img))


EXIF_ORIENTATION_TAG = 274
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # the EXIF orientations that swap width and height


def upright_size(path):
    """(width, height) of the image at `path` as load_rgb returns it, read from its header only."""
    with Image.open(path) as img:
        width, height = img.size
        orientation = img.getexif().get(EXIF_ORIENTATION_TAG)
    return (height, width) if orientation in _TRANSPOSED_ORIENTATIONS else (width, height)


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




def to_uint8(t):
    """(3, H, W) in [-1, 1] -> HxWx3 uint8."""
    t = ((t.detach().float().cpu() + 1.0) * 127.5).round().clamp(0, 255)
    return t.to(torch.uint8).permute(1, 2, 0).numpy()
