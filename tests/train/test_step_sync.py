"""A training step never makes the host wait for the device: the losses stay on the device and
are read only on logging steps. On the CPU the device is the host, so the test counts the
Python calls that would synchronise on a GPU (.item(), bool(tensor), .cpu(), .tolist(),
.numpy(), float()/int(), .nonzero(), boolean-mask indexing); on CUDA it also asks torch to
raise on any synchronisation inside the step."""
import pytest
import torch

from conftest import LOSSES, TINY, run_train, train_records

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


def test_no_synchronisation_inside_train_step_and_losses_read_only_when_logged(tmp_path, monkeypatch):
    from train.recipes.cycle_gan import CycleGAN
    from train.run import Run

    counter = SyncCounter(monkeypatch)
    per_step = []  # (calls inside train_step, calls in the run's bookkeeping after it)
    original_step, original_after = CycleGAN.train_step, Run.after_step

    def train_step(recipe, real_A, real_B):
        counter.watch(recipe.optimizers.values())
        counter.calls, counter.active = [], True
        try:
            losses = original_step(recipe, real_A, real_B)
        finally:
            counter.active = False
        per_step.append([list(counter.calls)])
        assert all(not v.requires_grad and v.dim() == 0 for v in losses.values())
        return losses

    def after_step(run, losses):
        counter.watch(run.recipe.optimizers.values())
        counter.calls, counter.active = [], True
        try:
            original_after(run, losses)
        finally:
            counter.active = False
        per_step[-1].append(list(counter.calls))

    monkeypatch.setattr(CycleGAN, "train_step", train_step)
    monkeypatch.setattr(Run, "after_step", after_step)
    # pool_size 1: the pool is full from the second step on, so its random swaps run too.
    assert run_train("--name", "sync", "--checkpoints_dir", tmp_path, *TINY, "--max_steps", "7", "--pool_size", "1",
                     "--print_freq", "3", "--display_freq", "1000", "--eval_freq", "1000",
                     "--save_latest_freq", "1000") == 0
    assert len(per_step) == 7
    logged = {1, 3, 6}  # step 1 and every --print_freq
    for step, (inside, after) in enumerate(per_step, start=1):
        assert inside == [], (step, inside)
        # A logging step reads each loss once (.item()); every other step reads nothing.
        assert after == (["item"] * len(LOSSES) if step in logged else []), (step, after)
    assert [r["step"] for r in train_records(tmp_path / "sync")] == sorted(logged)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_train_step_raises_on_no_synchronisation():
    from train.options import parse
    from train.precision import Precision
    from train.recipes.cycle_gan import CycleGAN

    device = torch.device("cuda")
    opt = parse(["--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--crop_size", "32", "--pool_size", "1"])
    recipe = CycleGAN(opt, device, Precision("none", device))
    a, b = (torch.rand(2, 3, 32, 32, device=device) * 2 - 1 for _ in range(2))
    recipe.train_step(a, b)  # the first step creates the optimiser states
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            recipe.train_step(a, b)
    finally:
        torch.cuda.set_sync_debug_mode("default")
