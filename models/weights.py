"""Loading a state_dict into a network built by this package."""
from __future__ import annotations

from torch import nn

from . import norms


def load_weights(net: nn.Module, state_dict: dict) -> None:
    """net.load_state_dict(state_dict, strict=True), except for norm_impl="free" networks.

    The "free" stand-in norm has its own parameters (scale, shift) instead of the real norm's
    (rho, gamma, beta): for those layers, and only those, missing and unexpected keys are
    ignored. Everything else must match exactly (a RuntimeError otherwise).
    """
    if not _has_free_norm(net):
        net.load_state_dict(state_dict, strict=True)
        return
    norm_names = {name for name, module in net.named_modules() if norms.is_norm_layer(module)}
    missing, unexpected = net.load_state_dict(state_dict, strict=False)
    mismatched = [k for k in list(missing) + list(unexpected) if k.rpartition(".")[0] not in norm_names]
    if mismatched:
        raise RuntimeError(f"Error(s) in loading state_dict for {type(net).__name__}: keys that do not "
                           f"match (outside the norm layers): {mismatched[:10]}")


def _has_free_norm(net: nn.Module) -> bool:
    return any(norms.is_free_norm(m) for m in net.modules())
