"""Writing checkpoints atomically, and the RNG states each process saves with them.

Everything saved is made of tensors, dicts, lists, strings, numbers, booleans and None, so
`torch.load(weights_only=True)` reads it back: no pickled object, no code runs on load. The
training checkpoint format itself (its keys, reading it back) is models.training_checkpoint.
"""
import random

import numpy as np
import torch

from ..atomic import AtomicWriteError, atomic_write

RNG_KEY = "rng"  # the run's entry in each process's rank state (the rest is the recipe's)


class CheckpointWriteError(AtomicWriteError):
    """Saving a checkpoint failed (e.g. no space left on device); the previous one is intact.
    Exit status 1: training ran, its last state could not be kept."""

    exit_status = 1


def atomic_save(obj, path):
    """torch.save(obj) onto `path` atomically (see train.atomic). Raises CheckpointWriteError
    ("no space left on device while writing <path>; the previous checkpoint <path> is intact")
    when the device refuses the write; the partial temporary file is removed."""
    atomic_write(path, lambda f: torch.save(obj, f), what="checkpoint", error_type=CheckpointWriteError)


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
