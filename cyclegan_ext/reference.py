"""Pure-PyTorch twins of the fused layers.

These are the judges: every test compares the fused kernels against them, and the
benchmarks use them as the eager baseline. AdaLIN and LIN follow U-GAT-IT's `adaILN`
and `ILN` formulas literally (torch.var is unbiased there), so their state_dicts and
outputs are interchangeable with U-GAT-IT's.
"""
from __future__ import annotations

import torch
from torch import nn

from .activations import apply_activation, check_activation
from .layer_base import ADALIN_RHO_INIT, LIN_RHO_INIT, LayerInstanceNormBase


def adalin(x, gamma, beta, rho, eps=1e-5, unbiased=True, activation=None, negative_slope=0.2):
    """U-GAT-IT's adaptive layer-instance normalization of x (N, C, H, W).

    gamma, beta: (N, C); rho: broadcastable to (1, C, 1, 1).
    """
    in_mean = torch.mean(x, dim=[2, 3], keepdim=True)
    in_var = torch.var(x, dim=[2, 3], keepdim=True, unbiased=unbiased)
    out_in = (x - in_mean) / torch.sqrt(in_var + eps)
    ln_mean = torch.mean(x, dim=[1, 2, 3], keepdim=True)
    ln_var = torch.var(x, dim=[1, 2, 3], keepdim=True, unbiased=unbiased)
    out_ln = (x - ln_mean) / torch.sqrt(ln_var + eps)
    rho = rho.reshape(1, -1, 1, 1)
    out = rho * out_in + (1 - rho) * out_ln
    out = out * gamma.unsqueeze(2).unsqueeze(3) + beta.unsqueeze(2).unsqueeze(3)
    return apply_activation(out, activation, negative_slope)


class AdaLIN(LayerInstanceNormBase):
    """U-GAT-IT's `adaILN` (plus an optional activation after it)."""

    def __init__(self, num_features, eps=1e-5, *, unbiased=True, activation=None, negative_slope=0.2,
                 device=None, dtype=None):
        super().__init__(num_features, eps, unbiased, activation, negative_slope, ADALIN_RHO_INIT,
                         affine=False, device=device, dtype=dtype)

    def forward(self, x, gamma, beta):
        return adalin(x, gamma, beta, self.rho, self.eps, self.unbiased, self.activation, self.negative_slope)


class LIN(LayerInstanceNormBase):
    """U-GAT-IT's `ILN` (plus an optional activation after it)."""

    def __init__(self, num_features, eps=1e-5, *, unbiased=True, activation=None, negative_slope=0.2,
                 device=None, dtype=None):
        super().__init__(num_features, eps, unbiased, activation, negative_slope, LIN_RHO_INIT,
                         affine=True, device=device, dtype=dtype)

    def forward(self, x):
        gamma, beta = self.gamma.reshape(1, -1).expand(x.shape[0], -1), self.beta.reshape(1, -1).expand(x.shape[0], -1)
        return adalin(x, gamma, beta, self.rho, self.eps, self.unbiased, self.activation, self.negative_slope)


class InstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d followed by an optional activation: the eager baseline."""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device=None, dtype=None, *,
                 activation=None, negative_slope=0.2, bias=True):
        check_activation(activation)
        super().__init__(num_features, eps, momentum, affine, track_running_stats,
                         device=device, dtype=dtype)
        if affine and not bias:
            self.bias = None
        self.activation = activation
        self.negative_slope = negative_slope

    def forward(self, x):
        return apply_activation(super().forward(x), self.activation, self.negative_slope)


def free_norm_like(num_features):
    """A per-channel affine map: the 'normalization costs nothing' stand-in for benchmarks."""
    return _FreeNorm(num_features)


class _FreeNorm(nn.Module):
    def __init__(self, num_features):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1, num_features, 1, 1))
        self.shift = nn.Parameter(torch.zeros(1, num_features, 1, 1))

    def forward(self, x, *unused):
        return torch.addcmul(self.shift, x, self.scale)


__all__ = ["adalin", "AdaLIN", "LIN", "InstanceNorm2d", "free_norm_like"]
