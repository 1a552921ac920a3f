"""Fixtures of the training suites (helpers shared with other suites are in tests/helpers.py)."""
import os

import pytest

from helpers import TINY, run_train


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny finished training run shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("runs")
    code = run_train("--name", "tiny", "--checkpoints_dir", root, *TINY, "--max_steps", "4",
                     "--print_freq", "1", "--display_freq", "2", "--eval_freq", "2", "--save_latest_freq", "2")
    assert code == 0
    return os.path.join(root, "tiny")
