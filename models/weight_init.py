"""CycleGAN's weight initialisation (init_type='normal', init_gain=0.02)."""
from __future__ import annotations

import torch
from torch import nn

_INITIALISED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)
_AFFINE_NORMS = (nn.BatchNorm2d, nn.InstanceNorm2d)


@torch.no_grad()
def init_normal_(net: nn.Module, std: float = 0.02) -> nn.Module:
    """The official init_weights(init_type='normal'): convolution and linear weights
    ~ N(0, std), their biases 0; affine BatchNorm / InstanceNorm weights ~ N(1, std), biases 0.

    Normalization parameters (AdaLIN/LIN rho, gamma, beta) keep their constructor values,
    as they do in the official code and in U-GAT-IT.
    """
    return _initialise(net, WEIGHT_INITS["normal"], std)


WEIGHT_INITS = {  # init_type -> how the official init_weights draws a conv / linear weight
    "normal": lambda w, gain: nn.init.normal_(w, 0.0, gain),
    "xavier": lambda w, gain: nn.init.xavier_normal_(w, gain=gain),
    "kaiming": lambda w, gain: nn.init.kaiming_normal_(w, a=0, mode="fan_in"),  # gain unused, as there
    "orthogonal": lambda w, gain: nn.init.orthogonal_(w, gain=gain),
}
INIT_TYPES = tuple(WEIGHT_INITS)


@torch.no_grad()
def init_weights_(net: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """The official init_weights(net, init_type, init_gain) of CycleGAN and CUT (whose default is
    'xavier'): convolution and linear weights drawn by `init_type`, their biases 0; affine norm
    weights ~ N(1, gain), biases 0. init_type 'normal' is init_normal_."""
    if init_type not in WEIGHT_INITS:
        raise ValueError(f"init_type must be one of {INIT_TYPES}, got {init_type!r}")
    return _initialise(net, WEIGHT_INITS[init_type], gain)


def _initialise(net, draw_weight, gain):
    for module in net.modules():
        if isinstance(module, _INITIALISED):
            draw_weight(module.weight, gain)
        elif isinstance(module, _AFFINE_NORMS) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, gain)
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return net
