import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Small enough for a whole training step in well under a second on 2 CPU cores.
TINY = ["--crop_size", "32", "--load_size", "32", "--ngf", "8", "--ndf", "8", "--n_layers_D", "2",
        "--n_blocks", "1", "--synthetic_size", "8", "--batch_size", "2", "--num_threads", "0",
        "--eval_size", "8", "--no_progress", "--n_epochs", "1", "--n_epochs_decay", "1", "--torch_threads", "1"]


def run_train(*args):
    """python -m train in this process (restoring torch's thread count afterwards)."""
    import torch
    from train.__main__ import main
    threads = torch.get_num_threads()
    try:
        return main([str(a) for a in args])
    except SystemExit as exit_:  # an option error: argparse exits with status 2
        return exit_.code
    finally:
        torch.set_num_threads(threads)


def torchrun(*args, timeout=300):
    """python -m train in 2 real processes under torchrun (gloo on the CPU)."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def train_records(run_dir):
    return [r for r in read_jsonl(os.path.join(run_dir, "metrics.jsonl")) if r["type"] == "train"]


LOSSES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """One tiny finished training run shared by the tests that only read its outputs."""
    root = tmp_path_factory.mktemp("runs")
    code = run_train("--name", "tiny", "--checkpoints_dir", root, *TINY, "--max_steps", "4",
                     "--print_freq", "1", "--display_freq", "2", "--eval_freq", "2", "--save_latest_freq", "2")
    assert code == 0
    return os.path.join(root, "tiny")
