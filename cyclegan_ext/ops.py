"""The fused normalization op: fake (meta) kernels, autograd, and a Python entry point.

torch.ops.cyclegan_ext.fused_norm_forward / fused_norm_backward are defined in C++
(csrc/ops.cpp). This module teaches the dispatcher their output shapes (so they trace
under torch.compile) and their gradients. The hot path is the compiled kernels; only a
second-order backward (create_graph=True, e.g. a WGAN-GP gradient penalty) falls back to
the differentiable PyTorch reference, see `_backward`.
"""
from __future__ import annotations

import torch

from . import _extension  # noqa: F401  (loads the kernels)
from . import reference
from .activations import activation_code

_ops = torch.ops.cyclegan_ext
ACTIVATION_NAMES = {0: None, 1: "relu", 2: "leaky_relu"}


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


def _setup_context(ctx, inputs, output):
    x, weight, bias, rho, unbiased, eps, activation, negative_slope = inputs
    _, mean_c, rstd_c, mean_l, rstd_l = output
    ctx.mark_non_differentiable(mean_c, rstd_c, mean_l, rstd_l)
    ctx.save_for_backward(x, weight, bias, rho, mean_c, rstd_c, mean_l, rstd_l)
    ctx.options = (unbiased, eps, activation, negative_slope)


def _backward(ctx, grad_y, *unused_stat_grads):
    x, weight, bias, rho, mean_c, rstd_c, mean_l, rstd_l = ctx.saved_tensors
    unbiased, eps, activation, negative_slope = ctx.options
    if torch.is_grad_enabled():
        # create_graph=True: the gradient itself must be differentiable.
        grads = _differentiable_backward(grad_y, x, weight, bias, rho, *ctx.options)
    else:
        grad_x, grad_w, grad_b, grad_rho = _ops.fused_norm_backward(
            grad_y, x, weight, bias, rho, mean_c, rstd_c, mean_l, rstd_l, unbiased, activation,
            negative_slope)
        grads = (grad_x, grad_w.to(weight.dtype), grad_b.to(bias.dtype),
                 None if rho is None else grad_rho.sum(0).to(rho.dtype))
    grad_x, grad_w, grad_b, grad_rho = grads
    return grad_x, grad_w, grad_b, grad_rho, None, None, None, None


def _differentiable_backward(grad_y, x, weight, bias, rho, unbiased, eps, activation, negative_slope):
    """Gradients built from the PyTorch reference, so that they can be differentiated again."""
    if rho is None:
        rho_in = torch.ones(x.shape[1], dtype=weight.dtype, device=x.device)
    else:
        rho_in = rho
    inputs = [t if t.requires_grad else t.detach().requires_grad_()
              for t in (x, weight, bias, rho_in)]
    with torch.enable_grad():
        y = reference.adalin(inputs[0], inputs[1], inputs[2], inputs[3], eps=eps, unbiased=unbiased,
                             activation=ACTIVATION_NAMES[activation], negative_slope=negative_slope)
        grads = torch.autograd.grad(y, inputs, grad_y, create_graph=True, allow_unused=True)
    grad_x, grad_w, grad_b, grad_rho = grads
    return grad_x, grad_w, grad_b, (None if rho is None else grad_rho)


torch.library.register_autograd("cyclegan_ext::fused_norm_forward", _backward, setup_context=_setup_context)


def fused_norm(x, weight, bias, rho=None, *, unbiased: bool, eps: float, activation=None,
               negative_slope: float = 0.2):
    """y = act(weight * norm(x) + bias) for x (N, C, H, W), weight/bias (N, C), rho (C,) or None.

    norm(x) = rho * instance_norm(x) + (1 - rho) * layer_norm(x); rho=None is plain instance
    norm. Arguments are checked by the layers (with their own argument names) and again in C++.
    """
    y, *_ = _ops.fused_norm_forward(x, weight, bias, rho, unbiased, eps, activation_code(activation),
                                    negative_slope)
    return y


def fused_norm_with_stats(x, weight, bias, rho=None, *, unbiased: bool, eps: float, activation=None,
                          negative_slope: float = 0.2):
    """As fused_norm, also returning (mean_c, rstd_c) of shape (N, C), e.g. for running statistics."""
    y, mean_c, rstd_c, _, _ = _ops.fused_norm_forward(
        x, weight, bias, rho, unbiased, eps, activation_code(activation), negative_slope)
    return y, mean_c, rstd_c
