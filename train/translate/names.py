"""The output name of each translated image: `stem.png` beside where the input lies, made
distinct and deterministic when inputs would otherwise share one.

Inputs whose names differ only in extension or case (`a.jpg` / `a.png`, `a.PNG` / `a.png`) would
all become `a.png`; each of them gets its extension in the name instead (`a_jpg.png`,
`a_png.png`), and a number when that still clashes (`a_png.png`, `a_png_2.png`, in the order of
the sorted input paths). Names are compared case-insensitively, so the outputs stay distinct on
a case-insensitive file system too, and a name one input would get plainly is never given to
another."""
import os
from collections import Counter

OUTPUT_EXTENSION = ".png"


def output_names(relative_inputs):
    """[output path relative to --output] for each input path relative to --input, in order."""
    plain = [_plain_name(rel) for rel in relative_inputs]
    plain_count = Counter(_key(name) for name in plain)
    reserved = {_key(name) for name in plain if plain_count[_key(name)] == 1}
    taken, names = set(reserved), []
    for rel, name in zip(relative_inputs, plain):
        if _key(name) not in reserved:
            name = _first_free(_with_extension(rel), taken)
            taken.add(_key(name))
        names.append(name)
    return names


def _plain_name(rel):
    return os.path.normpath(os.path.splitext(rel)[0] + OUTPUT_EXTENSION)


def _with_extension(rel):
    stem, ext = os.path.splitext(rel)
    return os.path.normpath(f"{stem}_{ext.lstrip('.').lower()}{OUTPUT_EXTENSION}")


def _first_free(name, taken):
    """name itself when still free, else the first free one of name_2, name_3, ..."""
    stem = os.path.splitext(name)[0]
    candidate, number = name, 1
    while _key(candidate) in taken:
        number += 1
        candidate = f"{stem}_{number}{OUTPUT_EXTENSION}"
    return candidate


def _key(name):
    return name.casefold()
