"""Loading a state_dict into a network built by this package."""
from __future__ import annotations

import torch
from torch import nn

from . import norms


def load_weights(net: nn.Module, state_dict: dict) -> None:
    """net.load_state_dict(state_dict, strict=True), except for norm_impl="free" networks.

    The "free" stand-in norm has its own parameters (scale, shift) instead of the real norm's
    (rho, gamma, beta): for those layers, and only those, missing and unexpected keys are
    ignored. Everything else must match exactly (a RuntimeError otherwise). Weights that are
    not real floating-point numbers (integer, bool, complex), or not finite, are refused: loading
    would cast them silently and the network would give a flat or black image.
    """
    check_weight_values(state_dict)
    if not _has_free_norm(net):
        net.load_state_dict(state_dict, strict=True)
        return
    norm_names = {name for name, module in net.named_modules() if norms.is_norm_layer(module)}
    missing, unexpected = net.load_state_dict(state_dict, strict=False)
    mismatched = [k for k in list(missing) + list(unexpected) if k.rpartition(".")[0] not in norm_names]
    if mismatched:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(net).__name__}: keys that do not "
                           f"match (outside the norm layers): {mismatched[:10]}")


def check_weight_values(state_dict: dict) -> None:
    """RuntimeError naming the first tensor that is not a real floating-point tensor, or the
    number of tensors holding NaN or inf."""
    for key, value in state_dict.items():
        if not value.is_floating_point() and not _is_integer_bookkeeping(key, value):
            raise RuntimeError(f"tensor {key!r} holds {value.dtype} values; generator weights are floating-point "
                               "(float32, float16, bfloat16 or float64)")
    non_finite = [key for key, value in state_dict.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if non_finite:
        raise RuntimeError(f"{len(non_finite)} of {len(state_dict)} tensors hold NaN or inf (first: {non_finite[0]!r}): "
                           "the run that wrote them diverged or the file is damaged; use an earlier checkpoint")


def _is_integer_bookkeeping(key: str, value: torch.Tensor) -> bool:
    """Integer buffers torch keeps beside weights (BatchNorm's num_batches_tracked)."""
    return key.endswith("num_batches_tracked") and value.dtype == torch.int64


def _has_free_norm(net: nn.Module) -> bool:
    return any(norms.is_free_norm(m) for m in net.modules())
