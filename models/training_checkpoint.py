"""This project's training checkpoint format (train/ writes it, load_generator reads its
generators): a weights_only-loadable dict

    {"format": "cyclegan_ext.train", "version": 1, "generators": {"AtoB": payload, "BtoA": payload},
     "step": int, "opt": {...every option...}, ...optimiser, scheduler, pool and RNG states...}
"""
from __future__ import annotations

from .checkpoint_file import describe_path, read_checkpoint_file
from .errors import WrongCheckpointKindError

TRAIN_FORMAT = "cyclegan_ext.train"
TRAIN_VERSION = 1
TRAIN_REQUIRED_KEYS = ("format", "version", "generators", "step", "opt")


def check_training_checkpoint(checkpoint, where: str) -> dict:
    """checkpoint itself when it is a training checkpoint of this version, else
    WrongCheckpointKindError saying what `where` holds instead."""
    expected = (f"expected keys {', '.join(TRAIN_REQUIRED_KEYS)} with format={TRAIN_FORMAT!r} and "
                f"version={TRAIN_VERSION}")
    if not isinstance(checkpoint, dict):
        raise WrongCheckpointKindError(f"{where} is a PyTorch file but not a {TRAIN_FORMAT} training "
                                       f"checkpoint: it holds a {type(checkpoint).__name__}; {expected}")
    missing = [key for key in TRAIN_REQUIRED_KEYS if key not in checkpoint]
    if missing or checkpoint.get("format") != TRAIN_FORMAT:
        found = ", ".join(map(str, list(checkpoint)[:8])) + (", ..." if len(checkpoint) > 8 else "")
        raise WrongCheckpointKindError(f"{where} is a PyTorch file but not a {TRAIN_FORMAT} training "
                                       f"checkpoint: {expected}; found keys {found or '(none)'}"
                                       f" and format={checkpoint.get('format')!r}")
    if checkpoint["version"] != TRAIN_VERSION:
        raise WrongCheckpointKindError(f"{where} is a {TRAIN_FORMAT} checkpoint of version "
                                       f"{checkpoint['version']!r}; this code reads version {TRAIN_VERSION}")
    return checkpoint


def read_training_checkpoint(path) -> dict:
    """The training checkpoint at `path` (weights_only, on the CPU), or a CheckpointError
    subclass / FileNotFoundError naming the file and what is wrong with it."""
    return check_training_checkpoint(read_checkpoint_file(path), describe_path(path))
