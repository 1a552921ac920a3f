"""Generators by architecture name, and this project's generator payload format.

A payload is a plain dict that torch.load(weights_only=True) can read back:

    {"format": "cyclegan_ext.generator", "version": 1, "arch": "resnet_9blocks",
     "config": {...constructor arguments...}, "state_dict": {...}}
"""
from __future__ import annotations

import inspect
import re

from torch import nn

from .adalin_generator import AdaLINGenerator
from .resnet import ResnetGenerator
from .ugatit import UGATITGenerator
from .weights import load_weights

PAYLOAD_FORMAT = "cyclegan_ext.generator"
PAYLOAD_VERSION = 1
GENERATOR_ARCHS = ("adalin", "resnet_9blocks", "resnet_6blocks", "ugatit", "ugatit_light")

_RESNET_ARCH = re.compile(r"resnet_(\d+)blocks")


def _arch_class_and_fixed_config(arch: str):
    """The class for `arch` and the constructor arguments the name itself fixes."""
    if arch == "adalin":
        return AdaLINGenerator, {}
    if arch == "ugatit":
        return UGATITGenerator, {"light": False}
    if arch == "ugatit_light":
        return UGATITGenerator, {"light": True}
    match = _RESNET_ARCH.fullmatch(arch) if isinstance(arch, str) else None
    if match:  # resnet_9blocks, resnet_6blocks (and any resnet_<n>blocks)
        return ResnetGenerator, {"n_blocks": int(match.group(1))}
    raise ValueError(f"unknown generator architecture {arch!r}; expected one of {GENERATOR_ARCHS}")


def build_generator(arch: str, norm_impl: str = "fused", **config) -> nn.Module:
    """A freshly initialised generator: build_generator("resnet_9blocks", ngf=32)."""
    cls, fixed = _arch_class_and_fixed_config(arch)
    for key, value in fixed.items():
        if key in config and config[key] != value:
            raise ValueError(f"architecture {arch!r} has {key}={value!r}, but config asks for {config[key]!r}")
    return cls(**{**config, **fixed}, norm_impl=norm_impl)


def generator_config(arch: str, **candidates) -> dict:
    """Those of `candidates` (e.g. input_nc, ngf, n_blocks, img_size) that the constructor of
    `arch` takes and its name does not fix; a None value means the constructor's default."""
    cls, fixed = _arch_class_and_fixed_config(arch)
    takes = inspect.signature(cls).parameters
    return {k: v for k, v in candidates.items() if v is not None and k in takes and k not in fixed}


def arch_of(net: nn.Module) -> str:
    """The architecture name (GENERATOR_ARCHS, or resnet_<n>blocks) that builds `net`."""
    net = unwrap(net)
    config = getattr(net, "config", {})
    for arch in (*GENERATOR_ARCHS, f"resnet_{config.get('n_blocks')}blocks"):
        cls, fixed = _arch_class_and_fixed_config(arch)
        if isinstance(net, cls) and all(config.get(k) == v for k, v in fixed.items()):
            return arch
    raise ValueError(f"{type(net).__name__} is not one of the generator architectures {GENERATOR_ARCHS}")


def generator_payload(net: nn.Module, arch: str) -> dict:
    """A self-describing, weights_only-loadable dict from which generator_from_payload rebuilds net."""
    net = unwrap(net)
    cls, fixed = _arch_class_and_fixed_config(arch)
    if not isinstance(net, cls):
        raise ValueError(f"architecture {arch!r} is a {cls.__name__}, got a {type(net).__name__}")
    for key, value in fixed.items():
        if net.config[key] != value:
            raise ValueError(f"architecture {arch!r} has {key}={value!r}, but the network has {net.config[key]!r}")
    return {
        "format": PAYLOAD_FORMAT,
        "version": PAYLOAD_VERSION,
        "arch": arch,
        "config": dict(net.config),
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    }


def generator_from_payload(payload: dict, norm_impl: str = "fused") -> nn.Module:
    """Rebuild the generator described by a payload and load its weights (strict).

    The network is returned as constructed (training mode); load_generator puts it in eval mode.
    Raises ValueError (models.CheckpointError from load_generator) when the payload is malformed.
    """
    if not isinstance(payload, dict) or payload.get("format") != PAYLOAD_FORMAT:
        raise ValueError(f"not a generator payload: expected a dict with format={PAYLOAD_FORMAT!r}")
    if payload.get("version") != PAYLOAD_VERSION:
        raise ValueError(f"generator payload version {payload.get('version')!r} is not supported "
                         f"(this code reads version {PAYLOAD_VERSION})")
    for key, kind in (("arch", str), ("config", dict), ("state_dict", dict)):
        if not isinstance(payload.get(key), kind):
            raise ValueError(f"generator payload lacks {key!r} (a {kind.__name__})")
    net = build_generator(payload["arch"], norm_impl=norm_impl, **payload["config"])
    load_weights(net, payload["state_dict"])
    return net


def unwrap(net: nn.Module, parallel_only: bool = False) -> nn.Module:
    """The module inside DataParallel / DDP (.module) and torch.compile (._orig_mod) wrappers.

    parallel_only=True removes only the DataParallel / DDP wrappers and keeps a compiled
    module compiled (to call a network without DDP's gradient bookkeeping).
    """
    while True:
        inner = getattr(net, "module", None)
        if not isinstance(inner, nn.Module) and not parallel_only:
            inner = getattr(net, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return net
        net = inner
