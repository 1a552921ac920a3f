"""The run folder under concurrent starts, kills before the first save and unusable paths.
Lock and kill tests use real processes. (A full disk while saving: test_cli_errors.py.)"""
import os

import pytest

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
def test_plain_rerun_after_a_kill_before_the_first_save_starts_afresh(tmp_path):
    args = ["--name", "k", "--checkpoints_dir", tmp_path, *NO_SAVE]
    first = spawn_train(args)
    try:
        wait_for_step(tmp_path / "k", 3, first)
    finally:
        _kill(first)
    again = run_train_process([*args, "--max_steps", "2"])
    assert again.returncode == 0, again.stdout + again.stderr
    assert "stopped before its first checkpoint" in again.stdout + again.stderr
    assert [r["step"] for r in train_records(tmp_path / "k")] == [1, 2]  # the dead run's log is gone
    samples = sorted(os.listdir(tmp_path / "k" / "samples"))
    assert samples == ["step_0000002.png"]


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
