"""FID during training on a folder dataset with testA / testB: logged every --eval_freq steps,
best.pt is the checkpoint of the lowest mean FID, and it survives a resume. The Inception
network is replaced by a stand-in feature extractor (a test double): these tests check the
run's bookkeeping, tests/train/test_fid_kid.py checks the metrics themselves."""
import os
import sys

import numpy as np
import pytest
import torch
from PIL import Image

import models
from helpers import TINY, read_jsonl, run_train
from train.evaluation.tracking import FIDTracker


def colour_statistics(images):
    """Test double for Inception: per-channel mean and std of uint8 images (n, 3, H, W)."""
    x = images.double() / 255
    return torch.cat([x.mean((2, 3)), x.std((2, 3))], 1).numpy()


def make_root(root, n=4, size=32):
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB", "testA", "testB"):
        os.makedirs(root / split)
        for i in range(n):
            pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / split / f"{i}.png")
    return root


@pytest.fixture
def stand_in_inception(monkeypatch):
    monkeypatch.setattr(FIDTracker, "_inception", staticmethod(lambda weights, device: colour_statistics))


def fid_records(run_dir):
    return [r for r in read_jsonl(os.path.join(run_dir, "metrics.jsonl")) if r["type"] == "fid"]


def test_fid_every_eval_freq_and_best_checkpoint(tmp_path, stand_in_inception):
    root = make_root(tmp_path / "data")
    args = ["--name", "f", "--checkpoints_dir", tmp_path / "ck", "--dataroot", root, *TINY, "--num_threads", "0",
            "--eval_freq", "2", "--save_latest_freq", "100", "--n_epochs", "3", "--n_epochs_decay", "2"]  # 10 steps
    assert run_train(*args, "--max_steps", "6") == 0
    run_dir = tmp_path / "ck" / "f"
    records = fid_records(run_dir)
    assert [r["step"] for r in records] == [2, 4, 6]
    for r in records:
        assert r["fid"] == pytest.approx((r["fid_AtoB"] + r["fid_BtoA"]) / 2)
    best = min(records, key=lambda r: r["fid"])
    saved = torch.load(run_dir / "best.pt", weights_only=True)
    assert saved["step"] == best["step"] and saved["best_fid"] == pytest.approx(best["fid"])
    assert isinstance(models.load_generator(str(run_dir / "best.pt"), direction="AtoB"), torch.nn.Module)

    # a resumed run remembers the best FID: best.pt is replaced only by a lower one
    assert run_train(*args, "--resume", "--max_steps", "10") == 0
    records = fid_records(run_dir)
    assert [r["step"] for r in records] == [2, 4, 6, 8, 10]
    best = min(records, key=lambda r: r["fid"])
    assert torch.load(run_dir / "best.pt", weights_only=True)["step"] == best["step"]


@pytest.mark.parametrize("missing, reason", [
    ("weights", "no FID during training"),
    ("torch-fidelity", "no FID during training: FID / KID need the torch-fidelity package"),
])
def test_without_the_weights_or_torch_fidelity_training_goes_on_and_says_why(tmp_path, monkeypatch, capsys,
                                                                               missing, reason):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))  # no cached weights either
    if missing == "torch-fidelity":
        monkeypatch.setitem(sys.modules, "torch_fidelity", None)  # import torch_fidelity now fails
    root = make_root(tmp_path / "data")
    code = run_train("--name", "f", "--checkpoints_dir", tmp_path / "ck", "--dataroot", root, *TINY,
                     "--num_threads", "0", "--eval_freq", "1", "--max_steps", "2")
    assert code == 0
    assert reason in capsys.readouterr().out
    assert not fid_records(tmp_path / "ck" / "f")
    assert not os.path.exists(tmp_path / "ck" / "f" / "best.pt")


def test_best_follows_the_lowest_fid_across_a_resume(tmp_path, stand_in_inception, monkeypatch):
    """Scripted FIDs 5, 3, 4 (steps 2, 4, 6), then after --resume 6, 7 (steps 8, 10): best.pt must
    stay the step-4 checkpoint, which needs the best FID restored from latest.pt."""
    scripted = iter([5.0, 3.0, 4.0, 6.0, 7.0])

    def measure(self, generator_AtoB, generator_BtoA):
        value = next(scripted)
        return {"fid": value, "fid_AtoB": value, "fid_BtoA": value}

    monkeypatch.setattr(FIDTracker, "measure", measure)
    root = make_root(tmp_path / "data")
    args = ["--name", "f", "--checkpoints_dir", tmp_path / "ck", "--dataroot", root, *TINY, "--num_threads", "0",
            "--eval_freq", "2", "--n_epochs", "3", "--n_epochs_decay", "2"]
    assert run_train(*args, "--max_steps", "6") == 0
    assert run_train(*args, "--resume", "--max_steps", "10") == 0
    run_dir = tmp_path / "ck" / "f"
    assert [r["fid"] for r in fid_records(run_dir)] == [5.0, 3.0, 4.0, 6.0, 7.0]
    best = torch.load(run_dir / "best.pt", weights_only=True)
    assert best["step"] == 4 and best["best_fid"] == 3.0


@pytest.mark.parametrize("scores,expected", [([3, 2, 2.5, 1, 1], [True, True, False, True, False]),
                                             ([float("nan"), 1], [False, True])])
def test_is_best_only_for_a_strictly_lower_fid(scores, expected):
    tracker = FIDTracker(test_paths=None, size=32, extract=None, device="cpu")
    assert [tracker.is_best(s) for s in scores] == expected


@pytest.mark.parametrize("dataset", ["folder without testA / testB", "synthetic"])
def test_inception_weights_that_cannot_be_used_are_named_not_ignored_silently(tmp_path, capsys, dataset):
    weights = tmp_path / "weights.pth"
    weights.write_bytes(b"never read")
    data = []
    if dataset != "synthetic":
        root = make_root(tmp_path / "data")
        for side in "AB":
            os.rename(root / f"test{side}", root / f"unused_test{side}")
        data = ["--dataroot", root]
    code = run_train("--name", "f", "--checkpoints_dir", tmp_path / "ck", *data, *TINY, "--eval_freq", "1",
                     "--max_steps", "1", "--inception_weights", weights)
    assert code == 0
    out = capsys.readouterr().out
    expected = ("there is no " if data else "the synthetic data are evaluated by PSNR / SSIM")
    assert "no FID during training" in out and expected in out
