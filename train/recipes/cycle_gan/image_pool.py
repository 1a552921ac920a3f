"""History of generated images (Shrivastava et al.), with the official CycleGAN semantics."""
import random

import torch


class ImagePool:
    """Until the pool holds `pool_size` images, each query image is stored and returned as is.
    Afterwards, each image is, with probability 0.5, swapped with a random stored image (the
    stored one is returned, the new one takes its place), else returned as is.
    `pool_size == 0` disables the pool.

    The pool has its own random generator (seeded) so its state can be saved and restored
    exactly, independently of other users of Python's `random`.
    """

    def __init__(self, pool_size, seed=0):
        self.pool_size = int(pool_size)
        self.images = []
        self.rng = random.Random(seed)

    def query(self, images):
        if self.pool_size == 0:
            return images
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.pool_size:
                self.images.append(image.clone())
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                i = self.rng.randint(0, self.pool_size - 1)
                old = self.images[i].clone()
                self.images[i] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.cat(out, 0)

    def state_dict(self):
        """weights_only-safe: the images as one (N, C, H, W) tensor (or None; a list of (C, H, W)
        tensors when their sizes differ, with --preprocess none) and the RNG state as nested lists."""
        version, internal, gauss = self.rng.getstate()
        return {
            "pool_size": self.pool_size,
            "images": self._stored_images(),
            "rng": [version, list(internal), gauss],
        }

    def _stored_images(self):
        if not self.images:
            return None
        if len({image.shape for image in self.images}) > 1:
            return [image[0].cpu() for image in self.images]
        return torch.cat(self.images, 0).cpu()

    def load_state_dict(self, state, device=None):
        self.pool_size = int(state["pool_size"])
        images = state["images"]
        self.images = [] if images is None else [im.unsqueeze(0).to(device) for im in images]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
