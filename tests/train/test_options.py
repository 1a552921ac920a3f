"""Option values that cannot work are refused right after parsing: one line, exit status 2."""
import json
import os
import subprocess
import sys

import pytest
import torch

from train import options
from train.options import OptionError
from helpers import REPO



def parse_error(capsys, *argv):
    with pytest.raises(SystemExit) as caught:
        options.parse([str(a) for a in argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("python -m train: error: ") and err.count("\n") == 1, err
    return err


@pytest.fixture
def ckdir(tmp_path):
    return ["--checkpoints_dir", str(tmp_path / "checkpoints")]


def make_dataroot(root, *subfolders):
    for sub in subfolders:
        os.makedirs(os.path.join(root, sub))
    return str(root)


@pytest.mark.parametrize("value", ["0", "-1e-4", "nan", "inf"])
def test_learning_rate_must_be_finite_and_positive(capsys, ckdir, value):
    assert f"--lr must be a finite number > 0, got {float(value)}" in parse_error(capsys, f"--lr={value}", *ckdir)


@pytest.mark.parametrize("argv, message", [
    (["--n_epochs=-1"], "--n_epochs must be an integer >= 0, got -1"),
    (["--n_epochs_decay=-3"], "--n_epochs_decay must be an integer >= 0, got -3"),
    (["--n_epochs", "0", "--n_epochs_decay", "0"], "nothing to train"),
    (["--print_freq", "0"], "--print_freq must be an integer >= 1, got 0"),
    (["--max_dataset_size", "0"], "--max_dataset_size must be an integer >= 1"),
    (["--batch_size", "0"], "--batch_size must be an integer >= 1, got 0"),
    (["--crop_size", "30"], "--crop_size must be a multiple of 4"),
    (["--input_nc", "1"], "--input_nc must be 3"),
    (["--beta1", "1"], "--beta1 must be a number in [0, 1)"),
    (["--seed=-1"], "--seed must be an integer in [0, 2**63)"),
    (["--seed", str(2 ** 64)], "--seed must be an integer in [0, 2**63)"),
    (["--synthetic_seed=-5"], "--synthetic_seed must be an integer in [0, 2**63)"),
])
def test_numbers_that_cannot_work(capsys, ckdir, argv, message):
    assert message in parse_error(capsys, *argv, *ckdir)


def test_crop_larger_than_load_when_resizing(capsys, ckdir, tmp_path):
    root = make_dataroot(tmp_path / "data", "trainA", "trainB")
    err = parse_error(capsys, "--dataroot", root, "--load_size", "128", "--crop_size", "256", *ckdir)
    assert "--crop_size 256 is larger than --load_size 128" in err
    opt = options.parse(["--dataroot", root, "--preprocess", "crop", "--load_size", "128", "--crop_size", "256", *ckdir])
    assert opt.crop_size == 256   # no resize: load_size is not used


def test_cuda_device_without_a_gpu(capsys, ckdir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert "--device cuda: no CUDA GPU is visible" in parse_error(capsys, "--device", "cuda", *ckdir)
    assert "--device 'tpu9' is not a device" in parse_error(capsys, "--device", "tpu9", *ckdir)


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../escape", "/abs/path", os.path.join("x", "y")])
def test_name_is_one_plain_folder_name(capsys, tmp_path, name):
    err = parse_error(capsys, "--name", name, "--checkpoints_dir", tmp_path / "c")
    assert "must be one plain folder name" in err
    assert not (tmp_path / "c").exists()          # refused before anything was created


def test_checkpoints_dir_must_be_creatable_and_writable(capsys, tmp_path):
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "--checkpoints_dir" in parse_error(capsys, "--checkpoints_dir", a_file / "runs")
    assert "is a file, not a folder" in parse_error(capsys, "--checkpoints_dir", a_file)
    opt = options.parse(["--checkpoints_dir", str(tmp_path / "new" / "runs")])
    assert os.listdir(opt.checkpoints_dir) == []   # created, and the write test left nothing


def test_checkpoints_dir_not_writable(capsys, tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        assert "cannot create it or write into it" in parse_error(capsys, "--checkpoints_dir", folder)
    finally:
        folder.chmod(0o700)


def test_dataroot_must_hold_trainA_and_trainB(capsys, ckdir, tmp_path):
    assert "--dataroot" in parse_error(capsys, "--dataroot", tmp_path / "nowhere", *ckdir)
    root = make_dataroot(tmp_path / "half", "trainA")
    assert "has no trainB folder" in parse_error(capsys, "--dataroot", root, *ckdir)
    assert "needs --dataroot" in parse_error(capsys, "--dataset", "folder", *ckdir)


def test_valid_options_pass_and_programmatic_validate_raises(ckdir):
    opt = options.parse(ckdir)
    assert opt.max_dataset_size is None
    opt.lr = float("nan")
    with pytest.raises(OptionError, match="--lr"):
        options.validate(opt)


def refuse_non_json(constant):
    raise ValueError(f"{constant} is not JSON")


def test_every_default_option_is_valid_json(ckdir):
    for argv in ([], ["--demo"]):
        opt = options.parse(argv + ckdir)
        text = json.dumps({k: v for k, v in vars(opt).items() if not k.startswith("_")})
        assert json.loads(text, parse_constant=refuse_non_json)["max_dataset_size"] is None


def test_cli_usage_error_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "train", "--lr", "nan", "--checkpoints_dir", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == "python -m train: error: --lr must be a finite number > 0, got nan\n"


def test_abbreviated_options_are_refused_not_silently_reset(capsys, ckdir):
    # argparse would take --crop for --crop_size, and the recipe's default (256) would then
    # replace the value, since the abbreviation is not recognised as given explicitly.
    with pytest.raises(SystemExit) as caught:
        options.parse(["--model", "ugatit", "--crop", "64", *ckdir])
    assert caught.value.code == 2
    assert "unrecognized arguments: --crop 64" in capsys.readouterr().err
    opt = options.parse(["--model", "ugatit", "--crop_size=64", "--n_layers_global", "5", *ckdir])
    assert opt.crop_size == 64 and "crop_size" in opt._explicit


def test_a_resume_keeps_an_explicitly_changed_option_given_in_full(tmp_path):
    from helpers import TINY, run_train, train_records
    args = ["--name", "r", "--checkpoints_dir", tmp_path, *TINY, "--print_freq", "1"]
    assert run_train(*args, "--max_steps", "2") == 0
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "4",
                     "--print_freq=2") == 0
    assert [r["step"] for r in train_records(tmp_path / "r")] == [1, 2, 4]  # print_freq 2 from step 3 on
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_step", "6") == 2


def test_an_option_of_another_recipe_is_refused(capsys, ckdir):
    err = parse_error(capsys, "--init_from", "params.pt", *ckdir)
    assert "--init_from: an option of --model ugatit, not of --model cycle_gan" in err
    assert options.parse(["--model", "ugatit", "--light", *ckdir]).netG == "ugatit_light"
