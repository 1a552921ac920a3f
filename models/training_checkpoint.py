"""This project's training checkpoint format, the one home of its keys: train/ writes it
(latest.pt, best.pt), load_generator reads its generators. A weights_only-loadable dict

    {"format": "cyclegan_ext.train", "version": 1,
     **RecipeState fields (generators, discriminators, optimizers, schedulers, and the recipe's extras),
     **RunProgress fields (step, epoch, batch_in_epoch, world_size, rank_states, opt, scaler, best_fid, dataset)}

The dataclasses' field names are the keys. A reader of the generators needs only the keys in
READ_KEYS; a resume needs every field without a default.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .checkpoint_file import describe_path, read_checkpoint_file
from .errors import CorruptCheckpointError, WrongCheckpointKindError

TRAIN_FORMAT = "cyclegan_ext.train"
TRAIN_VERSION = 1
FORMAT_KEYS = ("format", "version")


@dataclass
class RecipeState:
    """The recipe's part (train.recipes.base.Recipe.checkpoint_state); the same name in a dict
    is the same network, optimiser or scheduler when the run resumes."""
    generators: dict      # {"AtoB": generator payload, "BtoA": ...} (models.registry.generator_payload)
    discriminators: dict  # {name: state_dict}
    optimizers: dict      # {name: optimiser state_dict}
    schedulers: dict      # {name: scheduler state_dict}
    extras: dict = field(default_factory=dict)  # the recipe's own top-level entries


@dataclass
class RunProgress:
    """The run's part: where training stands, and what every process needs to go on exactly."""
    step: int
    epoch: int
    batch_in_epoch: int
    world_size: int
    rank_states: list     # per process: the recipe's rank_state plus "rng" (train.run.checkpoint)
    opt: dict             # every option (train.options)
    scaler: dict          # the gradient scaler of --amp fp16
    best_fid: float | None = None  # the lowest mean FID so far (best.pt), None without FID tracking
    dataset: dict | None = None  # what identifies a folder dataset (UnalignedDataset.identity), None for synthetic


READ_KEYS = FORMAT_KEYS + ("generators", "step", "opt")  # what models.load_generator needs


def _names(cls) -> tuple:
    return tuple(f.name for f in dataclasses.fields(cls))


def assemble(recipe: RecipeState, progress: RunProgress) -> dict:
    """The checkpoint dict of one save."""
    clash = set(recipe.extras) & (set(_names(RecipeState)) | set(_names(RunProgress)) | set(FORMAT_KEYS))
    if clash:
        raise ValueError(f"a recipe's checkpoint extras may not reuse the format's keys: {sorted(clash)}")
    recipe_part = {name: getattr(recipe, name) for name in _names(RecipeState) if name != "extras"}
    return {"format": TRAIN_FORMAT, "version": TRAIN_VERSION, **recipe_part, **recipe.extras,
            **dataclasses.asdict(progress)}


def _required(cls, checkpoint, where):
    needed = [f.name for f in dataclasses.fields(cls)
              if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    missing = [name for name in needed if name not in checkpoint]
    if missing:
        raise CorruptCheckpointError(f"{where} cannot be resumed: it has no {', '.join(missing)} "
                                     f"(a damaged or hand-edited {TRAIN_FORMAT} checkpoint)")


def recipe_state_of(checkpoint: dict, where: str = "the checkpoint") -> RecipeState:
    _required(RecipeState, checkpoint, where)
    known = set(_names(RecipeState)) | set(_names(RunProgress)) | set(FORMAT_KEYS)
    values = {name: checkpoint[name] for name in _names(RecipeState) if name != "extras"}
    return RecipeState(**values, extras={k: v for k, v in checkpoint.items() if k not in known})


def run_progress_of(checkpoint: dict, where: str = "the checkpoint") -> RunProgress:
    _required(RunProgress, checkpoint, where)
    return RunProgress(**{name: checkpoint[name] for name in _names(RunProgress) if name in checkpoint})


def check_training_checkpoint(checkpoint, where: str) -> dict:
    """checkpoint itself when it is a training checkpoint of this version, else
    WrongCheckpointKindError saying what `where` holds instead."""
    expected = (f"expected keys {', '.join(READ_KEYS)} with format={TRAIN_FORMAT!r} and "
                f"version={TRAIN_VERSION}")
    if not isinstance(checkpoint, dict):
        raise WrongCheckpointKindError(f"{where} is a PyTorch file but not a {TRAIN_FORMAT} training "
                                       f"checkpoint: it holds a {type(checkpoint).__name__}; {expected}")
    missing = [key for key in READ_KEYS if key not in checkpoint]
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
    subclass / MissingFileError naming the file and what is wrong with it."""
    return check_training_checkpoint(read_checkpoint_file(path), describe_path(path))
