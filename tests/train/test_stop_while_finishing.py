"""Signals while a run finishes: after the final checkpoint is written, a signal skips the final
samples, evaluation and report (one line, exit 130, the checkpoint intact); a second signal
before that save aborts without saving (one line, exit 130, the last checkpoint kept)."""
import os
import signal

import pytest
import torch

from helpers import TINY, run_train
from train.run.run import Run
from train.run.signals import GracefulStop, StopNow

ARGS = [*TINY, "--max_steps", "4", "--save_latest_freq", "2", "--display_freq", "100", "--eval_freq", "100"]


def signal_self(signum=signal.SIGINT):
    os.kill(os.getpid(), signum)


@pytest.mark.parametrize("signum", GracefulStop.SIGNALS)
def test_a_signal_after_the_final_save_skips_the_final_outputs(tmp_path, capsys, monkeypatch, signum):
    def interrupted_final_outputs(self):
        signal_self(signum)  # as a Ctrl-C during the final evaluation
        raise AssertionError("the signal should have stopped the final outputs")
    monkeypatch.setattr(Run, "final_outputs", interrupted_final_outputs)
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, *ARGS) == 130
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    assert f"{signal.Signals(signum).name}: the checkpoint is saved; skipping the final samples" in captured.err
    assert "interrupted at step 4; checkpoint saved" in captured.out
    assert torch.load(tmp_path / "r" / "latest.pt", weights_only=True)["step"] == 4


def test_a_second_signal_before_the_final_save_aborts_and_keeps_the_last_checkpoint(tmp_path, capsys, monkeypatch):
    original_save = Run.save

    def save_interrupted_twice(self):
        if self.step == 3:  # the first Ctrl-C arrived during step 3, the second comes during its save
            signal_self()
            signal_self()
        original_save(self)

    def after_step_with_ctrl_c(self, losses, original=Run.after_step):
        if self.step == 2:
            signal_self()  # during step 3
        original(self, losses)
    monkeypatch.setattr(Run, "save", save_interrupted_twice)
    monkeypatch.setattr(Run, "after_step", after_step_with_ctrl_c)
    code = run_train("--name", "r", "--checkpoints_dir", tmp_path, *ARGS)
    captured = capsys.readouterr()
    assert code == 130 and "Traceback" not in captured.err
    assert "SIGINT again: stopping at once, without saving" in captured.err
    assert captured.err.strip().splitlines()[-1] == "interrupted"
    assert torch.load(tmp_path / "r" / "latest.pt", weights_only=True)["step"] == 2
    monkeypatch.undo()
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, *ARGS, "--resume") == 0


def test_handler_states():
    with GracefulStop(lambda *a, **k: None) as stop:
        signal_self()
        assert stop.signal == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            signal_self()
    with GracefulStop(lambda *a, **k: None) as stop:
        stop.saved = True
        with pytest.raises(StopNow):
            signal_self(signal.SIGHUP)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
