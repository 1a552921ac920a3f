"""Data: the official CycleGAN folder layout, preprocessing, the embedded synthetic dataset and a
resumable sampler.

`DATAROOT/trainA`, `trainB` (and `testA`, `testB` for samples) hold images of any mode (converted
to RGB), searched recursively. Unaligned: each A image is drawn with a B image chosen at random.

Determinism: the sampler, not the workers, decides everything random about a sample: the A
index, the B index and a per-sample augmentation seed (crop position, flip). So the data is the
same whatever the number of workers, and a resumed run continues at the exact batch where it
stopped (`RunSampler.epoch_batches(epoch, start)`).
"""
from . import synthetic
from .folders import IMG_EXTENSIONS, DataError, capped_size, image_paths, scan_images
from .images import load_rgb, pil_to_tensor, to_rgb, to_uint8, upright_size
from .preprocess import preprocess
from .sampler import RunSampler, make_loader
from .unaligned import UnalignedDataset, load_test_images

__all__ = ["IMG_EXTENSIONS", "DataError", "RunSampler", "UnalignedDataset", "capped_size", "fixed_test_images",
           "image_paths", "load_rgb", "load_test_images", "make_loader", "pil_to_tensor", "preprocess",
           "scan_images", "to_rgb", "to_uint8", "training_dataset", "upright_size"]


def training_dataset(opt):
    """The dataset --dataset / --dataroot name: the synthetic scenes, or trainA / trainB."""
    if opt.dataset == "synthetic":
        n = capped_size(opt.synthetic_size, opt.max_dataset_size)
        return synthetic.SyntheticDataset(size=opt.crop_size, n_train=n, seed=opt.synthetic_seed, no_flip=opt.no_flip)
    dataset = UnalignedDataset(opt.dataroot, "train", opt.max_dataset_size, opt.preprocess,
                               opt.load_size, opt.crop_size, opt.no_flip)
    if opt.preprocess == "none" and opt.batch_size > 1:
        dataset.check_one_size(opt.batch_size)
    return dataset


def fixed_test_images(opt, n):
    """n fixed (A, B) images watched during training: the paired synthetic test split, or the
    dataroot's test images."""
    if opt.dataset == "synthetic":
        return synthetic.paired_test_set(n, opt.crop_size, opt.synthetic_seed)
    return load_test_images(opt.dataroot, n, opt.preprocess, opt.load_size, opt.crop_size)

