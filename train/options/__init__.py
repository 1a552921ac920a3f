"""The options of `python -m train`: the table (table.py: every option, its rule and whether a
resume may change it), the checks across options and folders (checks.py), and parse()."""
import os
import sys
import time

from .checks import OptionError, validate
from .table import option_facts, recipe_table

__all__ = ["OptionError", "DEMO_DEFAULTS", "build_parser", "parse", "validate", "options_dict",
           "resume_may_change"]

# `--demo`: a run that learns visibly on a laptop CPU in a few minutes. Applied only to the
# options not given explicitly on the command line.
DEMO_DEFAULTS = {
    "dataset": "synthetic", "crop_size": 32, "load_size": 32, "ngf": 32, "ndf": 16, "n_layers_D": 3,
    "n_blocks": 3, "batch_size": 4, "synthetic_size": 200, "n_epochs": 6, "n_epochs_decay": 6,
    "print_freq": 10, "display_freq": 100, "eval_freq": 100, "save_latest_freq": 100,
    "num_threads": 1, "eval_size": 64, "lr": 2e-4,
}  # torch_threads stays torch's default (all cores): on 2 cores the demo ran 1.4x faster than with 1 (2026-11-28)


def build_parser():
    return recipe_table().parser


def resume_may_change() -> frozenset:
    """The options a resumed run may change; every other one is taken from the saved run."""
    return option_facts()[1]


def options_dict(opt) -> dict:
    """The options as saved (opt.json, checkpoints): every public attribute."""
    return {k: v for k, v in vars(opt).items() if not k.startswith("_")}


def explicit_dests(parser, argv) -> set:
    """The dests of the options given on the command line (the parser takes no abbreviations,
    so a flag is given exactly as one of its option strings, possibly as --flag=value)."""
    given = {tok.split("=", 1)[0] for tok in argv if tok.startswith("-")}
    return {act.dest for act in parser._actions if given.intersection(act.option_strings)}


def parse(argv=None):
    """The options of argv: parsed, completed with the recipe's and --demo's defaults where not
    given, derived and checked. A value that cannot work exits with status 2 and one line, as
    argparse's own errors. opt._explicit lists the options given on the command line."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    opt = parser.parse_args(argv)
    given = explicit_dests(parser, argv)
    opt._explicit = sorted(given)
    from ..recipes import get_recipe
    recipe = get_recipe(opt.model)
    defaults = {**recipe.option_defaults, **({**DEMO_DEFAULTS, **recipe.demo_defaults} if opt.demo else {})}
    for k, v in defaults.items():
        if k not in given:
            setattr(opt, k, v)
    if opt.demo and opt.name is None:
        opt.name = time.strftime("demo_%Y%m%d_%H%M%S")
    if opt.dataset is None:
        opt.dataset = "folder" if opt.dataroot else "synthetic"
    if opt.dataroot:
        opt.dataroot = os.path.abspath(opt.dataroot)  # a resume from another folder finds it
    if opt.name is None:
        opt.name = "experiment_name"
    recipe.derive_options(opt)
    try:
        validate(opt)
    except OptionError as error:
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    return opt
