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
    for module in net.modules():
        if isinstance(module, _INITIALISED):
            nn.init.normal_(module.weight, 0.0, std)
        elif isinstance(module, _AFFINE_NORMS) and module.weight is not None:
            nn.init.normal_(module.weight, 1.0, std)
        else:
            continue
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    return net
