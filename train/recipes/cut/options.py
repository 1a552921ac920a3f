"""CUT's own options (taesungp/contrastive-unpaired-translation, models/cut_model.py and
options/base_options.py), with its names and its CUT-mode defaults; FastCUT's preset changes
some of them (recipe.FastCUT.option_defaults). The boolean ones take CUT's forms: `--nce_idt`,
`--nce_idt True`, `--nce_idt False`."""
from __future__ import annotations

import argparse
import math

from models.weight_init import INIT_TYPES

from ...options.checks import OptionError

PATCH_SAMPLERS = ("mlp_sample", "sample")  # CUT's 'reshape' never ran there (wrong call signature)
TRUE_WORDS, FALSE_WORDS = ("yes", "true", "t", "y", "1"), ("no", "false", "f", "n", "0")
WEIGHTS = ("lambda_GAN", "lambda_NCE")


def str2bool(text: str) -> bool:
    """CUT's util.str2bool: yes/true/t/y/1 or no/false/f/n/0, any case."""
    if text.lower() in TRUE_WORDS:
        return True
    if text.lower() in FALSE_WORDS:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true or false), got {text!r}")


def add_options(group) -> None:
    a = group.add_argument

    def flag(name, default, text):
        a(f"--{name}", type=str2bool, nargs="?", const=True, default=default, help=text)

    a("--lambda_GAN", type=float, default=1.0, help="weight of the GAN loss GAN(G(X))")
    a("--lambda_NCE", type=float, default=1.0, help="weight of the PatchNCE loss NCE(G(X), X)")
    flag("nce_idt", True, "also the NCE identity loss NCE(G(Y), Y) (CUT: on, FastCUT: off)")
    a("--nce_layers", default="0,4,8,12,16",
      help="comma list of generator layers (indices into its Sequential) whose outputs the PatchNCE loss compares")
    flag("nce_includes_all_negatives_from_minibatch", False,
         "draw the negatives from every image of the batch, not only the query's own image (single-image "
         "translation)")
    a("--netF", choices=PATCH_SAMPLERS, default="mlp_sample",
      help="how patches become NCE features: a 2-layer MLP per layer (mlp_sample) or the features as they are")
    a("--netF_nc", type=int, default=256, help="channels of the MLP's output (mlp_sample)")
    a("--nce_T", type=float, default=0.07, help="temperature of the PatchNCE softmax")
    a("--num_patches", type=int, default=256, help="patches sampled per layer and image")
    flag("flip_equivariance", False, "flip each batch horizontally with probability 1/2 and the query features "
                                     "back (FastCUT: on)")
    a("--no_antialias", action="store_true", help="stride-2 convolutions instead of anti-aliased downsampling")
    a("--no_antialias_up", action="store_true",
      help="transposed convolutions instead of anti-aliased upsampling ([1,3,3,1] blur, then a convolution)")
    a("--init_type", choices=INIT_TYPES, default="xavier", help="weight initialisation (with --init_gain)")


def nce_layers(opt) -> tuple:
    """--nce_layers as a tuple of ints (OptionError when it is not a comma list of integers)."""
    try:
        layers = tuple(int(part) for part in str(opt.nce_layers).split(","))
    except ValueError:
        raise OptionError(f"--nce_layers must be a comma list of layer indices such as 0,4,8,12,16, "
                          f"got {opt.nce_layers!r}") from None
    return layers


def validate(opt, generator_layers: int) -> None:
    """OptionError for the first CUT option that cannot work; generator_layers is the length of
    the generator's Sequential (what --nce_layers indexes)."""
    for name in WEIGHTS:
        value = getattr(opt, name)
        if not math.isfinite(value) or value < 0:
            raise OptionError(f"--{name} must be a finite number >= 0, got {value}")
    if not math.isfinite(opt.nce_T) or opt.nce_T <= 0:
        raise OptionError(f"--nce_T must be a finite number > 0, got {opt.nce_T}")
    for name in ("num_patches", "netF_nc"):
        if getattr(opt, name) < 1:
            raise OptionError(f"--{name} must be an integer >= 1, got {getattr(opt, name)}")
    layers = nce_layers(opt)
    if list(layers) != sorted(set(layers)) or layers[0] < 0 or layers[-1] >= generator_layers:
        raise OptionError(f"--nce_layers must be increasing layer indices in [0, {generator_layers - 1}] (--netG "
                          f"{opt.netG} has {generator_layers} layers), got {opt.nce_layers}")
