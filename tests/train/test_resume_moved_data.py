"""A run follows its dataset: a moved folder resumes with `--resume --dataroot NEW` (the same
images recognised), a relative --dataroot resumes from another working directory, a dataset
that changed is said, and a resume whose dataset is gone says how to point at it."""
import os

import numpy as np
from PIL import Image

from helpers import TINY, run_train, train_records

ARGS = [*TINY, "--print_freq", "1", "--save_latest_freq", "2", "--display_freq", "100"]


def make_root(root, n=3, size=32):
    rng = np.random.default_rng(0)
    for split in ("trainA", "trainB"):
        os.makedirs(root / split)
        for i in range(n):
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / split / f"{i}.png")
    return root


def steps(run_dir):
    return [r["step"] for r in train_records(run_dir)]


def test_moved_dataset_resumes_with_its_new_path_and_a_changed_one_is_said(tmp_path, capsys):
    old = make_root(tmp_path / "D1")
    run = ["--name", "r", "--checkpoints_dir", tmp_path / "ck"]
    assert run_train(*run, "--dataroot", old, *ARGS, "--max_steps", "2") == 0
    new = tmp_path / "D2"
    os.rename(old, new)
    capsys.readouterr()

    assert run_train(*run, "--resume", "--max_steps", "3") != 0
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == (f"error: this run's --dataroot {old} no longer exists; if the dataset "
                                            "moved, resume with --resume --dataroot NEW_PATH (the same images are "
                                            "recognised)")

    assert run_train(*run, "--resume", "--dataroot", new, "--max_steps", "4") == 0
    out = capsys.readouterr().out
    assert f"the dataset moved: {old} -> {new} (the same training images); continuing" in out
    assert "warning" not in out and steps(tmp_path / "ck" / "r") == [1, 2, 3, 4]

    Image.new("RGB", (32, 32)).save(new / "trainB" / "extra.png")
    assert run_train(*run, "--resume", "--dataroot", new, "--max_steps", "5") == 0
    out = capsys.readouterr().out
    assert f"warning: {new} does not hold the training images this run was trained on (trainB 3 -> 4 images)" in out


def test_relative_dataroot_resumes_from_another_working_directory(tmp_path, monkeypatch):
    make_root(tmp_path / "work" / "data")
    os.makedirs(tmp_path / "elsewhere")
    monkeypatch.chdir(tmp_path / "work")
    run = ["--name", "r", "--checkpoints_dir", tmp_path / "ck"]
    assert run_train(*run, "--dataroot", "data", *ARGS, "--max_steps", "2") == 0
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert run_train(*run, "--resume", "--max_steps", "3") == 0
    assert steps(tmp_path / "ck" / "r") == [1, 2, 3]


def test_a_synthetic_run_cannot_be_resumed_on_a_folder(tmp_path, capsys):
    run = ["--name", "r", "--checkpoints_dir", tmp_path / "ck"]
    assert run_train(*run, *ARGS, "--max_steps", "2") == 0
    root = make_root(tmp_path / "D")
    assert run_train(*run, "--resume", "--dataroot", root, "--max_steps", "3") != 0
    assert "this run trains on the synthetic data; --dataroot cannot be given when resuming it" in capsys.readouterr().err
