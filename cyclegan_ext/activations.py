"""The activations the fused kernels can apply, and their codes in the C++ op schema."""
from __future__ import annotations

import torch.nn.functional as F

# Codes passed to the C++ ops; keep in sync with csrc/norm_math.h (enum class Activation).
ACTIVATION_CODES = {None: 0, "none": 0, "relu": 1, "leaky_relu": 2}


def check_activation(activation):
    if activation not in ACTIVATION_CODES:
        raise ValueError(
            f"activation must be one of None, 'none', 'relu', 'leaky_relu'; got {activation!r}")


def activation_code(activation) -> int:
    check_activation(activation)
    return ACTIVATION_CODES[activation]


def apply_activation(x, activation, negative_slope=0.2):
    code = activation_code(activation)
    if code == 1:
        return F.relu(x)
    if code == 2:
        return F.leaky_relu(x, negative_slope)
    return x
