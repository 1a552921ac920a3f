"""The run folder under concurrent starts, kills before the first save and unusable paths.
Lock and kill tests use real processes. (A full disk while saving: test_cli_errors.py.)"""
import json
import os

import pytest
import torch

from helpers import LOSSES, TINY, run_train, run_train_process, spawn_train, train_records, wait_for_step

# Logs every step, never checkpoints on its own (and runs until killed, without --max_steps):
# a kill always lands before the first save.
NO_SAVE = [*TINY, "--print_freq", "1", "--display_freq", "1000", "--eval_freq", "1000",
           "--save_latest_freq", "100000", "--n_epochs", "100000"]


def _kill(proc):
    proc.kill()
    proc.communicate()


def _losses(run_dir):
    return [(r["step"], *[r[k] for k in LOSSES]) for r in train_records(run_dir)]


@pytest.mark.slow
def test_second_run_is_refused_while_the_first_runs_and_a_dead_runs_lock_is_taken_over(tmp_path):
    args = ["--name", "r", "--checkpoints_dir", tmp_path, *NO_SAVE]
    first = spawn_train([*args, "--num_threads", "1"])  # with a DataLoader worker
    try:
        wait_for_step(tmp_path / "r", 1, first)
        second = run_train_process([*args, "--max_steps", "2"])
        assert second.returncode == 2, second.stdout + second.stderr
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in second.stderr
        assert f"run folder {tmp_path / 'r'} is in use by process {first.pid} (started " in lines[0]
    finally:
        _kill(first)
    assert os.path.exists(tmp_path / "r" / ".lock")  # SIGKILL left it; the kernel released the flock
    assert not os.path.exists(tmp_path / "r" / "latest.pt")

    # --resume of a run killed before its first save: restarts it from step 0, same options.
    third = run_train_process(["--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "3"])
    assert third.returncode == 0, third.stdout + third.stderr
    out = third.stdout + third.stderr
    assert f"taking over the lock of process {first.pid}" in out
    assert "stopped before its first checkpoint" in out and "starts it again from step 0" in out
    assert not os.path.exists(tmp_path / "r" / ".lock")
    # The restart is a fresh run: the same losses as a run that never had a predecessor.
    assert run_train("--name", "fresh", "--checkpoints_dir", tmp_path, *NO_SAVE, "--max_steps", "3") == 0
    assert [r["step"] for r in train_records(tmp_path / "r")] == [1, 2, 3]
    assert _losses(tmp_path / "r") == _losses(tmp_path / "fresh")


@pytest.mark.slow
def test_simultaneous_starts_into_one_folder_never_both_run(tmp_path):
    args = ["--name", "same", "--checkpoints_dir", tmp_path, *NO_SAVE, "--max_steps", "20"]
    procs = [spawn_train(args), spawn_train(args)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    codes = [p.returncode for p in procs]
    assert sorted(codes) == [0, 2], outs
    loser = outs[codes.index(2)]
    # Refused by the lock, or (when the winner had already finished) by its checkpoint.
    assert "is in use by process" in loser or "already holds a run" in loser, loser
    assert [r["step"] for r in train_records(tmp_path / "same")] == list(range(1, 21))


@pytest.mark.slow
def test_plain_rerun_after_a_kill_before_the_first_save_is_refused_and_resume_restarts(tmp_path):
    args = ["--name", "k", "--checkpoints_dir", tmp_path, *NO_SAVE]
    first = spawn_train(args)
    try:
        wait_for_step(tmp_path / "k", 3, first)
    finally:
        _kill(first)
    logged = [r["step"] for r in train_records(tmp_path / "k")]
    again = run_train_process([*args, "--max_steps", "2"])
    assert again.returncode == 2, again.stdout + again.stderr
    lines = again.stderr.strip().splitlines()
    assert len(lines) == 1 and "stopped before its first checkpoint" in lines[0] and "add --resume" in lines[0]
    assert [r["step"] for r in train_records(tmp_path / "k")] == logged  # nothing was touched
    restarted = run_train_process(["--name", "k", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "2"])
    assert restarted.returncode == 0, restarted.stdout + restarted.stderr
    assert [r["step"] for r in train_records(tmp_path / "k")] == [1, 2]  # the dead run's log, replaced as asked
    assert sorted(os.listdir(tmp_path / "k" / "samples")) == ["step_0000002.png"]


@pytest.mark.parametrize("resume", [False, True])
def test_best_checkpoint_without_latest_is_never_replaced(tmp_path, capsys, resume):
    args = ["--name", "b", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "2"]
    assert run_train(*args) == 0
    folder = tmp_path / "b"
    os.replace(folder / "latest.pt", folder / "best.pt")  # a folder whose latest.pt was lost
    kept = {name: (folder / name).read_bytes() for name in ("best.pt", "metrics.jsonl")}
    capsys.readouterr()
    assert run_train(*(["--name", "b", "--checkpoints_dir", tmp_path, "--resume"] if resume else args)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "holds best.pt but no latest.pt" in err[0]
    assert {name: (folder / name).read_bytes() for name in kept} == kept


def test_resume_with_nothing_there_still_refuses_and_leaves_no_folder(tmp_path, capsys):
    assert run_train("--name", "none", "--checkpoints_dir", tmp_path, *TINY, "--resume") == 2
    assert "nothing to resume" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "none")


def test_unusable_run_folder_is_a_one_line_error_before_data(tmp_path, capsys, monkeypatch):
    import train.data

    def no_data(_opt):
        raise AssertionError("data was built before the run folder was checked")

    monkeypatch.setattr(train.data, "training_dataset", no_data)
    (tmp_path / "taken").write_text("a file where the run folder should be")
    assert run_train("--name", "taken", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "1") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: cannot use the run folder {tmp_path / 'taken'}")


def test_a_diverging_run_stops_with_one_line_and_writes_strict_json(tmp_path, capsys):
    args = ["--name", "d", "--checkpoints_dir", tmp_path, *TINY, "--print_freq", "1", "--save_latest_freq", "2",
            "--display_freq", "1000", "--eval_freq", "1000", "--lr", "1e8", "--max_steps", "6"]
    assert run_train(*args) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: training diverged: a loss was not finite at or before step")
    assert "this run used 1e+08" in err[0]
    lines = (tmp_path / "d" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line, parse_constant=lambda name: pytest.fail(f"{name} in metrics.jsonl")) for line in lines]
    assert any(r[k] is None for r in records for k in LOSSES)  # the non-finite step, logged as null
    saved = tmp_path / "d" / "latest.pt"
    if saved.exists():  # only a state whose losses were all finite may have been written
        state = torch.load(saved, weights_only=True)
        assert all(torch.isfinite(t).all() for p in state["generators"].values() for t in p["state_dict"].values())


@pytest.mark.parametrize("print_freq", ["1", "100"])  # caught by the logging step, or by the save
def test_a_non_finite_loss_never_replaces_the_last_finite_checkpoint(tmp_path, capsys, monkeypatch, print_freq):
    from train.recipes.cycle_gan import CycleGAN
    args = ["--name", "n", "--checkpoints_dir", tmp_path, *TINY, "--print_freq", print_freq,
            "--save_latest_freq", "2", "--display_freq", "1000", "--eval_freq", "1000"]
    assert run_train(*args, "--max_steps", "2") == 0
    before = (tmp_path / "n" / "latest.pt").read_bytes()
    original = CycleGAN.train_step

    def poisoned(recipe, real_A, real_B):
        losses = original(recipe, real_A, real_B)
        return {**losses, "cycle_A": losses["cycle_A"] * float("nan")}

    monkeypatch.setattr(CycleGAN, "train_step", poisoned)
    capsys.readouterr()
    assert run_train("--name", "n", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "6") == 1
    err = capsys.readouterr().err
    assert "training diverged" in err and f"{tmp_path / 'n' / 'latest.pt'} keeps step 2" in err
    assert (tmp_path / "n" / "latest.pt").read_bytes() == before


@pytest.mark.parametrize("key", ["optimizers", "scaler", "rank_states", "batch_in_epoch"])
def test_a_checkpoint_missing_a_part_is_one_line_on_resume(tmp_path, capsys, key):
    assert run_train("--name", "m", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "2") == 0
    path = tmp_path / "m" / "latest.pt"
    state = torch.load(path, weights_only=True)
    del state[key]
    torch.save(state, path)
    capsys.readouterr()
    assert run_train("--name", "m", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"cannot be resumed: it has no {key}" in err[0] and str(path) in err[0]


def _edit_checkpoint(path, edit):
    state = torch.load(path, weights_only=True)
    edit(state)
    torch.save(state, path)


@pytest.mark.parametrize("edit, expected", [
    (lambda s: s["opt"].update(ngf=16), "its weights or optimiser states do not fit the networks its saved options "
                                        "describe (size mismatch for"),
    (lambda s: s["opt"].update(lr="abc"), "its saved options do not work (--lr must be a finite number > 0, got 'abc')"),
    (lambda s: s["opt"].update(netG="bogus"), "its saved options do not work (--netG must be one of"),
    (lambda s: s["optimizers"]["G"]["state"].clear() or s["optimizers"]["G"]["param_groups"].pop(),
     "its weights or optimiser states do not fit"),
])
def test_saved_options_that_do_not_fit_the_checkpoint_are_one_line_on_resume(tmp_path, capsys, edit, expected):
    assert run_train("--name", "m", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "2") == 0
    path = tmp_path / "m" / "latest.pt"
    _edit_checkpoint(path, edit)
    capsys.readouterr()
    assert run_train("--name", "m", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {path} cannot be resumed: ") and expected in err[0], err
