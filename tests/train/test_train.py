import json
import os
import signal

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import LOSSES, TINY, make_recipe, read_jsonl, run_train, spawn_train, train_records, wait_for_step



def test_run_outputs(tiny_run):
    for name in ("opt.json", "metrics.jsonl", "latest.pt", "index.html", "losses.png", "eval.png"):
        assert os.path.exists(os.path.join(tiny_run, name)), name
    opt = json.load(open(os.path.join(tiny_run, "opt.json")))
    assert opt["netG"] == "adalin" and opt["ngf"] == 8 and opt["dataset"] == "synthetic"
    recs = read_jsonl(os.path.join(tiny_run, "metrics.jsonl"))
    train = [r for r in recs if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for r in train:
        assert {"epoch", "lr", "sec_per_step", *LOSSES} <= set(r)
        assert all(np.isfinite(r[k]) for k in LOSSES)
    evals = [r for r in recs if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"psnr_AtoB", "ssim_AtoB", "psnr_identity_AtoB", "psnr_BtoA", "ssim_identity_BtoA"} <= set(evals[0])
    samples = sorted(os.listdir(os.path.join(tiny_run, "samples")))
    assert samples == ["step_0000002.png", "step_0000004.png"]
    grid = Image.open(os.path.join(tiny_run, "samples", samples[0]))
    assert grid.width > grid.height  # 8 columns, 6 rows
    html = open(os.path.join(tiny_run, "index.html")).read()
    assert "samples/step_0000004.png" in html and "losses.png" in html and "PSNR" in html


def test_checkpoint_is_weights_only_and_loads_with_models(tiny_run):
    import models
    state = torch.load(os.path.join(tiny_run, "latest.pt"), weights_only=True)
    assert state["format"] == "cyclegan_ext.train" and state["step"] == 4
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    g_ab = models.load_generator(os.path.join(tiny_run, "latest.pt"), direction="AtoB")
    g_ba = models.load_generator(os.path.join(tiny_run, "latest.pt"), direction="BtoA")
    with torch.no_grad():
        assert not torch.equal(g_ab(x), g_ba(x))


def test_weight_init_is_official_normal():
    from train.options import parse
    torch.manual_seed(0)
    opt = parse(["--netG", "resnet_6blocks", "--ngf", "16", "--ndf", "16", "--crop_size", "32"])
    nets = make_recipe(opt).networks()
    ws = torch.cat([m.weight.flatten() for n in nets.values() for m in n.modules()
                    if isinstance(m, torch.nn.Conv2d)])
    assert abs(ws.mean().item()) < 2e-3 and abs(ws.std().item() - 0.02) < 1e-3
    biases = [m.bias for n in nets.values() for m in n.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    assert biases and all((b == 0).all() for b in biases)


def test_refuses_to_overwrite_existing_run(tiny_run, capsys):
    before = open(os.path.join(tiny_run, "metrics.jsonl")).read()
    code = run_train("--name", "tiny", "--checkpoints_dir", os.path.dirname(tiny_run), *TINY, "--max_steps", "1")
    assert code == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err
    assert open(os.path.join(tiny_run, "metrics.jsonl")).read() == before


def test_resume_errors(tmp_path, tiny_run, capsys):
    assert run_train("--name", "none", "--checkpoints_dir", tmp_path, *TINY, "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert run_train("--name", "tiny", "--checkpoints_dir", os.path.dirname(tiny_run), "--resume",
                     "--lr", "0.1", "--no_progress") == 2
    assert "--lr" in capsys.readouterr().err


def test_missing_dataroot_fails_before_training(tmp_path, capsys):
    code = run_train("--name", "x", "--checkpoints_dir", tmp_path, "--dataroot", tmp_path / "nowhere", *TINY)
    assert code == 2
    assert "nowhere" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "x" / "latest.pt")


def _losses(recs):
    return [(r["step"], r["epoch"], r["lr"], *[r[k] for k in LOSSES]) for r in recs]


RESUME_ARGS = [*TINY, "--pool_size", "3", "--print_freq", "1", "--display_freq", "100", "--eval_freq", "100",
               "--save_latest_freq", "100"]


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ref")
    assert run_train("--name", "full", "--checkpoints_dir", root, *RESUME_ARGS, "--max_steps", "7") == 0
    return train_records(os.path.join(root, "full"))


def test_exact_resume_matches_uninterrupted_run(tmp_path, reference_run):
    # 8 scenes, batch 2: 4 steps per epoch; stopping at 3 and resuming crosses an epoch boundary,
    # a learning-rate decay step (n_epochs 1 + n_epochs_decay 1) and a full image pool.
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, *RESUME_ARGS, "--max_steps", "3") == 0
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "7", "--no_progress") == 0
    resumed = train_records(tmp_path / "r")
    assert [r["step"] for r in resumed] == list(range(1, 8))
    assert _losses(resumed) == _losses(reference_run)
    assert resumed[-1]["lr"] < resumed[0]["lr"]


def test_folder_dataset_training_with_workers_and_corrupt_file(tmp_path):
    from test_data import make_root
    root = make_root(tmp_path / "data")
    (tmp_path / "data" / "trainA" / "a0.png").write_bytes(b"not a png")
    code = run_train("--name", "f", "--checkpoints_dir", tmp_path / "ck", "--dataroot", root, *TINY,
                     "--load_size", "36", "--num_threads", "1", "--max_steps", "2", "--display_freq", "1")
    assert code == 0
    assert [r["step"] for r in train_records(tmp_path / "ck" / "f")] == [1]  # print_freq 100: step 1 only
    assert os.path.exists(tmp_path / "ck" / "f" / "samples" / "step_0000002.png")


@pytest.mark.slow
def test_sigint_saves_and_sigkill_resumes(tmp_path, reference_run):
    # Ctrl-C: finishes the step, saves, exits 130 with a resume hint.
    args = ["--name", "s", "--checkpoints_dir", tmp_path, *RESUME_ARGS, "--max_steps", "7"]
    proc = spawn_train(args)
    wait_for_step(tmp_path / "s", 2, proc)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "--resume" in out
    saved = torch.load(tmp_path / "s" / "latest.pt", weights_only=True)["step"]
    assert 2 <= saved < 7
    # SIGKILL after periodic checkpoints: resume from the last one, same curve.
    args = ["--name", "s", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "7", "--save_latest_freq", "1",
            "--no_progress"]
    proc = spawn_train(args)
    wait_for_step(tmp_path / "s", saved + 2, proc)
    proc.kill()
    proc.communicate()
    assert run_train("--name", "s", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "7", "--no_progress") == 0
    assert _losses(train_records(tmp_path / "s")) == _losses(reference_run)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_closed_terminal_or_sigterm_saves_like_ctrl_c(tmp_path, signum):
    # Sent to the whole process group, as a closing terminal sends SIGHUP: the DataLoader worker
    # gets it too and must leave the stopping to the main process.
    args = ["--name", "h", "--checkpoints_dir", tmp_path, *RESUME_ARGS, "--max_steps", "500", "--num_threads", "1",
            "--n_epochs", "100"]
    proc = spawn_train(args, new_session=True)
    wait_for_step(tmp_path / "h", 2, proc)
    os.killpg(proc.pid, signum)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert signal.Signals(signum).name in out and "--resume" in out
    logged = max(r["step"] for r in train_records(tmp_path / "h"))
    assert torch.load(tmp_path / "h" / "latest.pt", weights_only=True)["step"] >= logged >= 2


def test_channels_last_and_vanilla_gan_and_resnet(tmp_path):
    code = run_train("--name", "cl", "--checkpoints_dir", tmp_path, *TINY, "--channels_last", "--gan_mode", "vanilla",
                     "--netG", "resnet_6blocks", "--max_steps", "1", "--eval_freq", "1")
    assert code == 0
    (rec,) = train_records(tmp_path / "cl")
    assert all(np.isfinite(rec[k]) for k in LOSSES)
    import models
    net = models.load_generator(str(tmp_path / "cl" / "latest.pt"))
    assert isinstance(net, models.ResnetGenerator)
