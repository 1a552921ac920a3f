"""nn.Module layers running on the fused kernels, drop-in for the layers people use today.

Per call, the common cases go straight to the C++ op, which validates its arguments and
records autograd itself. When the op refuses an argument, the layer re-examines the call
in Python (`_explain_*`) to raise an error that names the layer's own argument (gamma, beta,
rho, num_features, ...); that cost is paid only on the error path.
"""
from __future__ import annotations

import inspect
import warnings

import torch
from torch import nn

from . import checks
from .activations import activation_code, apply_activation
from .layer_base import ADALIN_RHO_INIT, LIN_RHO_INIT, LayerInstanceNormBase
from .ops import forward_y, fused_norm_with_stats

_INSTANCE_NORM_HAS_BIAS_ARG = "bias" in inspect.signature(nn.InstanceNorm2d.__init__).parameters
# What the op raises for a bad argument (c10 errors map to ValueError / TypeError /
# RuntimeError; a non-tensor argument to TypeError; a non-tensor gamma to AttributeError).
_OP_ERRORS = (RuntimeError, ValueError, TypeError, AttributeError, IndexError)


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
        try:
            # (C,) gamma would be accepted by the op as per-channel: AdaLIN's contract is (N, C).
            if gamma.dim() == 2 and beta.dim() == 2:
                return forward_y()(x, gamma, beta, self.rho, self.unbiased, self.eps, self.activation_code,
                                   self.negative_slope)
        except _OP_ERRORS:
            self._explain(x, gamma, beta)
            raise
        self._explain(x, gamma, beta)
        raise AssertionError("unreachable: _explain raises for gamma / beta that are not 2-D")

    def _explain(self, x, gamma, beta):
        name = type(self).__name__
        checks.check_input(name, x, self.num_features)
        checks.check_per_sample_param(name, "gamma", gamma, x)
        checks.check_per_sample_param(name, "beta", beta, x)
        _explain_layer_instance_norm(self, name, x)


class FusedLIN(LayerInstanceNormBase):
    """U-GAT-IT's `ILN` (layer-instance norm with learned rho, gamma, beta) as one fused kernel."""

    def __init__(self, num_features: int, eps: float = 1e-5, *, unbiased: bool = True, activation=None,
                 negative_slope: float = 0.2, device=None, dtype=None):
        super().__init__(num_features, eps, unbiased, activation, negative_slope, LIN_RHO_INIT,
                         affine=True, device=device, dtype=dtype)

    def forward(self, x):
        try:
            return forward_y()(x, self.gamma, self.beta, self.rho, self.unbiased, self.eps, self.activation_code,
                               self.negative_slope)
        except _OP_ERRORS:
            name = type(self).__name__
            checks.check_input(name, x, self.num_features)
            _explain_layer_instance_norm(self, name, x)
            for param in ("gamma", "beta"):
                checks.check_param_dtype_device(name, param, getattr(self, param), x)
            raise


def _explain_layer_instance_norm(layer: LayerInstanceNormBase, name: str, x):
    checks.check_param_dtype_device(name, "rho", layer.rho, x)
    if layer.unbiased:
        checks.check_spatial_size_for_unbiased(name, x)


class FusedInstanceNorm2d(nn.InstanceNorm2d):
    """nn.InstanceNorm2d on the fused kernel, with an optional fused activation.

    Takes every constructor argument of nn.InstanceNorm2d (and `bias=False` for affine
    without shift), keeps its state_dict keys, running statistics, eval behaviour and
    unbatched (C, H, W) input; an input with no elements gives an empty output, as
    nn.InstanceNorm2d does.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum=0.1, affine: bool = False,
                 track_running_stats: bool = False, device=None, dtype=None, *, bias: bool = True,
                 activation=None, negative_slope: float = 0.2):
        code = activation_code(activation)
        if _INSTANCE_NORM_HAS_BIAS_ARG:
            super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device,
                             dtype=dtype, bias=bias)
        else:  # older torch: emulate affine without bias
            super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device,
                             dtype=dtype)
            if affine and not bias:
                self.bias = None
        self._activation = activation
        self.activation_code = code
        self.negative_slope = negative_slope

    @property
    def activation(self):
        return self._activation

    @activation.setter
    def activation(self, value):
        self.activation_code = activation_code(value)
        self._activation = value

    def forward(self, x):
        try:
            # The common case (CycleGAN's instance norm): input statistics, nothing tracked.
            if x.dim() == 4 and not self.track_running_stats:
                _, c, h, w = x.shape
                if c == self.num_features and h * w > 1:
                    return forward_y()(x, self.weight, self.bias, None, False, self.eps, self.activation_code,
                                       self.negative_slope)
        except _OP_ERRORS:
            self._explain(x)
            raise
        return self._forward_general(x)

    def _forward_general(self, x):
        self._explain(x)
        if x.dim() == 3:
            return self._forward_batched(x.unsqueeze(0)).squeeze(0)
        return self._forward_batched(x)

    def _explain(self, x):
        """The layer-level checks, raising errors that name this layer's arguments."""
        name = type(self).__name__
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{name}: expected x to be a torch.Tensor, got {type(x).__name__}")
        channels = x.shape[x.dim() - 3] if x.dim() in (3, 4) else None
        if channels is not None and channels != self.num_features and not self.affine \
                and not self.track_running_stats:
            # nn.InstanceNorm2d's behaviour: num_features is unused without affine / running stats.
            warnings.warn(f"input's size at dim={x.dim() - 3} does not match num_features. You can "
                          "silence this warning by not passing in num_features, which is not used "
                          "because affine=False", stacklevel=3)
            checks.check_input(name, x, channels, allow_unbatched=True)
        else:
            checks.check_input(name, x, self.num_features, allow_unbatched=True)
        if self.affine:
            checks.check_param_dtype_device(name, "weight", self.weight, x)
            if self.bias is not None:
                checks.check_param_dtype_device(name, "bias", self.bias, x)
        if self.track_running_stats:
            checks.check_buffer_device(name, "running_mean", self.running_mean, x)
            checks.check_buffer_device(name, "running_var", self.running_var, x)

    def _forward_batched(self, x):
        use_input_stats = self.training or not self.track_running_stats
        if not use_input_stats:
            return self._normalize_with_running_stats(x)
        if x.shape[2] * x.shape[3] == 1:
            # nn.InstanceNorm2d refuses this too: the statistics of one pixel are meaningless.
            raise ValueError(f"{type(self).__name__}: expected more than 1 spatial element when training, "
                             f"got x of shape {tuple(x.shape)}")
        y, mean_c, rstd_c = fused_norm_with_stats(x, self.weight, self.bias, None, unbiased=False, eps=self.eps,
                                                  activation=self.activation, negative_slope=self.negative_slope)
        if self.training and self.track_running_stats and x.numel() > 0:
            self._update_running_stats(mean_c, rstd_c, x.shape[2] * x.shape[3])
        return y

    @torch.no_grad()
    def _update_running_stats(self, mean_c, rstd_c, spatial_size):
        momentum = self.momentum if self.momentum is not None else 0.0  # as F.instance_norm
        biased_var = (rstd_c.double().pow(-2) - self.eps).clamp_min(0)
        unbiased_var = biased_var * (spatial_size / (spatial_size - 1))
        self.running_mean.mul_(1 - momentum).add_(mean_c.mean(0).to(self.running_mean.dtype), alpha=momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased_var.mean(0).to(self.running_var.dtype), alpha=momentum)

    def _normalize_with_running_stats(self, x):
        # Eval with tracked statistics is a fixed per-channel affine map.
        c = x.shape[1]
        scale = torch.rsqrt(self.running_var + self.eps)
        shift = -self.running_mean * scale
        if self.affine:
            scale = self.weight * scale
            shift = self.weight * shift + (self.bias if self.bias is not None else 0)
        y = torch.addcmul(shift.reshape(1, c, 1, 1).to(x.dtype), x, scale.reshape(1, c, 1, 1).to(x.dtype))
        return apply_activation(y, self.activation, self.negative_slope)

    def extra_repr(self):
        return super().extra_repr() + f", activation={self.activation!r}"
