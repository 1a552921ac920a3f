"""The activation codes have one home in Python (cyclegan_ext.activations.Activation) and one
in C++ (csrc/norm_math.h); this checks that the two agree."""
import re
from pathlib import Path

import pytest

from cyclegan_ext.activations import Activation, activation_code

HEADER = Path(__file__).resolve().parents[2] / "csrc" / "norm_math.h"


def test_python_enum_matches_the_cpp_header():
    text = HEADER.read_text()
    body = re.search(r"enum ActivationCode\s*:\s*int64_t\s*\{([^}]*)\}", text).group(1)
    cpp = {name: int(value) for name, value in re.findall(r"kAct(\w+)\s*=\s*(\d+)", body)}
    python = {member.name.replace("_", "").lower(): member.value for member in Activation}
    assert {name.lower(): value for name, value in cpp.items()} == python


@pytest.mark.parametrize("name,member", [(None, Activation.NONE), ("none", Activation.NONE),
                                         ("relu", Activation.RELU), ("leaky_relu", Activation.LEAKY_RELU)])
def test_names_map_to_the_enum(name, member):
    assert activation_code(name) == member
