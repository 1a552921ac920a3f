"""What the suites share besides fixtures (tests/conftest.py, tests/train/conftest.py): the
repository root, running `python -m train` in this process, in a child process or under
torchrun, reading a run's metrics, and giving a network's norm parameters random values."""
import json
import os
import subprocess
import sys
import time

import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough for a whole training step in well under a second on 2 CPU cores.
TINY = ["--crop_size", "32", "--load_size", "32", "--ngf", "8", "--ndf", "8", "--n_layers_D", "2",
        "--n_blocks", "1", "--synthetic_size", "8", "--batch_size", "2", "--num_threads", "0",
        "--eval_size", "8", "--no_progress", "--n_epochs", "1", "--n_epochs_decay", "1", "--torch_threads", "1"]
LOSSES = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
# A child training process on a 2-core machine shared with the rest of the suite: generous.
CHILD_TIMEOUT_S = 240


def run_train(*args):
    """python -m train in this process (restoring torch's thread count afterwards)."""
    from train.__main__ import main
    threads = torch.get_num_threads()
    try:
        return main([str(a) for a in args])
    except SystemExit as exit_:  # an option error: argparse exits with status 2
        return exit_.code
    finally:
        torch.set_num_threads(threads)


def train_command(args):
    return [sys.executable, "-m", "train", *map(str, args)]


def spawn_train(args, new_session=False):
    """python -m train in a child process (stdout and stderr together, as text); with
    new_session, in a process group of its own (its DataLoader workers join it), as a terminal
    runs a command."""
    return subprocess.Popen(train_command(args), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=new_session)


def run_train_process(args, timeout=CHILD_TIMEOUT_S):
    return subprocess.run(train_command(args), cwd=REPO, capture_output=True, text=True, timeout=timeout)


def wait_for_step(run_dir, step, proc, timeout=CHILD_TIMEOUT_S):
    """Return once the child `proc` training into run_dir has logged `step`; fail if it dies."""
    path = os.path.join(run_dir, "metrics.jsonl")
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path) and any(r["step"] >= step for r in read_jsonl(path)):
            return
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"training did not reach step {step}")


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


def randomize_norm_parameters_(net):
    """Give every rho / gamma / beta (U-GAT-IT's adaILN, ILN) a random value, so that outputs
    depend on them and a mis-loaded parameter shows up (their initial values are constants)."""
    with torch.no_grad():
        for name, p in net.named_parameters():
            leaf = name.rpartition(".")[2]
            if leaf == "rho":
                p.uniform_(0.0, 1.0)
            elif leaf in ("gamma", "beta") and p.dim() == 4:
                p.uniform_(0.5, 1.5) if leaf == "gamma" else p.uniform_(-0.5, 0.5)
    return net


def make_recipe(opt, device="cpu"):
    """The recipe opt.model names, built as the run builds it (one process)."""
    from train import data
    from train.recipes import RunContext, get_recipe
    from train.run.precision import Precision
    dataset = data.training_dataset(opt)
    steps_per_epoch = len(data.RunSampler(dataset.len_A, dataset.len_B, opt.batch_size))
    device = torch.device(device)
    return get_recipe(opt.model)(opt, RunContext(device, Precision(opt.amp, device), steps_per_epoch))


# --- counting what would make the host wait for a GPU ------------------------------------------

SYNCING = ("item", "__bool__", "__float__", "__int__", "cpu", "tolist", "numpy", "nonzero")


class SyncCounter:
    """Counts the SYNCING calls (and boolean-mask indexing) made while `active`, except on
    the optimisers' step counters, which live on the host even when training on a GPU."""

    def __init__(self, monkeypatch):
        self.active, self.calls, self.optimizers = False, [], []
        for name in SYNCING:
            self._wrap(monkeypatch, name)
        original_getitem = torch.Tensor.__getitem__

        def getitem(tensor, index):
            if self.active and isinstance(index, torch.Tensor) and index.dtype == torch.bool:
                self.calls.append("mask indexing")
            return original_getitem(tensor, index)

        monkeypatch.setattr(torch.Tensor, "__getitem__", getitem)

    def _wrap(self, monkeypatch, name):
        original = getattr(torch.Tensor, name)

        def counted(tensor, *args, **kwargs):
            if self.active and not self._is_step_counter(tensor):
                self.calls.append(name)
            return original(tensor, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counted)

    def watch(self, optimizers):
        self.optimizers = list(optimizers)

    def _is_step_counter(self, tensor):
        # looked up at call time: the first optimiser step creates the counters
        return any(state.get("step") is tensor for o in self.optimizers for state in o.state.values())
