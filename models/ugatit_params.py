"""U-GAT-IT's params files (znxlwm/UGATIT-pytorch, UGATIT.save: `<dataset>_params_latest.pt`,
`<dataset>_params_<step>.pt`): a dict of six state_dicts, which U-GAT-IT loads with strict=True,

    {"genA2B": ..., "genB2A": ..., "disGA": ..., "disGB": ..., "disLA": ..., "disLB": ...}

Our names for the same networks: generators "AtoB" / "BtoA" (models.UGATITGenerator),
discriminators "GA", "GB", "LA", "LB" (models.UGATITDiscriminator; G global, L local, A / B the
domain judged). Everything here checks keys and shapes per network and names the file, the
network and the keys in its errors (models.CheckpointError).
"""
from __future__ import annotations

import os
import re

import torch

from .checkpoint_file import describe_path, read_checkpoint_file
from .errors import CheckpointError, WrongCheckpointKindError
from .formats import recognise_generator_state_dict
from .registry import build_generator
from .ugatit_discriminator import MIN_N_LAYERS, UGATITDiscriminator

UGATIT_NETWORKS = ("genA2B", "genB2A", "disGA", "disGB", "disLA", "disLB")
OUR_NAMES = {"genA2B": "AtoB", "genB2A": "BtoA", "disGA": "GA", "disGB": "GB", "disLA": "LA", "disLB": "LB"}
UGATIT_ARCHS = ("ugatit", "ugatit_light")

_DISCRIMINATOR_CONV = re.compile(r"model\.(\d+)\.weight_orig")
_SHOWN_KEYS = 6


def read_ugatit_params(source) -> dict:
    """{U-GAT-IT network name: state_dict} from a params file (read with weights_only=True) or
    an in-memory dict; CheckpointError unless it holds exactly the six networks."""
    where = _describe(source)
    params = read_checkpoint_file(source) if isinstance(source, (str, os.PathLike)) else source
    return check_ugatit_params(params, where)


def check_ugatit_params(params, where: str) -> dict:
    expected = f"a U-GAT-IT params file: a dict with {', '.join(UGATIT_NETWORKS)}, each a state_dict"
    if not isinstance(params, dict):
        raise WrongCheckpointKindError(f"{where} is not {expected}; it holds a {type(params).__name__}")
    missing = [k for k in UGATIT_NETWORKS if k not in params]
    extra = [str(k) for k in params if k not in UGATIT_NETWORKS]
    if missing or extra:
        detail = "; ".join(part for part in (_listing("missing", missing), _listing("unexpected", extra)) if part)
        raise WrongCheckpointKindError(f"{where} is not {expected}: {detail}")
    for name in UGATIT_NETWORKS:
        state_dict = params[name]
        if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
            raise WrongCheckpointKindError(f"{where}: {name!r} is not a state_dict of tensors "
                                           f"(found a {type(state_dict).__name__}); expected {expected}")
    return {name: params[name] for name in UGATIT_NETWORKS}


def load_ugatit_params_into(source, nets: dict) -> None:
    """Load a params file (path or dict) into nets {U-GAT-IT network name: module}, every
    network with strict=True. Nothing is loaded unless all six fit; otherwise CheckpointError
    names the file, and for each network its missing keys, unexpected keys and shape mismatches."""
    _load_checked(read_ugatit_params(source), nets, _describe(source))


def load_ugatit_params(source, norm_impl: str = "fused") -> dict:
    """The six networks of a params file, built from the shapes it holds and loaded strictly:
    {U-GAT-IT network name: models.UGATITGenerator / models.UGATITDiscriminator} (train mode)."""
    where = _describe(source)
    params = read_ugatit_params(source)
    nets = {}
    for name in UGATIT_NETWORKS:
        try:
            nets[name] = (_generator_for(params[name], norm_impl) if name.startswith("gen")
                          else _discriminator_for(params[name], norm_impl))
        except CheckpointError as error:
            raise CheckpointError(f"{where}: {name}: {error}") from None
    _load_checked(params, nets, where)
    return nets


def ugatit_params(nets: dict) -> dict:
    """A params file's contents from {U-GAT-IT network name: module}: contiguous CPU copies of
    the state_dicts (spectral-norm weight_orig / weight_u / weight_v included)."""
    return {name: {k: v.detach().cpu().contiguous() for k, v in nets[name].state_dict().items()}
            for name in UGATIT_NETWORKS}


def ugatit_params_from_training_checkpoint(checkpoint: dict, where: str) -> dict:
    """The params file's contents for one of our U-GAT-IT training checkpoints (--model ugatit)."""
    generators, discriminators = checkpoint.get("generators"), checkpoint.get("discriminators")
    archs = {k: p.get("arch") for k, p in generators.items()} if isinstance(generators, dict) else {}
    is_ugatit = (set(archs) == {"AtoB", "BtoA"} and all(a in UGATIT_ARCHS for a in archs.values())
                 and isinstance(discriminators, dict) and set(discriminators) == {"GA", "GB", "LA", "LB"})
    if not is_ugatit:
        model = checkpoint.get("opt", {}).get("model") if isinstance(checkpoint.get("opt"), dict) else None
        found = f"--model {model}, generators {archs or generators!r}, discriminators " \
                f"{sorted(discriminators) if isinstance(discriminators, dict) else discriminators!r}"
        raise WrongCheckpointKindError(f"{where} is not a U-GAT-IT training checkpoint (--model ugatit: "
                                       f"U-GAT-IT generators and discriminators GA, GB, LA, LB); found {found}")
    params = {}
    for name in UGATIT_NETWORKS:
        ours = OUR_NAMES[name]
        state_dict = generators[ours]["state_dict"] if name.startswith("gen") else discriminators[ours]
        params[name] = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    return check_ugatit_params(params, where)


# --- helpers ------------------------------------------------------------------------------

def _describe(source):
    if isinstance(source, (str, os.PathLike)):
        return describe_path(source)
    if isinstance(source, dict):
        return "in-memory U-GAT-IT params"
    raise TypeError(f"expected a path or a dict of state_dicts, got {type(source).__name__}")


def _load_checked(params, nets, where):
    problems = []
    for name in UGATIT_NETWORKS:
        problems += [f"{name}: {p}" for p in _mismatches(nets[name].state_dict(), params[name])]
    if problems:
        raise CheckpointError(f"{where} does not fit these U-GAT-IT networks: " + "; ".join(problems))
    for name in UGATIT_NETWORKS:
        nets[name].load_state_dict(params[name], strict=True)


def _generator_for(state_dict, norm_impl):
    arch, config, _ = recognise_generator_state_dict(state_dict)
    if arch not in UGATIT_ARCHS:
        raise CheckpointError(f"holds a {arch} generator, not a U-GAT-IT one")
    return build_generator(arch, norm_impl=norm_impl, **config)


def _discriminator_for(state_dict, norm_impl):
    """U-GAT-IT's Discriminator has n_layers - 1 spectral-norm convolutions in `model`."""
    first = state_dict.get("model.1.weight_orig")
    n_convs = sum(1 for key in state_dict if _DISCRIMINATOR_CONV.fullmatch(key))
    if first is None or first.dim() != 4 or n_convs + 1 < MIN_N_LAYERS:
        raise CheckpointError(f"is not U-GAT-IT's Discriminator: expected spectral-norm convolutions "
                              f"model.1.weight_orig, model.4.weight_orig, ... (at least {MIN_N_LAYERS - 1}), "
                              f"found {n_convs}")
    return UGATITDiscriminator(input_nc=int(first.shape[1]), ndf=int(first.shape[0]), n_layers=n_convs + 1,
                               norm_impl=norm_impl)


def _mismatches(expected: dict, found: dict) -> list:
    problems = [_listing("missing keys", [k for k in expected if k not in found]),
                _listing("unexpected keys", [k for k in found if k not in expected])]
    shapes = [f"{k} is {tuple(found[k].shape)} in the file, {tuple(v.shape)} in the network"
              for k, v in expected.items() if k in found and found[k].shape != v.shape]
    problems.append(_listing("shape mismatches", shapes))
    return [p for p in problems if p]


def _listing(label, items):
    if not items:
        return ""
    shown = ", ".join(items[:_SHOWN_KEYS]) + (f", ... ({len(items)} in all)" if len(items) > _SHOWN_KEYS else "")
    return f"{label} {shown}"

