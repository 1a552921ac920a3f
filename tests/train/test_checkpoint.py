import os
import pickle
import random

import numpy as np
import pytest
import torch

from train import checkpoint as ckpt


def test_atomic_save_roundtrip_weights_only(tmp_path):
    path = tmp_path / "c.pt"
    obj = {"a": torch.arange(3), "b": [1, 2.5, "x", None, True], "c": {"d": torch.ones(2)}}
    ckpt.atomic_save(obj, path)
    back = torch.load(path, weights_only=True)
    assert torch.equal(back["a"], obj["a"]) and back["b"] == obj["b"]
    assert os.listdir(tmp_path) == ["c.pt"]


def test_crash_during_save_keeps_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    ckpt.atomic_save({"step": 1, "w": torch.ones(4)}, path)
    real_save = torch.save

    def crashing_save(obj, f, *a, **k):
        f.write(b"PK\x03\x04 partial bytes")   # half-written file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        ckpt.atomic_save({"step": 2, "w": torch.zeros(4)}, path)
    monkeypatch.setattr(torch, "save", real_save)
    back = torch.load(path, weights_only=True)
    assert back["step"] == 1 and torch.equal(back["w"], torch.ones(4))
    assert os.listdir(tmp_path) == ["latest.pt"]      # no temp file left behind


def test_rng_state_roundtrip_through_weights_only_file(tmp_path):
    torch.manual_seed(3)
    np.random.seed(4)
    random.seed(5)
    np.random.standard_normal()  # leave numpy with a cached gaussian
    state = ckpt.rng_state()
    ckpt.atomic_save(state, tmp_path / "rng.pt")
    expected = (torch.rand(3), np.random.standard_normal(3), random.random())
    torch.manual_seed(0)
    np.random.seed(0)
    random.seed(0)
    ckpt.set_rng_state(torch.load(tmp_path / "rng.pt", weights_only=True))
    got = (torch.rand(3), np.random.standard_normal(3), random.random())
    assert torch.equal(expected[0], got[0]) and np.array_equal(expected[1], got[1]) and expected[2] == got[2]


class Evil:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_safe_load_refuses_pickled_objects_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": Evil(str(marker))}, path)
    assert not marker.exists()
    with pytest.raises(ckpt.UnsafeCheckpointError, match="refusing to load"):
        ckpt.safe_load(path)
    assert not marker.exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Evil(str(marker)), protocol=2))
    with pytest.raises(ckpt.UnsafeCheckpointError):
        ckpt.safe_load(raw)
    assert not marker.exists()
