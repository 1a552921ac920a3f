"""`python -m train` faults end in one clear line and a non-zero exit, never a traceback or a
lost checkpoint: full disk while saving, a broken checkpoint to resume, a save killed earlier."""
import os
import sys

import pytest
import torch

from helpers import TINY, run_train
from fault_files import FullDisk


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="names open files through /proc")
def test_full_disk_while_saving_keeps_the_previous_checkpoint(tmp_path, monkeypatch, capsys):
    real_fdopen = os.fdopen
    saves = []

    def fdopen(fd, *args, **kwargs):
        f = real_fdopen(fd, *args, **kwargs)
        if ".latest.pt.partial-" not in os.readlink(f"/proc/self/fd/{fd}"):
            return f
        saves.append(fd)
        return f if len(saves) == 1 else FullDisk(f, room=1000)   # the disk fills after the first save

    monkeypatch.setattr(os, "fdopen", fdopen)
    code = run_train("--name", "full", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "3",
                     "--save_latest_freq", "1")
    monkeypatch.undo()
    err = capsys.readouterr().err
    latest = os.path.join(str(tmp_path), "full", "latest.pt")
    assert code != 0
    assert err.strip().splitlines()[-1] == (f"error: no space left on device while writing {latest}; "
                                            f"the previous checkpoint {latest} is intact")
    assert "Traceback" not in err and "unexpected pos" not in err
    assert torch.load(latest, weights_only=True)["step"] == 1
    assert not [f for f in os.listdir(tmp_path / "full") if f.endswith(".tmp")]


@pytest.mark.parametrize("damage", ["truncated", "png"])
def test_resume_from_a_broken_checkpoint_is_one_line(tmp_path, capsys, damage):
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "1") == 0
    latest = tmp_path / "r" / "latest.pt"
    if damage == "truncated":
        latest.write_bytes(latest.read_bytes()[:5000])
        expected = f"error: checkpoint file '{latest}' is truncated or corrupt"
    else:
        from PIL import Image
        Image.new("RGB", (4, 4)).save(latest, format="PNG")
        expected = f"error: checkpoint file '{latest}' is not a PyTorch checkpoint: it is a PNG image"
    capsys.readouterr()
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "2") == 2
    err = capsys.readouterr().err
    assert err.startswith(expected) and err.count("\n") == 1, err


def test_temporary_left_by_a_killed_save_is_removed_at_the_next_start(tmp_path):
    assert run_train("--name", "k", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "1") == 0
    stale = tmp_path / "k" / ".latest.pt.partial-k1lled_x.tmp"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    assert run_train("--name", "k", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "2") == 0
    assert not stale.exists()
    assert torch.load(tmp_path / "k" / "latest.pt", weights_only=True)["step"] == 2
