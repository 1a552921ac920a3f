"""Argument checks with messages that name the argument and what was expected."""
from __future__ import annotations

import torch

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)


def check_input(layer: str, x, num_features: int, allow_unbatched: bool = False):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{layer}: expected x to be a torch.Tensor, got {type(x).__name__}")
    if x.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{layer}: expected x to be a floating point tensor "
                        f"(float32, float64, float16 or bfloat16), got dtype {x.dtype}")
    ranks = "(N, C, H, W) or (C, H, W)" if allow_unbatched else "(N, C, H, W)"
    if x.dim() != 4 and not (allow_unbatched and x.dim() == 3):
        raise ValueError(f"{layer}: expected x of shape {ranks}, got a {x.dim()}-D tensor of shape {tuple(x.shape)}")
    channel_dim = x.dim() - 3
    if x.shape[channel_dim] != num_features:
        raise ValueError(f"{layer}: expected x with {num_features} channels (num_features) at dim "
                         f"{channel_dim}, got shape {tuple(x.shape)}")


def check_spatial_size_for_unbiased(layer: str, x):
    if x.shape[-1] * x.shape[-2] == 1:
        raise ValueError(f"{layer}: unbiased variance needs H*W > 1, got x of shape {tuple(x.shape)}; "
                         "use unbiased=False for 1x1 feature maps")


def check_per_sample_param(layer: str, name: str, p, x):
    n, c = x.shape[0], x.shape[1]
    if not isinstance(p, torch.Tensor):
        raise TypeError(f"{layer}: expected {name} to be a torch.Tensor, got {type(p).__name__}")
    if tuple(p.shape) != (n, c):
        raise ValueError(f"{layer}: expected {name} of shape (N, C) = ({n}, {c}), got {tuple(p.shape)}")
    check_param_dtype_device(layer, name, p, x)


def check_param_dtype_device(layer: str, name: str, p, x):
    if p.device != x.device:
        raise ValueError(f"{layer}: {name} is on {p.device} but x is on {x.device}; "
                         "expected both on the same device")
    half_x = x.dtype in (torch.float16, torch.bfloat16)
    if p.dtype != x.dtype and not (half_x and p.dtype == torch.float32):
        raise TypeError(f"{layer}: {name} has dtype {p.dtype} but x has dtype {x.dtype}; expected "
                        "the same dtype (float32 parameters are accepted with half-precision x)")


def check_buffer_device(layer: str, name: str, buf, x):
    """Running statistics may keep their own dtype (as in nn), but must live on x's device."""
    if buf is not None and buf.device != x.device:
        raise ValueError(f"{layer}: {name} is on {buf.device} but x is on {x.device}; "
                         "expected both on the same device")
