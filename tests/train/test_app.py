"""python -m train.app without a browser: the Translator the page calls (translations at the
photo's own size in each direction the checkpoint holds, bad uploads as one line each) and the
command's own errors. The page itself, in headless Chromium: test_app_browser.py."""
import socket
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import models
from train import app
from train.app.translator import Translator
from train.app.uploads import UploadError, read_upload
from train.data import load_rgb, pil_to_tensor, to_uint8


def training_checkpoint(path):
    torch.manual_seed(0)
    torch.save({"format": "cyclegan_ext.train", "version": 1, "step": 123, "opt": {},
                "generators": {d: models.generator_payload(models.build_generator("adalin", ngf=4, n_blocks=1),
                                                           "adalin") for d in ("AtoB", "BtoA")}}, path)
    return path


def photo(path, size=(45, 30), seed=0):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def expected_translation(net, path):
    """Written out by hand, as translate does: reflect-pad right/bottom to multiples of 4,
    translate, crop back to the photo's size."""
    img = load_rgb(path)
    w, h = img.size
    x = F.pad(pil_to_tensor(img)[None], (0, -w % 4, 0, -h % 4), mode="reflect")
    with torch.no_grad():
        return to_uint8(net(x)[0][:, :h, :w])


def test_both_directions_at_the_photos_own_size(tmp_path):
    ckpt = training_checkpoint(tmp_path / "latest.pt")
    translator = Translator.from_checkpoint(str(ckpt), torch.device("cpu"))
    assert translator.description() == {"checkpoint": "latest.pt", "architecture": "adalin, ngf 4", "step": "123"}
    gallery, messages = translator.translate_files([str(photo(tmp_path / "p.png"))])
    assert messages == []
    assert [caption for _, caption in gallery] == ["p.png: photo", "p.png: A → B", "p.png: B → A"]
    assert np.array_equal(np.asarray(gallery[0][0]), np.asarray(Image.open(tmp_path / "p.png")))
    for (image, _), direction in zip(gallery[1:], ("AtoB", "BtoA")):
        assert image.size == (45, 30)
        expected = expected_translation(models.load_generator(str(ckpt), direction), tmp_path / "p.png")
        # the same float computation run twice: equal up to a rounding flip of one 8-bit level
        assert np.abs(np.asarray(image).astype(int) - expected.astype(int)).max() <= 1


def test_a_single_generator_file_translates_once(tmp_path):
    torch.manual_seed(0)
    torch.save(models.ResnetGenerator(ngf=4, n_blocks=6).state_dict(), tmp_path / "latest_net_G_A.pth")
    translator = Translator.from_checkpoint(str(tmp_path / "latest_net_G_A.pth"), torch.device("cpu"))
    assert translator.description() == {"checkpoint": "latest_net_G_A.pth", "architecture": "resnet_6blocks, ngf 4",
                                        "step": "not recorded in this file"}
    gallery, messages = translator.translate_files([str(photo(tmp_path / "tiny.png", size=(5, 3)))])
    assert messages == [] and [caption for _, caption in gallery] == ["tiny.png: photo", "tiny.png: translated"]
    assert gallery[1][0].size == (5, 3)  # enlarged for the generator, then back to the photo's size


def bad_uploads(folder):
    (folder / "notes.png").write_text("not an image")
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue", "green")]
    frames[0].save(folder / "moving.gif", save_all=True, append_images=frames[1:], duration=100)
    photo(folder / "big.png", size=(40, 30))
    data = (folder / "cut.png")
    data.write_bytes((photo(folder / "whole.png", size=(20, 20), seed=1)).read_bytes()[:200])  # truncated
    return {"notes.png": "not an image", "moving.gif": "it has 3 frames", "big.png": "40x30 is 1200 pixels",
            "cut.png": "cannot read it"}


def test_bad_uploads_are_one_line_each_and_the_good_ones_translated(tmp_path):
    expected = bad_uploads(tmp_path)
    translator = Translator.from_checkpoint(str(training_checkpoint(tmp_path / "latest.pt")), torch.device("cpu"),
                                            max_pixels=1000)  # big.png has 1200
    paths = [str(tmp_path / name) for name in expected] + [str(photo(tmp_path / "ok.png", size=(20, 12)))]
    gallery, messages = translator.translate_files(paths)
    assert [caption for _, caption in gallery] == ["ok.png: photo", "ok.png: A → B", "ok.png: B → A"]
    assert len(messages) == len(expected)
    for message, (name, reason) in zip(messages, expected.items()):
        assert message.startswith(f"{name}: ") and reason in message and "\n" not in message
    with pytest.raises(UploadError, match="at most 1000 pixels \\(--max_pixels\\)"):
        read_upload(str(tmp_path / "big.png"), max_pixels=1000)
    assert read_upload(str(tmp_path / "big.png"), max_pixels=1200).size == (40, 30)


def test_command_errors_are_one_line(tmp_path, capsys, monkeypatch):
    ckpt = str(training_checkpoint(tmp_path / "latest.pt"))
    (tmp_path / "photo.png").write_bytes(b"\x89PNG not really")
    for argv, message in [(["--checkpoint", str(tmp_path / "photo.png")], "is not a PyTorch checkpoint"),
                          (["--checkpoint", str(tmp_path / "none.pt")], "none.pt"),
                          (["--checkpoint", ckpt, "--port", "0"], "--port must be in 1..65535"),
                          (["--checkpoint", ckpt, "--max_pixels", "0"], "--max_pixels must be >= 1")]:
        assert app.main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    monkeypatch.setitem(sys.modules, "gradio", None)  # as if it were not installed
    assert app.main(["--checkpoint", ckpt]) == 2
    err = capsys.readouterr().err
    assert "needs gradio" in err and "pip install gradio" in err and len(err.strip().splitlines()) == 1


def test_a_port_in_use_is_one_line(tmp_path, capsys, monkeypatch):
    pytest.importorskip("gradio")
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    ckpt = str(training_checkpoint(tmp_path / "latest.pt"))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert app.main(["--checkpoint", ckpt, "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in err and len(err.strip().splitlines()) == 1
