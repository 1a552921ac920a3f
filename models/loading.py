"""load_generator: a ready-to-run generator from the checkpoints people already have.

Reads, with torch.load(weights_only=True):
    - an official CycleGAN generator state_dict (latest_net_G_A.pth, ...)
    - a CUT / FastCUT generator state_dict (latest_net_G.pth), anti-aliased or not
    - a U-GAT-IT generator state_dict, full or light, or a U-GAT-IT checkpoint holding
      'genA2B' / 'genB2A' (direction picks one)
    - this project's generator payload (models.generator_payload) and training checkpoint
      (models.training_checkpoint)
Keys saved from DataParallel / DDP (`module.`) or torch.compile (`_orig_mod.`) load too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from .checkpoint_file import describe_path, read_checkpoint_file
from .errors import CheckpointError, WrongCheckpointKindError
from .formats import EXPECTED, recognise_generator_state_dict, strip_wrapper_prefixes
from .registry import PAYLOAD_FORMAT, build_generator, generator_from_payload
from .training_checkpoint import TRAIN_FORMAT
from .weights import load_weights

DIRECTIONS = ("AtoB", "BtoA")
UGATIT_GENERATOR_KEYS = {"AtoB": "genA2B", "BtoA": "genB2A"}


def load_generator(source, direction: str = "AtoB", norm_impl: str = "fused", map_location="cpu") -> nn.Module:
    """The generator stored in `source` (a path or an in-memory dict), in eval mode.

    direction ('AtoB' or 'BtoA') picks the generator in checkpoints that hold both; a file
    holding a single generator is that generator whatever the direction.
    Raises FileNotFoundError for a missing path, and a CheckpointError (a ValueError) naming the
    file and what is wrong: NotACheckpointError, CorruptCheckpointError, UnsafeCheckpointError,
    or WrongCheckpointKindError for a readable PyTorch file that holds no generator.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    where, checkpoint = _read(source)
    return _load(source, where, checkpoint, direction, norm_impl, map_location)


@dataclass
class CheckpointGenerators:
    """What load_generators found in one checkpoint."""
    generators: dict  # {"AtoB": net, "BtoA": net}, the one direction held, or {None: net} for a
    #                   file of a single generator (it does not record which way it translates)
    step: int | None  # the training step of this project's training checkpoints, else None


def load_generators(source, norm_impl: str = "fused", map_location="cpu") -> CheckpointGenerators:
    """Every generator in `source` (read once), in eval mode, as load_generator loads each."""
    where, checkpoint = _read(source)
    directions = held_directions(checkpoint) or (None,)
    generators = {d: _load(source, where, checkpoint, d or "AtoB", norm_impl, map_location) for d in directions}
    step = checkpoint.get("step") if checkpoint.get("format") == TRAIN_FORMAT else None
    return CheckpointGenerators(generators, step if isinstance(step, int) else None)


def held_directions(checkpoint) -> tuple:
    """The directions a checkpoint dict holds generators for, () for one holding a single
    generator (or none)."""
    if not isinstance(checkpoint, dict):
        return ()
    if checkpoint.get("format") == TRAIN_FORMAT:
        generators = checkpoint.get("generators")
        return tuple(d for d in DIRECTIONS if isinstance(generators, dict) and d in generators)
    return tuple(d for d in DIRECTIONS if UGATIT_GENERATOR_KEYS[d] in checkpoint)


def _load(source, where, checkpoint, direction, norm_impl, map_location):
    try:
        net = _generator_from_checkpoint(checkpoint, direction, norm_impl)
    except WrongCheckpointKindError as error:
        found = "is a PyTorch file but" if isinstance(source, (str, os.PathLike)) else "is"
        raise WrongCheckpointKindError(f"{where} {found} not a generator checkpoint: {error}") from None
    except CheckpointError as error:
        raise type(error)(f"{where}: {error}") from None
    if isinstance(map_location, (str, torch.device)):
        net.to(map_location)
    return net.eval()


def _read(source):
    """(description of the source for messages, its contents)."""
    if isinstance(source, dict):
        return f"in-memory checkpoint ({type(source).__name__})", source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_generator: source must be a path or a dict (state_dict or checkpoint), "
                        f"got {type(source).__name__}")
    return describe_path(source), read_checkpoint_file(source)


def _generator_from_checkpoint(checkpoint, direction, norm_impl):
    if not isinstance(checkpoint, dict):
        raise WrongCheckpointKindError(f"it holds a {type(checkpoint).__name__}; expected a dict: {EXPECTED}")
    declared_format = checkpoint.get("format")
    if declared_format == TRAIN_FORMAT:
        return _from_payload(_pick_training_generator(checkpoint, direction), norm_impl)
    if declared_format == PAYLOAD_FORMAT:
        return _from_payload(checkpoint, norm_impl)
    if declared_format is not None:
        raise WrongCheckpointKindError(f"it has unknown format {declared_format!r}; expected {PAYLOAD_FORMAT!r} or "
                                       f"{TRAIN_FORMAT!r} (or an official CycleGAN / U-GAT-IT state_dict)")
    if any(key in checkpoint for key in UGATIT_GENERATOR_KEYS.values()):
        key = UGATIT_GENERATOR_KEYS[direction]
        if key not in checkpoint:
            raise CheckpointError(f"is a U-GAT-IT checkpoint without {key!r} (needed for direction "
                                  f"{direction!r}); it has {sorted(checkpoint)}")
        return _from_state_dict(checkpoint[key], norm_impl)
    return _from_state_dict(checkpoint, norm_impl)


def _pick_training_generator(checkpoint, direction):
    generators = checkpoint.get("generators")
    if not isinstance(generators, dict) or direction not in generators:
        found = sorted(generators) if isinstance(generators, dict) else type(generators).__name__
        raise CheckpointError(f"is a {TRAIN_FORMAT!r} checkpoint without generators[{direction!r}] "
                              f"(found {found})")
    return generators[direction]


def _from_payload(payload, norm_impl):
    try:
        return generator_from_payload(payload, norm_impl=norm_impl)
    except (ValueError, RuntimeError, TypeError) as error:
        raise CheckpointError(f"generator payload cannot be loaded: {error}") from error


def _from_state_dict(state_dict, norm_impl):
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        keys = sorted(state_dict)[:8] if isinstance(state_dict, dict) else type(state_dict).__name__
        raise WrongCheckpointKindError(f"it is not a state_dict of tensors (found {keys}); expected {EXPECTED}")
    arch, config, state_dict = recognise_generator_state_dict(strip_wrapper_prefixes(state_dict))
    net = build_generator(arch, norm_impl=norm_impl, **config)
    try:
        load_weights(net, state_dict)
    except RuntimeError as error:
        raise CheckpointError(f"recognised as {arch} {config} but its tensors do not fit: {error}") from error
    return net
