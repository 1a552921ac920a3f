"""Telling a --crop_size too small for the networks from other failures of a first step.

A network that halves its input n times leaves a 1x1 map (which instance norm cannot normalise
in training), or a map smaller than a kernel or reflection pad, when the crop is too small for
its depth. Where that happens differs per architecture, so it is found by trying: only when a
first step has failed, each network is run on the meta device (shapes only, no memory, no
arithmetic) at the crop size and at larger ones, which finds the smallest crop that fits.
"""
from __future__ import annotations

import copy

import torch
from torch import nn

from models.registry import unwrap

from ..options import OptionError

SIZE_STEP = 4  # crops are multiples of 4 (the generators downsample twice)
LARGEST_TRIED = 4096


def too_small_crop_error(networks: dict, crop_size: int, opt) -> OptionError | None:
    """An OptionError naming the smallest --crop_size every network takes, when some network
    cannot take crop_size x crop_size inputs; None when they all can (the failure has another
    cause) or when no size up to LARGEST_TRIED fits (the cause is not the size either)."""
    probes = {name: _meta_copy(net) for name, net in networks.items()}
    failing = [name for name, net in probes.items() if not _takes(net, crop_size)]
    if not failing:
        return None
    smallest = next((side for side in range(crop_size + SIZE_STEP, LARGEST_TRIED + 1, SIZE_STEP)
                     if all(_takes(probes[name], side) for name in failing)), None)
    if smallest is None:
        return None
    depth = f" (--n_layers_D {opt.n_layers_D})" if any(name.startswith("D_") for name in failing) else ""
    return OptionError(f"--crop_size {crop_size} is too small for {', '.join(failing)}{depth}: its deepest "
                       f"layers would be left with too few pixels; use --crop_size {smallest} or more, or "
                       "shallower networks")


def _meta_copy(net: nn.Module) -> nn.Module:
    return copy.deepcopy(unwrap(net)).to("meta").train()


def _input_channels(net: nn.Module) -> int:
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d)).in_channels


def _takes(net: nn.Module, side: int) -> bool:
    x = torch.empty(1, _input_channels(net), side, side, device="meta")
    try:
        with torch.no_grad():
            net(x)
    except (RuntimeError, ValueError):
        return False
    return True
