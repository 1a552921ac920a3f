"""Normalization layers for the networks, chosen by `norm_impl`.

    "fused"  cyclegan_ext's fused kernels (FusedInstanceNorm2d, FusedAdaLIN, FusedLIN)
    "eager"  their pure-PyTorch twins in cyclegan_ext.reference (same state_dicts)
    "free"   a per-channel affine stand-in (cyclegan_ext.reference.free_norm_like) for
             benchmarks measuring a network whose normalization costs nothing; its
             parameters differ, so its state_dict does not match the other two.
    "torch"  torch.nn's own layers as the official CycleGAN builds them (nn.InstanceNorm2d,
             then nn.ReLU(True) / nn.LeakyReLU(0.2, True)): the reference of benchmarks.
             Instance norm only (torch.nn has no AdaLIN / LIN).

Each factory returns a list: [norm] without activation, [norm, slot] with one. The slot is
the activation module where the architecture has it (nn.ReLU / nn.LeakyReLU); when the norm
layer applies the activation itself (fused and eager) the slot is an nn.Identity, which has
no parameters, so the Sequential indices and state_dict keys stay those of the original
architectures.

The classes are looked up when a layer is built, not at import time, so `import models`
works where the compiled extension is not built; building a network there raises
cyclegan_ext's ImportError, which explains how to build it.

Mixed precision: under torch.autocast convolutions return float16/bfloat16, and the layers
take those as they are. The fused kernels accept half-precision input on every device (the
CPU kernels compute in float32 internally and write the input's dtype), so nothing is cast
here; the per-sample gamma/beta from an autocast nn.Linear arrive in the same half dtype.
"""
from __future__ import annotations

from torch import nn

NORM_IMPLS = ("fused", "eager", "free", "torch")


def check_norm_impl(norm_impl: str) -> None:
    if norm_impl not in NORM_IMPLS:
        raise ValueError(f"norm_impl must be one of {NORM_IMPLS}, got {norm_impl!r}")


def instance_norm(num_features: int, norm_impl: str, activation=None, negative_slope: float = 0.2):
    """Instance norm without affine parameters or running statistics (CycleGAN's 'instance')."""
    check_norm_impl(norm_impl)
    if norm_impl == "free":
        return _free_norm_then(num_features, activation, negative_slope)
    if norm_impl == "torch":
        norm = nn.InstanceNorm2d(num_features, affine=False, track_running_stats=False)
        _mark_as_norm(norm)
        return [norm, *_activation_modules(activation, negative_slope)]
    cls = _instance_norm_class(norm_impl)
    norm = cls(num_features, affine=False, track_running_stats=False, activation=activation,
               negative_slope=negative_slope)
    return _with_fused_slot(norm, activation)


def adalin(num_features: int, norm_impl: str, activation=None, negative_slope: float = 0.2):
    """U-GAT-IT's adaILN: forward(x, gamma, beta) with gamma, beta of shape (N, C)."""
    return _layer_instance_norm(_adalin_class, num_features, norm_impl, activation, negative_slope)


def lin(num_features: int, norm_impl: str, activation=None, negative_slope: float = 0.2):
    """U-GAT-IT's ILN: layer-instance norm with learned rho, gamma, beta."""
    return _layer_instance_norm(_lin_class, num_features, norm_impl, activation, negative_slope)


def _layer_instance_norm(class_for_impl, num_features, norm_impl, activation, negative_slope):
    check_norm_impl(norm_impl)
    if norm_impl == "free":
        return _free_norm_then(num_features, activation, negative_slope)
    if norm_impl == "torch":
        raise ValueError("norm_impl='torch' builds instance norm only: torch.nn has no AdaLIN / LIN; "
                         "use 'eager' for the pure-PyTorch layers")
    cls = class_for_impl(norm_impl)
    norm = cls(num_features, unbiased=True, activation=activation, negative_slope=negative_slope)
    return _with_fused_slot(norm, activation)


def is_norm_layer(module: nn.Module) -> bool:
    """True for the layers built by the factories above (any norm_impl)."""
    return getattr(module, "_models_norm_layer", False)


def is_free_norm(module: nn.Module) -> bool:
    """True for the norm_impl="free" stand-ins (whose parameters differ from the real norms')."""
    return getattr(module, "_models_free_norm", False)


# --- class lookup (lazy: importing cyclegan_ext needs the compiled kernels) ---------------

def _instance_norm_class(norm_impl):
    if norm_impl == "fused":
        from cyclegan_ext import FusedInstanceNorm2d
        return FusedInstanceNorm2d
    from cyclegan_ext import reference
    return reference.InstanceNorm2d


def _adalin_class(norm_impl):
    if norm_impl == "fused":
        from cyclegan_ext import FusedAdaLIN
        return FusedAdaLIN
    from cyclegan_ext import reference
    return reference.AdaLIN


def _lin_class(norm_impl):
    if norm_impl == "fused":
        from cyclegan_ext import FusedLIN
        return FusedLIN
    from cyclegan_ext import reference
    return reference.LIN


# --- helpers ----------------------------------------------------------------------------

def _with_fused_slot(norm: nn.Module, activation):
    _check_activation(activation)
    _mark_as_norm(norm)
    return [norm] if activation is None else [norm, nn.Identity()]


def _free_norm_then(num_features, activation, negative_slope):
    _check_activation(activation)
    from cyclegan_ext import reference
    norm = reference.free_norm_like(num_features)
    _mark_as_norm(norm)
    norm._models_free_norm = True
    return [norm, *_activation_modules(activation, negative_slope)]


def _activation_modules(activation, negative_slope):
    """[] or the official in-place activation module, where the norm layer does not apply it."""
    _check_activation(activation)
    if activation in (None, "none"):
        return []
    if activation == "relu":
        return [nn.ReLU(inplace=True)]
    return [nn.LeakyReLU(negative_slope, inplace=True)]


def _check_activation(activation):
    from cyclegan_ext.activations import check_activation  # the one list of activation names
    check_activation(activation)


def _mark_as_norm(norm: nn.Module):
    norm._models_norm_layer = True
