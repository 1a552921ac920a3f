"""Constructor and parameters shared by the AdaLIN / LIN layers, fused and reference alike,
so that both load the same (U-GAT-IT) state_dicts."""
from __future__ import annotations

import torch
from torch import nn

from .activations import activation_code

ADALIN_RHO_INIT = 0.9  # U-GAT-IT's adaILN
LIN_RHO_INIT = 0.0     # U-GAT-IT's ILN


class LayerInstanceNormBase(nn.Module):
    """rho (and for LIN gamma, beta) as (1, C, 1, 1) parameters, plus the options of the op."""

    def __init__(self, num_features: int, eps: float, unbiased: bool, activation, negative_slope: float,
                 rho_init: float, affine: bool, device=None, dtype=None):
        super().__init__()
        activation_code(activation)  # validates before anything is built
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive int, got {num_features!r}")
        self.num_features = num_features
        self.eps = eps
        self.unbiased = unbiased
        self.activation = activation
        self.negative_slope = negative_slope
        shape = (1, num_features, 1, 1)
        factory = {"device": device, "dtype": dtype}
        self.rho = nn.Parameter(torch.full(shape, rho_init, **factory))
        if affine:
            self.gamma = nn.Parameter(torch.full(shape, 1.0, **factory))
            self.beta = nn.Parameter(torch.full(shape, 0.0, **factory))

    @property
    def activation(self):
        return self._activation

    @activation.setter
    def activation(self, value):
        self.activation_code = activation_code(value)  # what the fused op takes, computed once
        self._activation = value

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, unbiased={self.unbiased}, "
                f"activation={self.activation!r}")
