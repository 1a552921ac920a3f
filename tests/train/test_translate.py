import base64
import io
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from urllib.parse import unquote

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import models
from fault_files import Evil, FullDisk
from train import translate
from train.data import load_rgb, pil_to_tensor
from train.data import to_uint8
from helpers import REPO

SIZES = {"wide.jpg": (45, 30), os.path.join("sub", "grey.png"): (32, 32), "rgba.png": (33, 29)}


def make_inputs(folder):
    rng = np.random.default_rng(0)
    os.makedirs(folder / "sub", exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(folder / "wide.jpg")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L").save(folder / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (29, 33, 4), dtype=np.uint8), "RGBA").save(folder / "rgba.png")
    return folder


def training_checkpoint(path):
    """A checkpoint as `python -m train` writes it: both generators as payloads."""
    torch.manual_seed(0)
    checkpoint = {"format": "cyclegan_ext.train", "version": 1, "step": 1, "opt": {},
                  "generators": {d: models.generator_payload(models.build_generator("adalin", ngf=4, n_blocks=1), "adalin")
                                 for d in ("AtoB", "BtoA")}}
    torch.save(checkpoint, path)
    return path


def official_checkpoint(path):
    torch.manual_seed(0)
    net = models.ResnetGenerator(ngf=4, n_blocks=6).eval()
    torch.save(net.state_dict(), path)
    return path


def expected_output(net, path, size=None):
    """Written out by hand: at the image's own size, reflect-pad right/bottom to multiples of 4,
    translate, crop; with a size, translate the size x size resize and resize the result back."""
    img = load_rgb(path)
    w, h = img.size
    if size:
        x = pil_to_tensor(img.resize((size, size), Image.BICUBIC))[None]
    else:
        x = F.pad(pil_to_tensor(img)[None], (0, (4 - w % 4) % 4, 0, (4 - h % 4) % 4), mode="reflect")
    with torch.no_grad():
        y = net(x)[0]
    if size:
        return np.asarray(Image.fromarray(to_uint8(y)).resize((w, h), Image.BICUBIC))
    return to_uint8(y[:, :h, :w])


def run_cli(*args):
    return translate.main([str(a) for a in args] + ["--no_progress"])


def check_outputs(out_dir, net, in_dir, size=None):
    for src, (w, h) in SIZES.items():
        got = np.asarray(Image.open(out_dir / (os.path.splitext(src)[0] + ".png")))
        assert got.shape == (h, w, 3), src                     # the input's own size
        exp = expected_output(net, in_dir / src, size)
        # the same float computation run twice: equal up to a rounding flip of one 8-bit level
        assert np.abs(got.astype(int) - exp.astype(int)).max() <= 1, src


def test_our_training_checkpoint_both_directions(tmp_path):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "ab") == 0
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "ba", "--direction", "BtoA") == 0
    check_outputs(tmp_path / "ab", models.load_generator(ckpt, "AtoB"), inp)
    check_outputs(tmp_path / "ba", models.load_generator(ckpt, "BtoA"), inp)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "ab" / "rgba.png")),
                              np.asarray(Image.open(tmp_path / "ba" / "rgba.png")))


@pytest.mark.parametrize("size", [(257, 131), (131, 257), (33, 9), (5, 3), (1, 1), (64, 48)])
def test_outputs_have_the_exact_input_size(tmp_path, size):
    os.makedirs(tmp_path / "in")
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(tmp_path / "in" / "x.png")
    ckpt = official_checkpoint(tmp_path / "g.pth")
    assert run_cli("--checkpoint", ckpt, "--input", tmp_path / "in", "--output", tmp_path / "o") == 0
    assert Image.open(tmp_path / "o" / "x.png").size == size
    if min(size) >= 8:
        got = np.asarray(Image.open(tmp_path / "o" / "x.png")).astype(int)
        exp = expected_output(models.load_generator(ckpt), tmp_path / "in" / "x.png").astype(int)
        assert np.abs(got - exp).max() <= 1


def test_official_cyclegan_state_dict_and_size(tmp_path):
    inp = make_inputs(tmp_path / "in")
    path = official_checkpoint(tmp_path / "latest_net_G_A.pth")
    assert run_cli("--checkpoint", path, "--input", inp, "--output", tmp_path / "o", "--size", "24") == 0
    check_outputs(tmp_path / "o", models.load_generator(path), inp, size=24)
    # single file input
    assert run_cli("--checkpoint", path, "--input", inp / "wide.jpg", "--output", tmp_path / "one") == 0
    assert sorted(os.listdir(tmp_path / "one")) == ["index.html", "wide.png"]


def test_inputs_differing_only_in_case_or_extension_get_distinct_outputs(tmp_path):
    """a.PNG, a.png, a.jpg (and a_png.png, the name one of them would get) all become a.png
    plainly: each gets an output of its own, the same on every run, holding its own translation."""
    os.makedirs(tmp_path / "in")
    rng = np.random.default_rng(5)
    names = ["a.JPG", "a.PNG", "a.jpg", "a.png", "a_png.png", "b.png"]
    for name in names:  # different pixels in each, so a swapped output would show
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(tmp_path / "in" / name,
                                                                                format="PNG")
    ckpt = official_checkpoint(tmp_path / "g.pth")
    assert run_cli("--checkpoint", ckpt, "--input", tmp_path / "in", "--output", tmp_path / "o") == 0
    outputs = sorted(f for f in os.listdir(tmp_path / "o") if f.endswith(".png"))
    assert len(outputs) == len(names) and len({f.casefold() for f in outputs}) == len(names)
    assert "a_png.png" in outputs and "b.png" in outputs  # plain names stay with their own input
    mapping = dict(translate.list_inputs(str(tmp_path / "in"), str(tmp_path / "o")))
    assert mapping == dict(translate.list_inputs(str(tmp_path / "in"), str(tmp_path / "o2")))  # deterministic
    assert mapping[str(tmp_path / "in" / "a_png.png")] == "a_png.png"
    net = models.load_generator(ckpt)
    for source, rel in mapping.items():
        got = np.asarray(Image.open(tmp_path / "o" / rel)).astype(int)
        # the same float computation run twice: equal up to a rounding flip of one 8-bit level
        assert np.abs(got - expected_output(net, source).astype(int)).max() <= 1, (source, rel)


def test_output_names_are_distinct_ignoring_case_in_subfolders_too():
    from train.translate.names import output_names
    rels = [os.path.join("s", n) for n in ("x.PNG", "x.png", "x_png.png", "x_png_2.png")] + ["S/x.png", "y.tif"]
    names = output_names(rels)
    assert len({n.casefold() for n in names}) == len(rels)
    assert names[2:4] == [os.path.join("s", "x_png.png"), os.path.join("s", "x_png_2.png")]  # their own
    assert names[-1] == "y.png" and all(n.endswith(".png") for n in names)
    assert output_names(rels) == names


def test_ugatit_checkpoint_direction(tmp_path):
    inp = make_inputs(tmp_path / "in")
    torch.manual_seed(0)
    a2b = models.UGATITGenerator(ngf=8, n_blocks=1, img_size=32, light=True).eval()
    b2a = models.UGATITGenerator(ngf=8, n_blocks=1, img_size=32, light=True).eval()
    path = tmp_path / "ugatit_params_0001000.pt"
    torch.save({"genA2B": a2b.state_dict(), "genB2A": b2a.state_dict(), "disGA": {}}, path)
    assert run_cli("--checkpoint", path, "--input", inp, "--output", tmp_path / "ba", "--direction", "BtoA",
                   "--batch_size", "2") == 0
    check_outputs(tmp_path / "ba", b2a, inp)


def test_ugatit_full_generator_runs_at_its_size(tmp_path):
    inp = make_inputs(tmp_path / "in")
    torch.manual_seed(0)
    net = models.UGATITGenerator(ngf=8, n_blocks=1, img_size=16, light=False).eval()
    torch.save(net.state_dict(), tmp_path / "g.pt")
    assert run_cli("--checkpoint", tmp_path / "g.pt", "--input", inp, "--output", tmp_path / "o") == 0
    check_outputs(tmp_path / "o", net, inp, size=16)


def test_refuses_to_overwrite_outputs(tmp_path, capsys):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 0
    (tmp_path / "o" / "wide.png").write_bytes(b"keep me")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "o" / "wide.png").read_bytes() == b"keep me"
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o", "--overwrite") == 0
    assert Image.open(tmp_path / "o" / "wide.png").size == (45, 30)


@pytest.mark.parametrize("overwrite", [False, True])
def test_never_writes_over_inputs(tmp_path, capsys, overwrite):
    inp = make_inputs(tmp_path / "in")
    before = {p: p.read_bytes() for p in inp.rglob("*") if p.is_file()}
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    flags = ["--overwrite"] if overwrite else []
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", inp, *flags) == 2
    assert "is the input folder" in capsys.readouterr().err
    # one input file whose output would land on another input (sub/grey.png)
    assert run_cli("--checkpoint", ckpt, "--input", inp / "sub" / "grey.png", "--output", inp / "sub", *flags) == 2
    assert "would overwrite an input image" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in inp.rglob("*") if p.is_file()} == before


def test_output_folder_inside_the_input_folder_is_not_read_as_input(tmp_path):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", inp / "out") == 0
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", inp / "out", "--overwrite") == 0
    assert sorted(p.name for p in (inp / "out").rglob("*.png")) == ["grey.png", "rgba.png", "wide.png"]


def test_unreadable_images_are_each_reported_and_the_rest_translated(tmp_path, capsys):
    inp = make_inputs(tmp_path / "in")
    (inp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    (inp / "sub" / "text.jpg").write_text("not an image")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert translate.main(["--checkpoint", str(ckpt), "--input", str(inp), "--output", str(tmp_path / "o")]) == 1
    out, err = capsys.readouterr()
    assert re.search(r"\[\d/5\] .*broken.png: cannot read it: ", err)
    assert re.search(r"\[\d/5\] .*text.jpg: cannot read it: ", err)
    assert re.search(r"\[\d/5\] wide.png 45x30 -> .*wide.png \d+\.\d s", out)        # progress per image
    assert "translated 3 of 5 image(s)" in out and "2 could not be translated" in out
    assert sorted(p.name for p in (tmp_path / "o").rglob("*.png")) == ["grey.png", "rgba.png", "wide.png"]
    page = (tmp_path / "o" / "index.html").read_text()
    assert "broken.png" in page and "text.jpg" in page and "Not translated" in page


def test_nothing_readable_is_a_failure(tmp_path, capsys):
    os.makedirs(tmp_path / "in")
    for name in ("a.png", "b.jpg"):
        (tmp_path / "in" / name).write_bytes(b"garbage")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", tmp_path / "in", "--output", tmp_path / "o") == 1
    out, err = capsys.readouterr()
    assert "translated 0 of 2 image(s)" in out and "a.png" in err and "b.jpg" in err


def test_out_of_memory_names_the_image_and_how_to_downscale(tmp_path, capsys, monkeypatch):
    inp = make_inputs(tmp_path / "in")
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)).save(inp / "big.png")
    real_run = translate.Translation.run

    def run_with_little_memory(self, x):
        if x.shape[-1] * x.shape[-2] > 40 * 40:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_run(self, x)

    monkeypatch.setattr(translate.Translation, "run", run_with_little_memory)
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 1
    out, err = capsys.readouterr()
    assert "big.png: out of memory translating a 96x64 image on cpu: translate it smaller with --size 48" in err
    assert "Traceback" not in err and "translated 3 of 4" in out
    monkeypatch.undo()
    assert run_cli("--checkpoint", ckpt, "--input", inp / "big.png", "--output", tmp_path / "small",
                   "--size", "48") == 0
    assert Image.open(tmp_path / "small" / "big.png").size == (96, 64)


class PageLinks(HTMLParser):
    """The page's links, and its table rows as [(image src, caption text)] per cell."""

    def __init__(self):
        super().__init__()
        self.links, self.rows = [], []
        self.cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr":
            self.rows.append([])
        if tag == "td":
            self.cell = ["", ""]
        if tag == "img" and self.cell is not None:
            self.cell[0] = unquote(attrs["src"])
        if tag == "a":
            self.links.append(attrs["href"])

    def handle_data(self, data):
        if self.cell is not None:
            self.cell[1] += data

    def handle_endtag(self, tag):
        if tag == "td":
            self.rows[-1].append(tuple(self.cell))
            self.cell = None
        if tag == "table":
            self.rows = [row for row in self.rows if row]  # the header row has no cells


def embedded_image(src):
    prefix = "data:image/jpeg;base64,"
    assert src.startswith(prefix), src[:40]
    return Image.open(io.BytesIO(base64.b64decode(src[len(prefix):])))


def test_page_names_each_image_and_moves_with_its_folder(tmp_path):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 0
    os.rename(tmp_path / "o", tmp_path / "moved")
    shutil.rmtree(inp)  # the page needs neither the inputs nor the folder's old place
    parser = PageLinks()
    parser.feed((tmp_path / "moved" / "index.html").read_text())
    captions = {}
    for (source, input_caption), (target, output_caption) in parser.rows:
        w, h = embedded_image(source).size
        assert (w, h) == SIZES[input_caption] and os.path.isfile(tmp_path / "moved" / target)
        assert Image.open(tmp_path / "moved" / target).size == (w, h)
        captions[input_caption] = output_caption.split(",")[0]
    # each image under its own name: the input's as it was found, the output's as written
    assert captions == {src: os.path.splitext(src)[0] + ".png" for src in SIZES}


def test_results_pages_show_input_and_output_side_by_side(tmp_path):
    os.makedirs(tmp_path / "in")
    rng = np.random.default_rng(3)
    for i in range(101):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(tmp_path / "in" / f"p{i:03d}.png")
    (tmp_path / "in" / "zz_bad.png").write_bytes(b"nope")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    out = tmp_path / "o"
    assert run_cli("--checkpoint", ckpt, "--input", tmp_path / "in", "--output", out) == 1
    pages = ["index.html", "index_2.html", "index_3.html"]
    assert sorted(f for f in os.listdir(out) if f.endswith(".html")) == pages
    shown = []
    for name in pages:
        parser = PageLinks()
        parser.feed((out / name).read_text())
        assert set(parser.links) == set(pages) - {name}                     # links to the other pages
        for (source, input_caption), (target, output_caption) in parser.rows:
            assert embedded_image(source).size == (8, 8)                    # the input itself, embedded
            assert os.path.isfile(out / target)
            assert output_caption.startswith(input_caption + ", 8x8")       # input next to its output
            shown.append(target)
    assert shown == [f"p{i:03d}.png" for i in range(101)]                   # 50 + 50 + 1, in order
    assert "zz_bad.png" in (out / "index.html").read_text()
    assert "zz_bad.png" not in (out / "index_2.html").read_text()
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    # a smaller rerun with --overwrite leaves no stale page behind
    assert run_cli("--checkpoint", ckpt, "--input", tmp_path / "in" / "p000.png", "--output", out, "--overwrite") == 0
    assert sorted(f for f in os.listdir(out) if f.endswith(".html")) == ["index.html"]


def translate_in_a_fresh_process(checkpoint, inp, out):
    return subprocess.run([sys.executable, "-m", "train.translate", "--checkpoint", checkpoint,
                           "--input", inp, "--output", out], cwd=REPO, capture_output=True, text=True)


def test_unsafe_checkpoint_refused_and_nothing_runs(tmp_path):
    inp = make_inputs(tmp_path / "in")
    marker = tmp_path / "code_ran"
    net = models.ResnetGenerator(ngf=8, n_blocks=6)
    sd = dict(net.state_dict())
    sd["extra"] = Evil(str(marker))
    torch.save(sd, tmp_path / "evil.pth")
    proc = translate_in_a_fresh_process(tmp_path / "evil.pth", inp, tmp_path / "o")
    assert proc.returncode == 2
    assert "unsafe" in proc.stderr and "evil.pth" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()


@pytest.mark.parametrize("kind", ["truncated", "random_bytes"])
def test_broken_checkpoint_is_one_clear_line(tmp_path, kind):
    inp = make_inputs(tmp_path / "in")
    path = tmp_path / "latest.pt"
    if kind == "truncated":
        full = training_checkpoint(tmp_path / "full.pt").read_bytes()
        path.write_bytes(full[:len(full) // 2])
        expected = f"error: checkpoint file '{path}' is truncated or corrupt"
    else:
        path.write_bytes(bytes(range(7, 256)))
        expected = f"error: checkpoint file '{path}' is not a PyTorch checkpoint"
    proc = translate_in_a_fresh_process(path, inp, tmp_path / "o")
    assert proc.returncode == 2
    assert proc.stderr.startswith(expected) and proc.stderr.count("\n") == 1, proc.stderr
    assert not (tmp_path / "o").exists()


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    inp = make_inputs(tmp_path / "in")
    torch.save({"weights": torch.ones(3)}, tmp_path / "odd.pt")
    assert run_cli("--checkpoint", tmp_path / "odd.pt", "--input", inp, "--output", tmp_path / "o") == 2
    assert "odd.pt' is a PyTorch file but not a generator checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("flags, message", [
    (["--size", "2"], "--size must be at least 8"),
    (["--batch_size", "0"], "--batch_size must be >= 1"),
    (["--device", "gpu7"], "--device 'gpu7' is not a device"),
])
def test_bad_arguments_are_one_line(tmp_path, capsys, flags, message):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o", *flags) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_missing_input_is_one_line(tmp_path, capsys):
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", tmp_path / "nowhere", "--output", tmp_path / "o") == 2
    assert "--input" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_ctrl_c_is_a_message_not_a_traceback(tmp_path, capsys, monkeypatch):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")

    def interrupted(self, x):
        raise KeyboardInterrupt

    monkeypatch.setattr(translate.Translation, "run", interrupted)
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 130
    assert capsys.readouterr().err.startswith("interrupted: the outputs written so far are complete")


def test_full_disk_while_writing_outputs_is_one_line(tmp_path, capsys, monkeypatch):
    inp = make_inputs(tmp_path / "in")
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode), room=100))
    assert run_cli("--checkpoint", ckpt, "--input", inp / "wide.jpg", "--output", tmp_path / "o") == 2
    monkeypatch.undo()
    target = os.path.join(str(tmp_path / "o"), "wide.png")
    assert capsys.readouterr().err == (f"error: no space left on device while writing {target}; "
                                       "there was no previous output and nothing was written\n")
    assert os.listdir(tmp_path / "o") == []                  # no partial PNG, no temporary
