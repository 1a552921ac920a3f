import os
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

import models
from train import translate
from train.data import load_rgb, make_power_2, pil_to_tensor
from train.report import to_uint8

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def make_inputs(folder):
    rng = np.random.default_rng(0)
    os.makedirs(folder / "sub", exist_ok=True)
    Image.fromarray(rng.integers(0, 256, (30, 45, 3), dtype=np.uint8)).save(folder / "wide.jpg")
    Image.fromarray(rng.integers(0, 256, (32, 32), dtype=np.uint8), "L").save(folder / "sub" / "grey.png")
    Image.fromarray(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8), "RGBA").save(folder / "rgba.png")
    return folder


def expected_output(net, path, size=None):
    img = load_rgb(path)
    img = img.resize((size, size), Image.BICUBIC) if size else make_power_2(img, 4)
    with torch.no_grad():
        return to_uint8(net(pil_to_tensor(img)[None])[0])


def run_cli(*args):
    return translate.main([str(a) for a in args] + ["--no_progress"])


def check_outputs(out_dir, net, in_dir, size=None):
    names = {"wide.jpg": "wide.png", os.path.join("sub", "grey.png"): os.path.join("sub", "grey.png"),
             "rgba.png": "rgba.png"}
    for src, dst in names.items():
        got = np.asarray(Image.open(out_dir / dst))
        exp = expected_output(net, in_dir / src, size)
        assert got.shape == exp.shape
        assert np.abs(got.astype(int) - exp.astype(int)).max() <= 1, dst


def test_our_training_checkpoint_both_directions(tmp_path, tiny_run):
    inp = make_inputs(tmp_path / "in")
    ckpt = os.path.join(tiny_run, "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "ab") == 0
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "ba", "--direction", "BtoA") == 0
    assert Image.open(tmp_path / "ab" / "wide.png").size == (44, 32)   # 45x30 -> multiples of 4
    check_outputs(tmp_path / "ab", models.load_generator(ckpt, "AtoB"), inp)
    check_outputs(tmp_path / "ba", models.load_generator(ckpt, "BtoA"), inp)
    assert not np.array_equal(np.asarray(Image.open(tmp_path / "ab" / "rgba.png")),
                              np.asarray(Image.open(tmp_path / "ba" / "rgba.png")))


def test_official_cyclegan_state_dict_and_size(tmp_path):
    inp = make_inputs(tmp_path / "in")
    torch.manual_seed(0)
    net = models.ResnetGenerator(ngf=8, n_blocks=6).eval()
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(net.state_dict(), path)
    assert run_cli("--checkpoint", path, "--input", inp, "--output", tmp_path / "o", "--size", "24") == 0
    check_outputs(tmp_path / "o", net, inp, size=24)
    # single file input
    assert run_cli("--checkpoint", path, "--input", inp / "wide.jpg", "--output", tmp_path / "one") == 0
    assert os.listdir(tmp_path / "one") == ["wide.png"]


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


def test_refuses_to_overwrite_outputs(tmp_path, tiny_run, capsys):
    inp = make_inputs(tmp_path / "in")
    ckpt = os.path.join(tiny_run, "latest.pt")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 0
    (tmp_path / "o" / "wide.png").write_bytes(b"keep me")
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o") == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "o" / "wide.png").read_bytes() == b"keep me"
    assert run_cli("--checkpoint", ckpt, "--input", inp, "--output", tmp_path / "o", "--overwrite") == 0
    assert Image.open(tmp_path / "o" / "wide.png").size == (44, 32)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_unsafe_checkpoint_refused_and_nothing_runs(tmp_path):
    inp = make_inputs(tmp_path / "in")
    marker = tmp_path / "code_ran"
    net = models.ResnetGenerator(ngf=8, n_blocks=6)
    sd = dict(net.state_dict())
    sd["extra"] = Evil(str(marker))
    torch.save(sd, tmp_path / "evil.pth")
    # run as a user would, in a fresh process
    proc = subprocess.run([sys.executable, "-m", "train.translate", "--checkpoint", tmp_path / "evil.pth",
                           "--input", inp, "--output", tmp_path / "o"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "refusing to load" in proc.stderr and "evil.pth" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not marker.exists() and not (tmp_path / "o").exists()


def test_bad_checkpoint_is_a_clear_error(tmp_path, capsys):
    inp = make_inputs(tmp_path / "in")
    torch.save({"weights": torch.ones(3)}, tmp_path / "odd.pt")
    assert run_cli("--checkpoint", tmp_path / "odd.pt", "--input", inp, "--output", tmp_path / "o") == 2
    assert "error:" in capsys.readouterr().err
