"""Image sizes a run cannot train at: too small for the networks' depth, too large for any
memory, or (with --preprocess none) different within a batch. Each is one line and a non-zero
exit, and the folder is left so that the same --name starts again with corrected options."""
import os

import pytest
from PIL import Image

from helpers import TINY, run_train
from train.data import load_test_images, upright_size


def patchgan_min_crop(n_layers):
    """NLayerDiscriminator: n_layers stride-2 convolutions (kernel 4, pad 1: side -> side // 2),
    then a stride-1 one (side -> side - 1) whose instance norm needs at least 2x2, then the last
    convolution (side -> side - 1 >= 1). So side // 2**n_layers >= 3."""
    return 3 * 2 ** n_layers


@pytest.mark.parametrize("crop, n_layers_D, too_small", [
    (16, 3, "D_A, D_B (--n_layers_D 3)"),
    (32, 5, "D_A, D_B (--n_layers_D 5)"),
    (4, 3, "G_AtoB, G_BtoA, D_A, D_B (--n_layers_D 3)"),  # the generators' 2 halvings leave 1x1 as well
])
def test_crop_too_small_for_the_networks_names_the_smallest_that_fits(tmp_path, capsys, crop, n_layers_D, too_small):
    args = ["--name", "small", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "1"]
    code = run_train(*args, "--crop_size", crop, "--load_size", crop, "--n_layers_D", n_layers_D)
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    assert err.strip().splitlines()[-1] == (
        f"error: --crop_size {crop} is too small for {too_small}: its deepest layers would be left with too few "
        f"pixels; use --crop_size {patchgan_min_crop(n_layers_D)} or more, or shallower networks")
    fits = patchgan_min_crop(n_layers_D)
    assert run_train(*args, "--crop_size", fits, "--load_size", fits, "--n_layers_D", n_layers_D) == 0


def test_crop_too_large_for_any_memory_is_refused_before_anything_is_allocated(tmp_path, capsys):
    code = run_train("--name", "huge", "--checkpoints_dir", tmp_path, *TINY, "--crop_size", "100000",
                     "--load_size", "100000")
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    # TINY: --batch_size 2, --ngf 8; 2 bytes per element at least (half precision)
    needed_gib = 2 * 8 * 100000 ** 2 * 2 / 2 ** 30
    assert f"--crop_size 100000 is too large for memory: one training step needs at least {needed_gib:.1f} GiB" in err
    assert not os.path.exists(tmp_path / "huge")


def write_image(path, size):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 40, 40)).save(path)


@pytest.fixture
def mixed_sizes(tmp_path):
    root = tmp_path / "data"
    for side, sizes in (("A", [(40, 32), (64, 48)]), ("B", [(32, 36), (48, 44)])):
        for k, size in enumerate(sizes):
            write_image(root / f"train{side}" / f"{k}.png", size)
    return root


def test_preprocess_none_trains_on_images_of_different_sizes_one_at_a_time(tmp_path, mixed_sizes):
    code = run_train("--name", "none", "--checkpoints_dir", tmp_path, "--dataroot", mixed_sizes, *TINY,
                     "--preprocess", "none", "--batch_size", "1", "--max_steps", "2", "--display_freq", "1")
    assert code == 0
    assert len(os.listdir(tmp_path / "none" / "samples")) == 2
    # the sample images: cut to the smallest height (32, of 40x32) and width (32, of 32x36)
    fixed_A, fixed_B = load_test_images(mixed_sizes, 2, "none", 32, 32)
    assert fixed_A.shape == fixed_B.shape == (2, 3, 32, 32)


def test_preprocess_none_with_batches_of_different_sizes_is_refused_naming_two_files(tmp_path, mixed_sizes, capsys):
    code = run_train("--name", "none", "--checkpoints_dir", tmp_path, "--dataroot", mixed_sizes, *TINY,
                     "--preprocess", "none", "--batch_size", "2", "--max_steps", "1")
    err = capsys.readouterr().err
    assert code != 0 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: --preprocess none with --batch_size 2: a batch stacks images of one size")
    assert "0.png is 40x32" in last and "1.png is 64x48" in last


@pytest.mark.parametrize("orientation, expected", [(1, (40, 24)), (6, (24, 40)), (8, (24, 40)), (3, (40, 24))])
def test_upright_size_reads_exif_orientation(tmp_path, orientation, expected):
    path = tmp_path / "photo.jpg"
    exif = Image.Exif()
    exif[274] = orientation
    Image.new("RGB", (40, 24)).save(path, exif=exif)
    assert upright_size(path) == expected
