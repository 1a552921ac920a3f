"""The fused normalization op: fake (meta) kernels and the Python entry points.

torch.ops.cyclegan_ext.fused_norm_forward / fused_norm_backward are defined in C++
(csrc/ops.cpp), with their autograd (csrc/autograd.cpp): no Python runs per call in forward
or backward. This module teaches the dispatcher their output shapes, so that they trace
under torch.compile.
"""
from __future__ import annotations

import torch

from ._extension import _C  # the compiled kernels (the import explains a missing build)
from .activations import activation_code

_forward_overload = torch.ops.cyclegan_ext.fused_norm_forward.default


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def output_memory_format(x: torch.Tensor) -> torch.memory_format:
    """The layout the kernels write: channels_last input stays channels_last, all else NCHW."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _check_same_device(x, **tensors):
    # The fake kernels also run when one argument is on "meta" and the rest are real;
    # refuse that mix as aten ops do, instead of returning uninitialised tensors.
    for name, t in tensors.items():
        if t is not None and t.device != x.device:
            raise ValueError(f"fused_norm: {name} is on {t.device} but x is on {x.device}; "
                             "expected all tensors on the same device")


@torch.library.register_fake("cyclegan_ext::fused_norm_forward")
def _forward_fake(x, weight, bias, rho, unbiased, eps, activation, negative_slope):
    _check_same_device(x, weight=weight, bias=bias, rho=rho)
    n, c = x.shape[0], x.shape[1]
    acc = accumulation_dtype(x.dtype)
    y = torch.empty_like(x, memory_format=output_memory_format(x))
    return (y, x.new_empty((n, c), dtype=acc), x.new_empty((n, c), dtype=acc),
            x.new_empty((n,), dtype=acc), x.new_empty((n,), dtype=acc))


@torch.library.register_fake("cyclegan_ext::fused_norm_backward")
def _backward_fake(grad_out, x, weight, bias, rho, mean_c, rstd_c, mean_l, rstd_l, unbiased,
                   activation, negative_slope):
    _check_same_device(x, grad_out=grad_out, weight=weight, bias=bias, rho=rho, mean_c=mean_c, rstd_c=rstd_c,
                       mean_l=mean_l, rstd_l=rstd_l)
    n, c = x.shape[0], x.shape[1]
    acc = accumulation_dtype(x.dtype)
    grad_x = torch.empty_like(x, memory_format=output_memory_format(x))
    return grad_x, x.new_empty((n, c), dtype=acc), x.new_empty((n, c), dtype=acc), x.new_empty((n, c), dtype=acc)


def forward_y():
    """The layers' entry into the forward op, (x, weight, bias, rho, unbiased, eps, activation,
    negative_slope) -> y: in eager mode the extension's direct binding (no Python frame, no
    boxing of the arguments), while torch.compile traces the OpOverload, which it understands."""
    if torch.compiler.is_compiling():
        return _forward_y_traced
    return _C.forward_y


def _forward_y_traced(*args):
    return _forward_overload(*args)[0]


def fused_norm(x, weight=None, bias=None, rho=None, *, unbiased: bool, eps: float, activation=None,
               negative_slope: float = 0.2):
    """y = act(weight * norm(x) + bias) for x (N, C, H, W).

    weight, bias: None (1 and 0), per channel ((C,) or (1, C, 1, 1)) or per sample ((N, C)).
    norm(x) = rho * instance_norm(x) + (1 - rho) * layer_norm(x), rho per channel; rho=None is
    plain instance norm. Arguments are checked in C++.
    """
    return forward_y()(x, weight, bias, rho, unbiased, eps, activation_code(activation), negative_slope)


def fused_norm_with_stats(x, weight=None, bias=None, rho=None, *, unbiased: bool, eps: float, activation=None,
                          negative_slope: float = 0.2):
    """As fused_norm, also returning (mean_c, rstd_c) of shape (N, C), e.g. for running statistics."""
    y, mean_c, rstd_c, _, _ = _forward_overload(x, weight, bias, rho, unbiased, eps, activation_code(activation),
                                                negative_slope)
    return y, mean_c, rstd_c
