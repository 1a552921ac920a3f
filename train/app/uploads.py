"""One uploaded file of the web demo read as an upright RGB image, or an UploadError saying in
one line what is wrong with it: not an image, too many pixels, more than one frame."""
import os
import warnings

from PIL import Image, UnidentifiedImageError

from models.errors import UserError

from ..data import load_rgb

DEFAULT_MAX_PIXELS = 4096 * 4096  # a 12-megapixel phone photo fits; translating it on a CPU takes minutes


class UploadError(UserError, ValueError):
    """An upload that cannot be translated; the message names the file and why."""


def read_upload(path, max_pixels=DEFAULT_MAX_PIXELS):
    """The image in `path`, upright (EXIF) and RGB, as train.translate reads it. Its size and
    frame count are checked from the header before any pixel is decoded."""
    name = os.path.basename(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, by our own cap
            with Image.open(path) as img:
                _check_header(name, img, max_pixels)
        return load_rgb(path)
    except UploadError:
        raise
    except Image.DecompressionBombError:
        raise UploadError(f"{name}: far too large (over {_pixels(Image.MAX_IMAGE_PIXELS * 2)}); this demo "
                          f"takes at most {_pixels(max_pixels)}") from None
    except UnidentifiedImageError:
        raise UploadError(f"{name}: not an image (none of the formats Pillow reads)") from None
    except (OSError, ValueError, SyntaxError) as error:  # truncated or damaged: Pillow's own words
        raise UploadError(f"{name}: cannot read it ({type(error).__name__}: {error})") from None


def _check_header(name, img, max_pixels):
    w, h = img.size
    if w * h > max_pixels:
        raise UploadError(f"{name}: {w}x{h} is {_pixels(w * h)}; this demo takes at most {_pixels(max_pixels)} "
                          "(--max_pixels): make it smaller first")
    frames = getattr(img, "n_frames", 1)
    if frames > 1:
        raise UploadError(f"{name}: it has {frames} frames (an animation or a multi-page file); "
                          "upload a still image")


def _pixels(count):
    return f"{count / 1e6:.1f} megapixels" if count >= 100_000 else f"{count} pixels"
