"""The web demo's translation, as a plain Python object (no Gradio here): the generators of one
checkpoint applied to uploaded images, both directions where the checkpoint holds both, each
output at its input's own size (padded to what the generator needs and cropped back, exactly as
train.translate does)."""
import os

import torch

import models
from models.inference import translate_batches

from ..translate import check_channels, is_out_of_memory, network_input, output_image, working_size
from .uploads import DEFAULT_MAX_PIXELS, UploadError, read_upload

DIRECTION_LABELS = {"AtoB": "A → B", "BtoA": "B → A", None: "translated"}
PHOTO_LABEL = "photo"


class Translator:
    """translate_files(paths) -> ([(image, caption)], [message]); description() says what the
    checkpoint is."""

    def __init__(self, checkpoint_name, generators, step, device, max_pixels=DEFAULT_MAX_PIXELS):
        self.checkpoint_name, self.generators, self.step = checkpoint_name, generators, step
        self.device, self.max_pixels = device, max_pixels

    @classmethod
    def from_checkpoint(cls, path, device, max_pixels=DEFAULT_MAX_PIXELS, norm_impl="fused"):
        """Any checkpoint models.load_generators reads (a CheckpointError names the file)."""
        found = models.load_generators(path, norm_impl=norm_impl, map_location=device)
        for net in found.generators.values():
            check_channels(net, path)  # photos are RGB
        return cls(os.path.basename(os.path.normpath(path)), found.generators, found.step, device, max_pixels)

    def description(self):
        """{"checkpoint", "architecture", "step"}: what the page shows about the translator."""
        archs = {d: describe_architecture(net) for d, net in self.generators.items()}
        if len(set(archs.values())) == 1:
            architecture = next(iter(archs.values()))
        else:
            architecture = ", ".join(f"{DIRECTION_LABELS[d]}: {a}" for d, a in archs.items())
        step = str(self.step) if self.step is not None else "not recorded in this file"
        return {"checkpoint": self.checkpoint_name, "architecture": architecture, "step": step}

    def translate_image(self, img):
        """[(direction label, translated PIL image of img's size)] for every generator."""
        results = []
        for direction, net in self.generators.items():
            size = working_size(net, None)
            y = translate_batches(net, network_input(img, size), self.device)[0]
            results.append((DIRECTION_LABELS[direction], output_image(y, img.size, size)))
        return results

    @property
    def images_per_photo(self):
        """The photo itself, then one translation per generator."""
        return 1 + len(self.generators)

    def translate_file(self, path):
        """[(label, image)]: the photo as read (upright, RGB), then translate_image of it;
        UploadError for a file that cannot be translated."""
        img = read_upload(path, self.max_pixels)
        try:
            return [(PHOTO_LABEL, img)] + self.translate_image(img)
        except Exception as error:
            if not is_out_of_memory(error):
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            raise UploadError(f"{os.path.basename(path)}: out of memory translating a {img.width}x{img.height} "
                              f"image on {self.device}; try a smaller one") from None

    def translate_files(self, paths):
        """([(image, "name: label")] for every file translated (translate_file), [one line for
        every file that could not be])."""
        gallery, messages = [], []
        for path in paths or ():
            try:
                results = self.translate_file(path)
            except UploadError as error:
                messages.append(str(error))
                continue
            gallery += [(image, f"{os.path.basename(path)}: {label}") for label, image in results]
        return gallery, messages


def describe_architecture(net):
    text = f"{models.arch_of(net)}, ngf {net.config['ngf']}"
    if getattr(net, "fixed_input_size", None):
        text += f", works at {net.fixed_input_size}x{net.fixed_input_size}"
    return text
