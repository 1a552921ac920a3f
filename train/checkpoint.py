"""Atomic, weights_only-safe checkpoints.

Everything saved is made of tensors, dicts, lists, strings, numbers, booleans and None, so
`torch.load(weights_only=True)` reads it back: no pickled object, no code runs on load.
"""
import os
import pickle
import random
import tempfile

import numpy as np
import torch

FORMAT = "cyclegan_ext.train"
VERSION = 1


class UnsafeCheckpointError(ValueError):
    """The file holds pickled Python objects; loading it could run arbitrary code."""


def atomic_save(obj, path):
    """Write obj to a temporary file in the same folder, fsync it, then os.replace it onto
    `path`: a reader (or a crash) sees either the previous file or the complete new one."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def safe_load(path, map_location="cpu"):
    """torch.load(weights_only=True), with a clear error for files that hold Python objects."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsafeCheckpointError(
            f"refusing to load {path}: it contains pickled Python objects, not only tensors and "
            f"plain containers, so unpickling it could run code from the file (nothing in it was "
            f"run). torch said: {first}. If you trust its origin, load it yourself and re-save "
            f"its state_dict (tensors only)."
        ) from None


# --- RNG states as weights_only-safe values -------------------------------------------------

def rng_state():
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                  int(np_state[3]), float(np_state[4])],
        "python": _python_state(random.getstate()),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def set_rng_state(state):
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(_python_state_back(state["python"]))
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _python_state(st):
    version, internal, gauss = st
    return [version, list(internal), gauss]


def _python_state_back(st):
    version, internal, gauss = st
    return (version, tuple(internal), gauss)
