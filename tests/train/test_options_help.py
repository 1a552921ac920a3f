"""`python -m train --help` gives every option a line of help and its default (and a recipe's
own default where it differs); a value argparse refuses is one short line, not the usage of
every option; --num_threads never asks for more data workers than there are CPUs."""
import argparse
import os
import warnings

import pytest

from helpers import TINY, run_train
from train import options
from train.options.table import recipe_table
from train.recipes import RECIPES, get_recipe


def help_blocks(monkeypatch):
    """{option string: the text of its entry in --help}, without line wrapping."""
    monkeypatch.setenv("COLUMNS", "1000")  # argparse wraps at the terminal width it reads from here
    text = recipe_table().parser.format_help()
    blocks, current = {}, None
    for line in text.splitlines():
        if line.startswith("  -"):
            current = line.split()[0].rstrip(",")
            blocks[current] = line
        elif line.startswith("   ") and current:
            blocks[current] += " " + line.strip()
        else:
            current = None
    return blocks


def options_of_the_table():
    return [a for a in recipe_table().parser._actions if not isinstance(a, argparse._HelpAction)]


def test_every_option_has_help_text():
    missing = [a.option_strings[0] for a in options_of_the_table() if not (a.help or "").strip()]
    assert missing == []


def test_help_shows_each_default_and_the_recipes_own_defaults(monkeypatch):
    blocks = help_blocks(monkeypatch)
    for action in options_of_the_table():
        entry = blocks[action.option_strings[0]]
        if action.nargs == 0:  # a flag: off unless given
            assert "(default: False" not in entry, entry
        elif action.default is None:  # the help says what happens then
            assert "(default: None" not in entry, entry
        else:
            assert f"(default: {action.default}" in entry, entry
        for name in RECIPES:
            preferred = get_recipe(name).option_defaults.get(action.dest, action.default)
            if preferred != action.default:
                assert f"--model {name}: {preferred}" in entry, entry


def parse_failure(capsys, *argv):
    with pytest.raises(SystemExit) as caught:
        options.parse(list(argv))
    assert caught.value.code == 2
    return capsys.readouterr().err.splitlines()


def test_a_typo_in_a_choice_is_one_short_line(capsys):
    lines = parse_failure(capsys, "--model", "cyclegan")
    assert len(lines) <= 2 and lines[0].startswith("usage: "), lines
    assert lines[-1] == (f"python -m train: error: --model: invalid choice 'cyclegan' "
                         f"(choose from {', '.join(RECIPES)})")


def test_a_value_of_the_wrong_type_is_one_short_line(capsys):
    lines = parse_failure(capsys, "--ngf", "many")
    assert len(lines) <= 2 and lines[-1] == "python -m train: error: --ngf: invalid int value: 'many'", lines


def test_num_threads_defaults_to_the_official_4_or_the_cpus_if_fewer(monkeypatch, tmp_path):
    ckdir = ["--checkpoints_dir", str(tmp_path)]
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(64)), raising=False)
    assert options.parse(ckdir).num_threads == 4  # the official train.py's default
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert options.parse(ckdir).num_threads == 1


def test_num_threads_above_the_cpus_is_capped_with_one_note(monkeypatch, tmp_path, capsys):
    import train.run.run as run_module
    cpus = {0}  # this process may run on one CPU: the DataLoader's own suggested maximum is then 1
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: cpus, raising=False)
    started = []
    make_loader = run_module.data.make_loader

    def counting_loader(dataset, batches, num_workers, **kwargs):
        started.append(num_workers)
        assert num_workers <= len(cpus), f"{num_workers} workers asked for"  # before any is started
        return make_loader(dataset, batches, num_workers, **kwargs)

    monkeypatch.setattr(run_module.data, "make_loader", counting_loader)
    args = list(TINY)
    args[args.index("--num_threads") + 1] = "999"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run_train("--name", "w", "--checkpoints_dir", tmp_path, *args, "--max_steps", "2") == 0
    assert started and set(started) == {len(cpus)}
    out = capsys.readouterr().out
    assert out.count("--num_threads 999: ") == 1
    assert not [w for w in caught if "worker processes" in str(w.message)]
