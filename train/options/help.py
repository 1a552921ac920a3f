"""How `python -m train` talks about its options: --help gives each option's default (and the
recipes' own defaults where they differ), and a value argparse refuses is one short error line
after a one-line usage hint, not the usage of every option."""
import argparse
import re

_ARGUMENT = re.compile(r"argument (?P<flags>[^:]+): (?P<problem>.*)", re.DOTALL)
_INVALID_CHOICE = re.compile(r"invalid choice: (?P<value>.*) \(choose from (?P<choices>.*)\)", re.DOTALL)


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends "(default: X)" to an option's help unless the help already says its default,
    the default is None (the help says what happens then) or the option is a flag."""

    def _get_help_string(self, action):
        text = action.help or ""
        if ("(default" in text or action.default in (None, argparse.SUPPRESS)
                or action.nargs == 0 or not action.option_strings):
            return text
        return text + " (default: %(default)s)"


class ShortErrorParser(argparse.ArgumentParser):
    """argparse's errors as `PROG: error: --option: problem` after a one-line usage hint."""

    def error(self, message):
        self.exit(2, f"usage: {self.prog} [options]  ({self.prog} --help lists them)\n"
                     f"{self.prog}: error: {short_message(message)}\n")


def short_message(message: str) -> str:
    """argparse's "argument --model: invalid choice: 'x' (choose from 'a', 'b')" as
    "--model: invalid choice 'x' (choose from a, b)"; other messages keep their words."""
    argument = _ARGUMENT.fullmatch(message)
    if argument is None:
        return message
    flag, problem = argument["flags"].split("/")[0], argument["problem"]
    choice = _INVALID_CHOICE.fullmatch(problem)
    if choice is not None:
        problem = f"invalid choice {choice['value']} (choose from {choice['choices'].replace(chr(39), '')})"
    return f"{flag}: {problem}"


def note_recipe_defaults(parser, recipes):
    """Where a recipe prefers another default (Recipe.option_defaults), the help says so:
    "(default: 0.0002; --model ugatit: 0.0001)"."""
    for action in parser._actions:
        overrides = [(name, recipe.option_defaults[action.dest]) for name, recipe in recipes.items()
                     if action.dest in recipe.option_defaults
                     and recipe.option_defaults[action.dest] != action.default]
        if overrides:
            shown = "; ".join(f"--model {name}: {_escaped(value)}" for name, value in overrides)
            default = "" if action.default is None else "default: %(default)s; "
            action.help = f"{action.help or ''} ({default}{shown})"


def _escaped(value) -> str:
    """A value inside an argparse help string (which is %-formatted)."""
    return str(value).replace("%", "%%")
