"""Recognising generator state_dicts saved by other projects, and reading their configuration
off the tensor shapes.

    official CycleGAN ResNet generator   model.1.weight (ngf, input_nc, 7, 7), model.{i}.conv_block.*
    CUT's ResNet generator (netG)        the same, with the blur buffers model.{i}.filt of its
                                         anti-aliased down / up-sampling (either or both)
    U-GAT-IT generator (full or light)   DownBlock.*, FC.0.weight, UpBlock1_k.*, UpBlock2.*

`recognise_generator_state_dict` returns (arch, config, state_dict) for models.build_generator,
or raises CheckpointError saying what the keys look like and what was expected.
"""
from __future__ import annotations

import math
import re

import torch

from .errors import CheckpointError, WrongCheckpointKindError

WRAPPER_PREFIXES = ("module.", "_orig_mod.")  # DataParallel / DDP, torch.compile

_RESNET_BLOCK_CONV = re.compile(r"model\.(\d+)\.conv_block\.(\d+)\.weight")
_RUNNING_STAT = re.compile(r"(.*)\.(running_mean|running_var|num_batches_tracked)")
_UGATIT_UP_BLOCK = re.compile(r"UpBlock1_(\d+)\.conv1\.weight")
_UGATIT_DOWN_RES_BLOCK = re.compile(r"DownBlock\.(\d+)\.conv_block\.1\.weight")

RESNET_FIRST_BLOCK_INDEX = 10  # pad, conv, norm, relu, then (conv, norm, relu) x 2
CUT_FIRST_BLUR_INDEX = 7  # CUT's anti-aliased downsampling: (conv, norm, relu, blur) x 2
UGATIT_LAST_CONV = "UpBlock2.11.weight"
EXPECTED = ("an official CycleGAN ResNet generator state_dict (resnet_9blocks / resnet_6blocks), "
            "a CUT / FastCUT generator state_dict (latest_net_G.pth), "
            "a U-GAT-IT generator state_dict, a U-GAT-IT checkpoint with 'genA2B'/'genB2A', "
            "or a cyclegan_ext generator payload / training checkpoint")


def strip_wrapper_prefixes(state_dict: dict) -> dict:
    """Keys without the `module.` (DataParallel, DDP) and `_orig_mod.` (torch.compile) prefixes."""
    stripped = {}
    for key, value in state_dict.items():
        name = key
        while name.startswith(WRAPPER_PREFIXES):
            name = name.partition(".")[2]
        if name in stripped:
            raise CheckpointError(f"key {key!r} collides with another key once wrapper prefixes are removed")
        stripped[name] = value
    return stripped


def recognise_generator_state_dict(state_dict: dict):
    """(arch, config, state_dict ready for strict loading) for a known generator layout."""
    if "model.1.weight" in state_dict:
        return _cyclegan_resnet(state_dict)
    if "DownBlock.1.weight" in state_dict and "FC.0.weight" in state_dict:
        return _ugatit(state_dict)
    raise WrongCheckpointKindError(f"unknown architecture: {_describe_unknown(state_dict)}; expected {EXPECTED}")


def _cyclegan_resnet(state_dict):
    stem = state_dict["model.1.weight"]
    if stem.dim() != 4 or tuple(stem.shape[2:]) != (7, 7):
        raise CheckpointError(f"unknown architecture: model.1.weight has shape {tuple(stem.shape)}, expected "
                              "a 7x7 convolution (the CycleGAN ResNet generator's stem); "
                              f"{_describe_unknown(state_dict)}")
    state_dict = _without_instance_norm_running_stats(state_dict)
    if "model.1.bias" not in state_dict or "model.2.weight" in state_dict:
        raise CheckpointError("a CycleGAN ResNet generator with a norm other than 'instance' (e.g. batch "
                              "norm: model.2.weight present, model.1.bias absent); only norm='instance' "
                              "generators are supported")
    antialias = f"model.{CUT_FIRST_BLUR_INDEX}.filt" in state_dict
    first_block = RESNET_FIRST_BLOCK_INDEX + (2 if antialias else 0)  # one blur after each of 2 downs
    block_convs = {}
    for key in state_dict:
        match = _RESNET_BLOCK_CONV.fullmatch(key)
        if match:
            block_convs.setdefault(int(match.group(1)), set()).add(int(match.group(2)))
    n_blocks = len(block_convs)
    expected_indices = set(range(first_block, first_block + n_blocks))
    if set(block_convs) != expected_indices:
        raise CheckpointError(f"CycleGAN / CUT ResNet generator with residual blocks at model indices "
                              f"{sorted(block_convs)}, expected consecutive indices from {first_block}")
    conv_indices = set().union(*block_convs.values()) if block_convs else {1, 5}
    if conv_indices not in ({1, 5}, {1, 6}):
        raise CheckpointError(f"CycleGAN ResNet blocks with convolutions at conv_block indices "
                              f"{sorted(conv_indices)}, expected (1, 5) or, with dropout, (1, 6)")
    antialias_up = f"model.{first_block + n_blocks}.filt" in state_dict
    # 2 ups of (transposed conv, norm, relu), or CUT's (blur, conv, norm, relu), then pad, conv
    last_conv = f"model.{first_block + n_blocks + (9 if antialias_up else 7)}.weight"
    if last_conv not in state_dict:
        raise CheckpointError(f"CycleGAN / CUT ResNet generator with {n_blocks} blocks lacks {last_conv!r}")
    config = dict(input_nc=stem.shape[1], output_nc=state_dict[last_conv].shape[0], ngf=stem.shape[0],
                  n_blocks=n_blocks, use_dropout=conv_indices == {1, 6}, antialias=antialias,
                  antialias_up=antialias_up)
    return f"resnet_{n_blocks}blocks", _ints(config), state_dict


def _without_instance_norm_running_stats(state_dict):
    """Drop running statistics of instance norms, as the official code does for checkpoints
    saved by torch < 0.4 (InstanceNorm2d then tracked them); batch norms keep theirs."""
    def is_instance_norm_stat(key):
        match = _RUNNING_STAT.fullmatch(key)
        return match is not None and f"{match.group(1)}.weight" not in state_dict
    return {k: v for k, v in state_dict.items() if not is_instance_norm_stat(k)}


def _ugatit(state_dict):
    stem = state_dict["DownBlock.1.weight"]
    ngf, input_nc = stem.shape[0], stem.shape[1]
    dim = 4 * ngf
    n_blocks = sum(1 for key in state_dict if _UGATIT_UP_BLOCK.fullmatch(key))
    n_down_blocks = sum(1 for key in state_dict if _UGATIT_DOWN_RES_BLOCK.fullmatch(key))
    if n_blocks != n_down_blocks:
        raise CheckpointError(f"U-GAT-IT generator with {n_down_blocks} encoder residual blocks but "
                              f"{n_blocks} AdaILN blocks; U-GAT-IT's generator has n_blocks of each")
    if UGATIT_LAST_CONV not in state_dict:
        raise CheckpointError(f"U-GAT-IT generator state_dict lacks {UGATIT_LAST_CONV!r}")
    fc_in = state_dict["FC.0.weight"].shape[1]
    if fc_in == dim:
        light, img_size = True, 256  # img_size is unused by the light generator
    else:
        side = math.isqrt(fc_in // dim)
        if side * side * dim != fc_in:
            raise CheckpointError(f"U-GAT-IT FC.0.weight has {fc_in} inputs, expected {dim} (light) or "
                                  f"(img_size/4)^2 * {dim} (full)")
        light, img_size = False, 4 * side
    config = dict(input_nc=input_nc, output_nc=state_dict[UGATIT_LAST_CONV].shape[0], ngf=ngf,
                  n_blocks=n_blocks, img_size=img_size, light=light)
    return ("ugatit_light" if light else "ugatit"), _ints(config), state_dict


def _ints(config):
    return {k: (v if isinstance(v, bool) else int(v)) for k, v in config.items()}


def _describe_unknown(state_dict):
    keys = list(state_dict)
    if any(k.startswith("model.model.") for k in keys):
        return "this looks like a CycleGAN/pix2pix U-Net generator (unet_128/unet_256), which is not supported"
    first = state_dict.get("model.0.weight")
    if isinstance(first, torch.Tensor) and first.dim() == 4 and tuple(first.shape[2:]) == (4, 4):
        return "this looks like a PatchGAN discriminator (model.0 is a 4x4 convolution), not a generator"
    shown = ", ".join(keys[:6]) + (", ..." if len(keys) > 6 else "")
    return f"a state_dict with {len(keys)} keys ({shown})"
