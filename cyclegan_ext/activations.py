"""The activations the fused kernels can apply, and their codes in the C++ op schema."""
from __future__ import annotations

import enum

import torch.nn.functional as F


class Activation(enum.IntEnum):
    """Codes passed to the C++ ops; csrc/norm_math.h (enum ActivationCode) holds the same values,
    and tests/ops/test_activations.py checks that they agree."""
    NONE = 0
    RELU = 1
    LEAKY_RELU = 2


_BY_NAME = {None: Activation.NONE, "none": Activation.NONE, "relu": Activation.RELU,
            "leaky_relu": Activation.LEAKY_RELU}


def check_activation(activation):
    if activation not in _BY_NAME:
        raise ValueError(
            f"activation must be one of None, 'none', 'relu', 'leaky_relu'; got {activation!r}")


def activation_code(activation) -> int:
    check_activation(activation)
    return int(_BY_NAME[activation])


def apply_activation(x, activation, negative_slope=0.2):
    code = activation_code(activation)
    if code == Activation.RELU:
        return F.relu(x)
    if code == Activation.LEAKY_RELU:
        return F.leaky_relu(x, negative_slope)
    return x
