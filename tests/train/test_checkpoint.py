import errno
import os
import pickle
import random
import shutil
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from fault_files import Evil, EvilCommand, FullDisk
from models.checkpoint_file import read_checkpoint_file
from models.errors import CorruptCheckpointError, NotACheckpointError, UnsafeCheckpointError, WrongCheckpointKindError
from models.training_checkpoint import TRAIN_FORMAT, TRAIN_VERSION, read_training_checkpoint
from train import atomic
from train.run import checkpoint as ckpt
from helpers import REPO



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


@pytest.mark.parametrize("payload_kind, calls", [(Evil, "io.open"), (EvilCommand, f"{os.name}.system")])
@pytest.mark.parametrize("zip_format", [True, False])
def test_reading_refuses_pickled_objects_and_runs_nothing(tmp_path, payload_kind, calls, zip_format):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {"w": torch.ones(1)}, "payload": payload_kind(str(marker))}, path,
               _use_new_zipfile_serialization=zip_format)
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match=f"evil.pt' is unsafe.*call {calls}") as info:
        read_checkpoint_file(path)
    assert "weights_only=False" not in str(info.value) and "truncated" not in str(info.value)
    assert not marker.exists()
    raw = tmp_path / "raw.pkl"
    raw.write_bytes(pickle.dumps(Evil(str(marker)), protocol=2))
    with pytest.raises(UnsafeCheckpointError):
        read_checkpoint_file(raw)
    assert not marker.exists()


# --- what a bad file is reported as ---------------------------------------------------------

def saved_training_checkpoint(path):
    ckpt.atomic_save({"format": TRAIN_FORMAT, "version": TRAIN_VERSION, "generators": {}, "step": 3,
                      "opt": {"lr": 2e-4}, "w": torch.ones(1000)}, path)
    return path


def test_training_checkpoint_reads_back(tmp_path):
    state = read_training_checkpoint(saved_training_checkpoint(tmp_path / "latest.pt"))
    assert state["step"] == 3 and torch.equal(state["w"], torch.ones(1000))


@pytest.mark.parametrize("kind", ["random_bytes", "png", "truncated_zip", "truncated_legacy", "wrong_kind"])
def test_each_bad_file_is_reported_as_what_it_is_naming_the_file(tmp_path, kind):
    path = tmp_path / f"{kind}.pt"
    if kind == "random_bytes":
        path.write_bytes(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
        error, match = NotACheckpointError, "not a PyTorch checkpoint"
    elif kind == "png":
        from PIL import Image
        Image.new("RGB", (8, 8)).save(path, format="PNG")
        error, match = NotACheckpointError, "not a PyTorch checkpoint: it is a PNG image"
    elif kind.startswith("truncated"):
        full = tmp_path / "full.pt"
        torch.save({"w": torch.ones(1000)}, full, _use_new_zipfile_serialization=kind == "truncated_zip")
        path.write_bytes(full.read_bytes()[:2500])
        error, match = CorruptCheckpointError, "truncated or corrupt"
    else:
        torch.save({"weights": torch.ones(3)}, path)
        error, match = WrongCheckpointKindError, "a PyTorch file but not a cyclegan_ext.train .*expected keys"
    with pytest.raises(error, match=match) as caught:
        read_training_checkpoint(path)
    assert str(path) in str(caught.value)
    assert "in-memory" not in str(caught.value)


# --- full disk, killed saves ------------------------------------------------------------------


def test_full_disk_is_a_clear_error_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "latest.pt"
    ckpt.atomic_save({"step": 1, "w": torch.ones(4)}, path)
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda fd, mode: FullDisk(real_fdopen(fd, mode), room=1000))
    with pytest.raises(ckpt.CheckpointWriteError) as caught:
        ckpt.atomic_save({"step": 2, "w": torch.zeros(100_000)}, path)
    monkeypatch.undo()
    assert str(caught.value) == (f"no space left on device while writing {path}; "
                                 f"the previous checkpoint {path} is intact")
    assert caught.value.errno == errno.ENOSPC
    assert os.listdir(tmp_path) == ["latest.pt"]                   # partial temporary file removed
    assert torch.load(path, weights_only=True)["step"] == 1


FILL_AND_SAVE = textwrap.dedent("""
    import os, sys, torch
    from train.run import checkpoint as ckpt
    folder = sys.argv[1]
    ckpt.atomic_save({"step": 1}, os.path.join(folder, "latest.pt"))
    with open(os.path.join(folder, "filler"), "wb", buffering=0) as f:   # fill the disk
        try:
            while True:
                f.write(b"x" * 4096)
        except OSError:
            pass
    os.truncate(os.path.join(folder, "filler"), os.path.getsize(os.path.join(folder, "filler")) - 20_000)
    # about 20 kB free now: enough to start the 4 MB checkpoint, not to finish it
    try:
        ckpt.atomic_save({"step": 2, "w": torch.zeros(1_000_000)}, os.path.join(folder, "latest.pt"))
    except ckpt.CheckpointWriteError as e:
        print("ERROR", e)
    print("STEP", torch.load(os.path.join(folder, "latest.pt"), weights_only=True)["step"])
    print("FILES", sorted(os.listdir(folder)))
""")


def test_full_disk_on_a_real_tiny_filesystem(tmp_path):
    """A 1 MiB tmpfs in a private mount namespace (needs unshare and user namespaces)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    if shutil.which("unshare") is None:
        pytest.skip("no unshare command")
    in_namespace = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c"]
    mount_tmpfs = f"mount -t tmpfs -o size=1m tmpfs {mount}"
    probe = subprocess.run([*in_namespace, mount_tmpfs], capture_output=True, text=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (no user namespaces?): {probe.stderr.strip()[-200:]}")
    script = f"{mount_tmpfs} && exec {sys.executable} -c \"$0\" {mount}"
    proc = subprocess.run([*in_namespace, script, FILL_AND_SAVE], cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    latest = os.path.join(str(mount), "latest.pt")
    assert f"ERROR no space left on device while writing {latest}; the previous checkpoint {latest} is intact" \
        in proc.stdout, proc.stdout + proc.stderr
    assert "STEP 1" in proc.stdout
    assert "FILES ['filler', 'latest.pt']" in proc.stdout


SLOW_SAVE = textwrap.dedent("""
    import os, sys, time, torch
    from train.run import checkpoint as ckpt
    path = os.path.join(sys.argv[1], "latest.pt")
    ckpt.atomic_save({"step": 1}, path)
    def write_then_hang(obj, f):
        f.write(b"PK\\x03\\x04 the first bytes of a big checkpoint")
        f.flush()
        print("writing", flush=True)
        time.sleep(600)
    torch.save = write_then_hang
    ckpt.atomic_save({"step": 2}, path)
""")


def test_save_killed_with_sigkill_leaves_a_temporary_that_cleanup_removes(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", SLOW_SAVE, str(tmp_path)], cwd=REPO,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
        proc.stdout.close()
    stale = [f for f in os.listdir(tmp_path) if f != "latest.pt"]
    assert len(stale) == 1 and stale[0].startswith(".latest.pt.")   # what the kill left behind
    (tmp_path / "notes.tmp").write_text("a user's file")
    (tmp_path / ".latest.pt.abcd1234.tmp").write_text("not our pattern")
    removed = atomic.cleanup_stale_temporaries(tmp_path)
    assert removed == [str(tmp_path / stale[0])]
    assert sorted(os.listdir(tmp_path)) == [".latest.pt.abcd1234.tmp", "latest.pt", "notes.tmp"]
    assert torch.load(tmp_path / "latest.pt", weights_only=True)["step"] == 1


def test_other_write_errors_name_the_file_and_reason(tmp_path, monkeypatch):
    def refuse(f):
        raise OSError(errno.EIO, os.strerror(errno.EIO))
    with pytest.raises(atomic.AtomicWriteError, match="input/output error while writing .*out.bin; "
                                                      "there was no previous file and nothing was written"):
        atomic.atomic_write(tmp_path / "out.bin", refuse)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_as_open_would(tmp_path, umask, mode):
    previous = os.umask(umask)
    try:
        atomic.atomic_write(tmp_path / "out.bin", lambda f: f.write(b"x"))
        ckpt.atomic_save({"a": torch.ones(1)}, tmp_path / "c.pt")
    finally:
        os.umask(previous)
    for name in ("out.bin", "c.pt"):
        assert os.stat(tmp_path / name).st_mode & 0o777 == mode


def test_a_non_regular_file_is_never_replaced(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(atomic.AtomicWriteError, match="is not a regular file; refusing to replace it"):
        atomic.atomic_write(fifo, lambda f: f.write(b"x"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    (tmp_path / "folder").mkdir()
    with pytest.raises(atomic.AtomicWriteError, match="not a regular file"):
        ckpt.atomic_save({}, tmp_path / "folder")
    target = tmp_path / "target.bin"
    target.write_bytes(b"old")
    (tmp_path / "link").symlink_to(target)
    atomic.atomic_write(tmp_path / "link", lambda f: f.write(b"new"))  # the link is replaced, not its target
    assert target.read_bytes() == b"old" and (tmp_path / "link").read_bytes() == b"new"
