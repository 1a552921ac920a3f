"""nn.Module layers running on the fused kernels, drop-in for the layers people use today."""
from __future__ import annotations

import inspect
import warnings

import torch
from torch import nn

from . import checks
from .activations import apply_activation, check_activation
from .layer_base import ADALIN_RHO_INIT, LIN_RHO_INIT, LayerInstanceNormBase
from .ops import fused_norm, fused_norm_with_stats

_INSTANCE_NORM_HAS_BIAS_ARG = "bias" in inspect.signature(nn.InstanceNorm2d.__init__).parameters


class FusedAdaLIN(LayerInstanceNormBase):
    """U-GAT-IT's `adaILN` as one fused kernel: forward(x, gamma, beta) with gamma, beta (N, C).

    Same parameter (`rho`, (1, C, 1, 1), initialised 0.9), same unbiased variance and eps,
    so U-GAT-IT state_dicts load unchanged. `activation` ('relu' or 'leaky_relu') is applied
    in the same pass.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, *, unbiased: bool = True, activation=None,
                 negative_slope: float = 0.2, device=None, dtype=None):
        super().__init__(num_features, eps, unbiased, activation, negative_slope, ADALIN_RHO_INIT,
                         affine=False, device=device, dtype=dtype)

    def forward(self, x, gamma, beta):
        name = type(self).__name__
        checks.check_input(name, x, self.num_features)
        checks.check_per_sample_param(name, "gamma", gamma, x)
        checks.check_per_sample_param(name, "beta", beta, x)
        return _layer_instance_norm(self, name, x, gamma, beta)


class FusedLIN(LayerInstanceNormBase):
    """U-GAT-IT's `ILN` (layer-instance norm with learned rho, gamma, beta) as one fused kernel."""

    def __init__(self, num_features: int, eps: float = 1e-5, *, unbiased: bool = True, activation=None,
                 negative_slope: float = 0.2, device=None, dtype=None):
        super().__init__(num_features, eps, unbiased, activation, negative_slope, LIN_RHO_INIT,
                         affine=True, device=device, dtype=dtype)

    def forward(self, x):
        name = type(self).__name__
        checks.check_input(name, x, self.num_features)
        for param in ("rho", "gamma", "beta"):
            checks.check_param_dtype_device(name, param, getattr(self, param), x)
        return _layer_instance_norm(self, name, x, *self.per_sample_affine(x.shape[0]))


def _layer_instance_norm(layer: LayerInstanceNormBase, name: str, x, gamma, beta):
    checks.check_param_dtype_device(name, "rho", layer.rho, x)
    if layer.unbiased:
        checks.check_spatial_size_for_unbiased(name, x)
    return fused_norm(x, gamma, beta, layer.rho.reshape(-1), unbiased=layer.unbiased, eps=layer.eps,
                      activation=layer.activation, negative_slope=layer.negative_slope)


class FusedInstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d on the fused kernel, with an optional fused activation.

    Takes every constructor argument of nn.InstanceNorm2d (and `bias=False` for affine
    without shift), keeps its state_dict keys, running statistics, eval behaviour and
    unbatched (C, H, W) input.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True,
                 activation=None, negative_slope: float = 0.2):
        check_activation(activation)
        if _INSTANCE_NORM_HAS_BIAS_ARG:
            super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device,
                             dtype=dtype, bias=bias)
        else:  # older torch: emulate affine without bias
            super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device,
                             dtype=dtype)
            if affine and not bias:
                self.bias = None
        self.activation = activation
        self.negative_slope = negative_slope

    def forward(self, x):
        name = type(self).__name__
        channels_ok = isinstance(x, torch.Tensor) and x.dim() in (3, 4) and x.shape[x.dim() - 3] == self.num_features
        if not channels_ok and isinstance(x, torch.Tensor) and x.dim() in (3, 4) \
                and not self.affine and not self.track_running_stats:
            # nn.InstanceNorm2d's behaviour: num_features is unused without affine / running stats.
            warnings.warn(f"input's size at dim={x.dim() - 3} does not match num_features. You can "
                          "silence this warning by not passing in num_features, which is not used "
                          "because affine=False", stacklevel=2)
            checks.check_input(name, x, x.shape[x.dim() - 3], allow_unbatched=True)
        else:
            checks.check_input(name, x, self.num_features, allow_unbatched=True)
        if x.dim() == 3:
            return self._forward_batched(x.unsqueeze(0)).squeeze(0)
        return self._forward_batched(x)

    def _forward_batched(self, x):
        name = type(self).__name__
        n, c = x.shape[0], x.shape[1]
        weight, bias = self._affine_params(x)
        if self.track_running_stats:
            checks.check_buffer_device(name, "running_mean", self.running_mean, x)
            checks.check_buffer_device(name, "running_var", self.running_var, x)
        use_input_stats = self.training or not self.track_running_stats
        if not use_input_stats:
            return self._normalize_with_running_stats(x, weight, bias)
        if x.shape[2] * x.shape[3] < 2:
            # nn.InstanceNorm2d refuses this too: the statistics of one pixel are meaningless.
            raise ValueError(f"{name}: expected more than 1 spatial element when training, "
                             f"got x of shape {tuple(x.shape)}")
        weight = weight.reshape(1, c).expand(n, c)
        bias = bias.reshape(1, c).expand(n, c)
        if not (self.training and self.track_running_stats):
            return fused_norm(x, weight, bias, None, unbiased=False, eps=self.eps,
                              activation=self.activation, negative_slope=self.negative_slope)
        y, mean_c, rstd_c = fused_norm_with_stats(x, weight, bias, None, unbiased=False, eps=self.eps,
                                                  activation=self.activation,
                                                  negative_slope=self.negative_slope)
        self._update_running_stats(mean_c, rstd_c, x.shape[2] * x.shape[3])
        return y

    def _affine_params(self, x):
        c = x.shape[1]
        if self.affine:
            checks.check_param_dtype_device(type(self).__name__, "weight", self.weight, x)
            weight = self.weight
            bias = self.bias if self.bias is not None else torch.zeros_like(self.weight)
        else:
            param_dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
            weight = torch.ones(c, dtype=param_dtype, device=x.device)
            bias = torch.zeros(c, dtype=param_dtype, device=x.device)
        return weight, bias

    @torch.no_grad()
    def _update_running_stats(self, mean_c, rstd_c, spatial_size):
        momentum = self.momentum if self.momentum is not None else 0.0  # as F.instance_norm
        biased_var = (rstd_c.double().pow(-2) - self.eps).clamp_min(0)
        unbiased_var = biased_var * (spatial_size / (spatial_size - 1))
        self.running_mean.mul_(1 - momentum).add_(mean_c.mean(0).to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased_var.mean(0).to(self.running_var.dtype), alpha=momentum)

    def _normalize_with_running_stats(self, x, weight, bias):
        # Eval with tracked statistics is a fixed per-channel affine map.
        scale = weight * torch.rsqrt(self.running_var + self.eps)
        shift = bias - self.running_mean * scale
        c = x.shape[1]
        y = torch.addcmul(shift.reshape(1, c, 1, 1).to(x.dtype), x, scale.reshape(1, c, 1, 1).to(x.dtype))
        return apply_activation(y, self.activation, self.negative_slope)

    def extra_repr(self):
        return super().extra_repr() + f", activation={self.activation!r}"
