import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from train import data
from train.data import synthetic

from helpers import REPO



def write(path, mode="RGB", size=(40, 30), value=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(abs(hash(path)) % 2 ** 32)
    if mode in ("RGB", "RGBA"):
        arr = rng.integers(0, 256, (size[1], size[0], len(mode)), dtype=np.uint8)
        img = Image.fromarray(arr, mode)
    elif mode == "L":
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8), "L")
    elif mode == "P":
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).convert("P")
    elif mode == "I;16":
        img = Image.fromarray(rng.integers(0, 65536, (size[1], size[0]), dtype=np.uint16))
    img.save(path)
    return path


def make_root(tmp_path, n_a=3, n_b=2):
    for i in range(n_a):
        write(str(tmp_path / "trainA" / f"a{i}.png"))
    for i in range(n_b):
        write(str(tmp_path / "trainB" / "sub" / f"b{i}.jpg"))
    (tmp_path / "trainA" / "notes.txt").write_text("not an image")
    return str(tmp_path)


def test_layout_recursive_sorted_and_max_size(tmp_path):
    root = make_root(tmp_path)
    ds = data.UnalignedDataset(root, load_size=36, crop_size=32)
    assert [os.path.basename(p) for p in ds.A_paths] == ["a0.png", "a1.png", "a2.png"]
    assert [os.path.basename(p) for p in ds.B_paths] == ["b0.jpg", "b1.jpg"]
    assert len(ds) == 3
    item = ds[(1, 0, 123)]
    assert item["A"].shape == (3, 32, 32) and item["B"].shape == (3, 32, 32)
    assert item["A"].min() >= -1 and item["A"].max() <= 1
    assert item["A_paths"].endswith("a1.png")
    assert len(data.UnalignedDataset(root, max_dataset_size=2).A_paths) == 2


def test_preprocess_matches_official_resize_crop_flip(tmp_path):
    path = write(str(tmp_path / "x.png"), size=(50, 40))
    img = data.load_rgb(path)
    rng = np.random.default_rng(5)
    out = data.preprocess(img, "resize_and_crop", 36, 32, False, rng)
    # redo by hand with the same random draws
    rng = np.random.default_rng(5)
    big = img.resize((36, 36), Image.BICUBIC)
    x, y = int(rng.integers(0, 5)), int(rng.integers(0, 5))
    crop = big.crop((x, y, x + 32, y + 32))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
    expected = torch.from_numpy(np.asarray(crop, dtype=np.float32).transpose(2, 0, 1) / 255.0) * 2 - 1
    assert torch.allclose(out, expected)
    none = data.preprocess(data.load_rgb(write(str(tmp_path / "y.png"), size=(45, 30))), "none", 0, 0, True, rng)
    assert none.shape == (3, 32, 44)   # rounded to multiples of 4


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_any_mode_becomes_rgb(tmp_path, mode):
    path = write(str(tmp_path / f"img_{mode.replace(';', '')}.png"), mode=mode)
    img = data.load_rgb(path)
    assert img.mode == "RGB" and img.size == (40, 30)
    if mode == "L":
        arr = np.asarray(img)
        assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()


def test_rgba_composited_on_white(tmp_path):
    path = str(tmp_path / "t.png")
    Image.new("RGBA", (8, 8), (10, 20, 30, 0)).save(path)
    assert np.asarray(data.load_rgb(path)).min() == 255


def test_corrupt_image_skipped_with_warning_naming_it(tmp_path):
    root = make_root(tmp_path)
    bad = tmp_path / "trainA" / "a1.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = data.UnalignedDataset(root, load_size=36, crop_size=32)
    with pytest.warns(UserWarning, match="a1.png"):
        item = ds[(1, 0, 0)]
    assert item["A_paths"].endswith("a2.png") and item["A"].shape == (3, 32, 32)
    with warnings.catch_warnings(record=True) as caught:   # warned once per file
        warnings.simplefilter("always")
        ds[(1, 1, 0)]
    assert not [w for w in caught if "a1.png" in str(w.message)]


@pytest.mark.parametrize("case", ["no_root", "no_trainB", "empty_trainA"])
def test_missing_or_empty_folder_is_a_clear_error(tmp_path, case):
    root = make_root(tmp_path)
    if case == "no_root":
        root = str(tmp_path / "nope")
        match = "nope"
    elif case == "no_trainB":
        import shutil
        shutil.rmtree(tmp_path / "trainB")
        match = "trainB"
    else:
        for f in (tmp_path / "trainA").iterdir():
            f.unlink()
        match = "no images in .*trainA"
    with pytest.raises(data.DataError, match=match):
        data.UnalignedDataset(root)


def test_sampler_deterministic_and_distributed_partition():
    s = data.RunSampler(10, 7, batch_size=3, seed=1)
    assert s.epoch_items(0) == data.RunSampler(10, 7, batch_size=3, seed=1).epoch_items(0)
    assert s.epoch_items(0) != s.epoch_items(1)
    items = s.epoch_items(0)
    assert sorted(i[0] for i in items) == list(range(10))      # every A once per epoch
    assert all(0 <= i[1] < 7 for i in items)
    assert len(s) == 4
    batches = list(s.epoch_batches(0))
    assert list(s.epoch_batches(0, start=2)) == batches[2:]
    ranks = [data.RunSampler(10, 7, 2, seed=1, num_replicas=3, rank=r) for r in range(3)]
    shares = [r.epoch_items(0) for r in ranks]
    assert all(len(sh) == 4 for sh in shares)                 # padded to 12 like DistributedSampler
    merged = [shares[k % 3][k // 3] for k in range(12)]
    assert merged[:10] == items and merged[10:] == items[:2]
    serial = data.RunSampler(4, 3, 2, serial_batches=True).epoch_items(0)
    assert [(a, b) for a, b, _ in serial] == [(0, 0), (1, 1), (2, 2), (3, 0)]


def test_synthetic_is_seeded_unpaired_and_test_split_paired():
    ds = synthetic.SyntheticDataset(size=32, n_train=5, seed=0)
    x, y = ds[(2, 3, 7)], ds[(2, 3, 7)]
    assert torch.equal(x["A"], y["A"]) and torch.equal(x["B"], y["B"])
    assert x["A"].shape == (3, 32, 32) and x["A"].min() >= -1 and x["A"].max() <= 1
    a, b = synthetic.paired_test_set(8, 32, seed=0)
    a2, b2 = synthetic.paired_test_set(8, 32, seed=0)
    assert torch.equal(a, a2) and torch.equal(b, b2) and a.shape == (8, 3, 32, 32)
    # the pair shows the same scene: after normalising brightness and contrast per image, the
    # photo is closer to its own cartoon than to the others
    def norm(t):
        f = t.flatten(1)
        return (f - f.mean(1, keepdim=True)) / f.std(1, keepdim=True)
    d = ((norm(a)[:, None] - norm(b)[None]) ** 2).mean(2)
    assert (d.argmin(1) == torch.arange(8)).all()
    # cartoon B uses only palette / background / outline colours (before antialiasing edges)
    scene = synthetic.make_scene(0, synthetic.TEST, 0)
    raw = synthetic.render_cartoon(scene, 32, supersample=1).reshape(3, -1).T
    allowed = np.concatenate([synthetic.PALETTE, synthetic.BACKGROUNDS, np.full((1, 3), synthetic.OUTLINE)])
    assert all(np.abs(allowed - px).sum(1).min() < 1e-6 for px in raw)


# --- folders with symlinks ---------------------------------------------------------------------

def test_symlinked_folders_are_followed_once_and_files_listed_once(tmp_path):
    root = tmp_path / "trainA"
    write(str(root / "a.png"))
    write(str(root / "sub" / "b.png"))
    write(str(tmp_path / "elsewhere" / "c.png"))
    os.symlink(root, root / "loop")                       # a link back to a parent
    os.symlink(root / "sub", root / "sub_again")          # a second path to one folder
    os.symlink(root / "a.png", root / "a_link.png")       # a second path to one file
    os.symlink(tmp_path / "elsewhere", root / "more")     # a linked folder outside: followed
    paths = data.image_paths(str(root))
    assert [os.path.relpath(p, root) for p in paths] == ["a.png", os.path.join("more", "c.png"),
                                                         os.path.join("sub", "b.png")]


# --- every Pillow mode keeps its content ---------------------------------------------------------

GRADIENT = np.arange(0, 1000, 10, dtype=np.float64).reshape(10, 10)


@pytest.mark.parametrize("mode, values, expected_grey", [
    # 16/32-bit and float images beyond 0..255 are scaled so 0 is black and the maximum white
    ("I;16", GRADIENT, GRADIENT / GRADIENT.max() * 255),
    ("I", GRADIENT * 1000, GRADIENT / GRADIENT.max() * 255),
    ("F", GRADIENT / 7, GRADIENT / GRADIENT.max() * 255),
    # negative values: the minimum is black
    ("F", GRADIENT - 500, (GRADIENT - GRADIENT.min()) / (GRADIENT.max() - GRADIENT.min()) * 255),
    # a float image in 0..1, an integer image within 0..255: values keep their meaning
    ("F", GRADIENT / 1000, GRADIENT / 1000 * 255),
    ("I", GRADIENT / 10 * 2, GRADIENT / 10 * 2),
])
def test_high_range_modes_are_scaled_not_black(mode, values, expected_grey):
    dtype = {"I;16": np.uint16, "I": np.int32, "F": np.float32}[mode]
    img = Image.fromarray(values.astype(dtype))
    assert img.mode == mode
    rgb = np.asarray(data.to_rgb(img)).astype(int)
    assert rgb.shape == (10, 10, 3)
    # one 8-bit level: the rounding of the scaled value
    assert np.abs(rgb - np.round(expected_grey)[..., None]).max() <= 1


def test_16_bit_png_file_keeps_its_gradient(tmp_path):
    path = str(tmp_path / "depth.png")
    Image.fromarray(GRADIENT.astype(np.uint16) * 4).save(path)     # a 12-bit sensor's range
    grey = np.asarray(data.load_rgb(path))[..., 0].astype(int)
    assert np.abs(grey - np.round(GRADIENT / GRADIENT.max() * 255)).max() <= 1


@pytest.mark.parametrize("mode, pixel, expected", [
    ("1", 1, (255, 255, 255)),
    ("L", 77, (77, 77, 77)),
    ("LA", (77, 0), (255, 255, 255)),            # transparent: the white background
    ("LA", (77, 255), (77, 77, 77)),
    ("La", (77, 255), (77, 77, 77)),
    ("RGBA", (10, 20, 30, 255), (10, 20, 30)),
    ("RGBa", (10, 20, 30, 255), (10, 20, 30)),
    ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ("CMYK", (0, 0, 0, 255), (0, 0, 0)),
    ("YCbCr", (255, 128, 128), (255, 255, 255)),
])
def test_every_mode_converts_to_the_colour_it_shows(mode, pixel, expected):
    rgb = np.asarray(data.to_rgb(Image.new(mode, (4, 4), pixel)))
    assert np.abs(rgb.astype(int) - np.array(expected)).max() <= 1, rgb[0, 0]


def test_palette_with_transparency_composited_on_white(tmp_path):
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 200, 10, 10] + [0] * 762)
    img.info["transparency"] = 1
    assert np.asarray(data.to_rgb(img)).min() == 255
    del img.info["transparency"]
    assert tuple(np.asarray(data.to_rgb(img))[0, 0]) == (200, 10, 10)


# --- a bad file is reported once, whatever the number of workers -----------------------------

WORKERS_MEET_A_BAD_FILE = """
import sys, torch
from train import data
ds = data.UnalignedDataset(sys.argv[1], load_size=36, crop_size=32)
items = [(1, i % 2, i) for i in range(8)]                     # every item meets the bad file
for epoch in range(2):                                         # fresh workers each epoch
    loader = torch.utils.data.DataLoader(ds, batch_sampler=[items[i:i + 2] for i in range(0, 8, 2)],
                                         num_workers=2)
    for batch in loader:
        assert all(p.endswith("a2.png") for p in batch["A_paths"])
print("done")
"""


def test_bad_file_warned_once_across_workers_and_epochs(tmp_path):
    root = make_root(tmp_path, n_a=4, n_b=2)
    (tmp_path / "trainA" / "a1.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    # a fresh interpreter, as a user runs it (pytest would capture the workers' warnings)
    proc = subprocess.run([sys.executable, "-c", WORKERS_MEET_A_BAD_FILE, root], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.stdout.strip() == "done", proc.stderr
    assert proc.stderr.count("skipping unreadable image") == 1 and proc.stderr.count("a1.png") == 1, proc.stderr


def test_folder_without_a_readable_image_fails_when_the_dataset_is_built(tmp_path):
    root = make_root(tmp_path, n_a=2, n_b=1)
    for f in (tmp_path / "trainA").glob("*.png"):
        f.write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="skipping unreadable image"):
        with pytest.raises(data.DataError, match=r"no readable image among the 2 in .*trainA"):
            data.UnalignedDataset(root, load_size=36, crop_size=32)   # in the main process, not a worker


# EXIF orientation: 1 as stored, 6 turn 90 degrees clockwise, 8 anticlockwise, 3 half a turn
@pytest.mark.parametrize("orientation, upright_size, red_corner", [
    (1, (40, 24), "top left"), (6, (24, 40), "top right"), (8, (24, 40), "bottom left"), (3, (40, 24), "bottom right")])
def test_exif_orientation_is_applied_when_an_image_is_read(tmp_path, orientation, upright_size, red_corner):
    # A phone stores a sideways photo sideways with an EXIF tag saying how to turn it; every
    # reader (training data, translate, evaluate) goes through load_rgb.
    pixels = np.zeros((24, 40, 3), dtype=np.uint8)
    pixels[:4, :4] = (255, 0, 0)  # a red corner shows which way the stored image was turned
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "photo.jpg"
    Image.fromarray(pixels).save(path, exif=exif, quality=100)
    img = data.load_rgb(path)
    assert img.size == upright_size
    arr = np.asarray(img).astype(int)
    corners = {"top left": arr[1, 1], "top right": arr[1, -2], "bottom left": arr[-2, 1], "bottom right": arr[-2, -2]}
    assert [name for name, (r, g, b) in corners.items() if r > 200 and g < 60 and b < 60] == [red_corner]
