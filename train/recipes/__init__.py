"""Training recipes by --model name. A recipe is one package under train/recipes/ whose class
subclasses train.recipes.base.Recipe; registering it is one line in RECIPES: "name":
"module:Class" (imported when first asked for)."""
import importlib

from .base import Recipe, RunContext

RECIPES = {
    "cycle_gan": "train.recipes.cycle_gan:CycleGAN",
    "ugatit": "train.recipes.ugatit:UGATIT",
    "cut": "train.recipes.cut:CUT",
    "fastcut": "train.recipes.cut:FastCUT",  # a preset of cut: after it
}
DEFAULT_RECIPE = "cycle_gan"


def get_recipe(name: str) -> type:
    """The Recipe subclass registered as `name`."""
    if name not in RECIPES:
        raise ValueError(f"unknown --model {name!r}; expected one of {sorted(RECIPES)}")
    module, cls = RECIPES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def add_recipe_options(parser) -> None:
    """Each recipe's own options, in an argument group named after it (a preset has none of its own)."""
    for name in RECIPES:
        if not get_recipe(name).options_of:
            get_recipe(name).add_options(parser.add_argument_group(f"--model {name}"))


__all__ = ["Recipe", "RunContext", "RECIPES", "DEFAULT_RECIPE", "get_recipe", "add_recipe_options"]
