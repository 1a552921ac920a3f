"""load_generator: a ready-to-run generator from the checkpoints people already have.

Reads, with torch.load(weights_only=True):
    - an official CycleGAN generator state_dict (latest_net_G_A.pth, ...)
    - a U-GAT-IT generator state_dict, full or light, or a U-GAT-IT checkpoint holding
      'genA2B' / 'genB2A' (direction picks one)
    - this project's generator payload (models.generator_payload) and training checkpoint
      {"format": "cyclegan_ext.train", "generators": {"AtoB": payload, "BtoA": payload}, ...}
Keys saved from DataParallel / DDP (`module.`) or torch.compile (`_orig_mod.`) load too.
"""
from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch
from torch import nn

from .errors import CheckpointError
from .formats import EXPECTED, recognise_generator_state_dict, strip_wrapper_prefixes
from .registry import PAYLOAD_FORMAT, build_generator, generator_from_payload
from .weights import load_weights

TRAIN_FORMAT = "cyclegan_ext.train"
DIRECTIONS = ("AtoB", "BtoA")
UGATIT_GENERATOR_KEYS = {"AtoB": "genA2B", "BtoA": "genB2A"}

_ZIP_MAGIC = b"PK\x03\x04"
_PICKLE_PROTOCOL_2_OR_LATER = b"\x80"


def load_generator(source, direction: str = "AtoB", norm_impl: str = "fused", map_location="cpu") -> nn.Module:
    """The generator stored in `source` (a path or an in-memory dict), in eval mode.

    direction ('AtoB' or 'BtoA') picks the generator in checkpoints that hold both; a file
    holding a single generator is that generator whatever the direction.
    Raises CheckpointError (a ValueError) naming the source and what was expected, and
    FileNotFoundError for a missing path.
    """
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    where = _describe_source(source)
    checkpoint = _read(source, where, map_location)
    try:
        net = _generator_from_checkpoint(checkpoint, direction, norm_impl)
    except CheckpointError as error:
        raise CheckpointError(f"{where}: {error}") from None
    if isinstance(map_location, (str, torch.device)):
        net.to(map_location)
    return net.eval()


def _describe_source(source):
    if isinstance(source, (str, os.PathLike)):
        return f"checkpoint file {os.fspath(source)!r}"
    return f"in-memory checkpoint ({type(source).__name__})"


def _read(source, where, map_location):
    if isinstance(source, dict):
        return source
    if not isinstance(source, (str, os.PathLike)):
        raise TypeError(f"load_generator: source must be a path or a dict (state_dict or checkpoint), "
                        f"got {type(source).__name__}")
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"{where}: no such file")
    with open(path, "rb") as f:
        header = f.read(4)
    if not header:
        raise CheckpointError(f"{where}: the file is empty; expected a torch.save checkpoint")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        looks_like_torch_save = header.startswith((_ZIP_MAGIC, _PICKLE_PROTOCOL_2_OR_LATER))
        if looks_like_torch_save and "weights only load failed" in str(error).lower():
            raise CheckpointError(
                f"{where}: holds Python objects that torch.load(weights_only=True) refuses to unpickle; "
                "expected tensors in plain containers. If you trust the file, load it yourself with "
                "torch.load(..., weights_only=False) and pass the generator's state_dict.") from error
        raise CheckpointError(_unreadable_message(where, path, header)) from error
    except (RuntimeError, EOFError, KeyError, ValueError, TypeError, AttributeError, IndexError,
            zipfile.BadZipFile, OSError) as error:
        raise CheckpointError(_unreadable_message(where, path, header)) from error


def _unreadable_message(where, path, header):
    if header.startswith(_ZIP_MAGIC):
        state = "is truncated" if not zipfile.is_zipfile(path) else "is corrupted"
        return f"{where} {state}: a zip archive that torch.load cannot read; expected a complete torch.save checkpoint"
    if header.startswith(_PICKLE_PROTOCOL_2_OR_LATER):
        return (f"{where} is truncated or corrupted: a pickle stream that ends early or is damaged; "
                "expected a complete torch.save checkpoint")
    return f"{where} is not a PyTorch checkpoint (not written by torch.save); expected {EXPECTED}"


def _generator_from_checkpoint(checkpoint, direction, norm_impl):
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"holds a {type(checkpoint).__name__}; expected a dict: {EXPECTED}")
    declared_format = checkpoint.get("format")
    if declared_format == TRAIN_FORMAT:
        return _from_payload(_pick_training_generator(checkpoint, direction), norm_impl)
    if declared_format == PAYLOAD_FORMAT:
        return _from_payload(checkpoint, norm_impl)
    if declared_format is not None:
        raise CheckpointError(f"has unknown format {declared_format!r}; expected {PAYLOAD_FORMAT!r} or "
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
        raise CheckpointError(f"is not a state_dict of tensors (found {keys}); expected {EXPECTED}")
    arch, config, state_dict = recognise_generator_state_dict(strip_wrapper_prefixes(state_dict))
    net = build_generator(arch, norm_impl=norm_impl, **config)
    try:
        load_weights(net, state_dict)
    except RuntimeError as error:
        raise CheckpointError(f"recognised as {arch} {config} but its tensors do not fit: {error}") from error
    return net
