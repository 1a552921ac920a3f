"""DDP on the CPU: two gloo processes under torchrun."""
import json
import math
import os

import pytest
import torch

from helpers import TINY, run_train, torchrun, train_records

ARGS = [*TINY, "--pool_size", "0", "--print_freq", "1", "--display_freq", "100", "--eval_freq", "100",
        "--save_latest_freq", "100"]


def adam_step_bound(t, beta1, beta2):
    """Largest |m_hat / sqrt(v_hat)| Adam's step t can take, whatever the gradients g_1..g_t.

    m_hat = sum_i a_i g_i, v_hat = sum_i b_i g_i^2 with a_i = (1-beta1) beta1^(t-i) / (1-beta1^t),
    b_i = (1-beta2) beta2^(t-i) / (1-beta2^t). Cauchy-Schwarz on sum_i (a_i/sqrt(b_i)) (sqrt(b_i) g_i):
    |m_hat| <= sqrt(sum_i a_i^2 / b_i) * sqrt(v_hat). So one step moves a weight by at most
    lr * sqrt(sum_i a_i^2 / b_i) (eps only shrinks it; the linear lr policy never exceeds lr).
    """
    total = 0.0
    for i in range(1, t + 1):
        a = (1 - beta1) * beta1 ** (t - i) / (1 - beta1 ** t)
        b = (1 - beta2) * beta2 ** (t - i) / (1 - beta2 ** t)
        total += a * a / b
    return math.sqrt(total)


def first_moments(checkpoint_path, name):
    """Adam's exp_avg of every parameter of optimizer `name`, as one vector. After the first
    step exp_avg = (1 - beta1) * gradient: the checkpoint of step 1 holds the step-1 gradients."""
    state = torch.load(checkpoint_path, weights_only=True)["optimizers"][name]["state"]
    return torch.cat([state[k]["exp_avg"].flatten() for k in sorted(state)])


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    # batch 1 on each of 2 ranks sees the same samples as batch 2 in one process (same sampler
    # positions); DDP averages the gradients, so they equal the single-process batch-2 gradients.
    ddp_args = list(ARGS)
    ddp_args[ddp_args.index("--batch_size") + 1] = "1"
    torchrun("--name", "ddp", "--checkpoints_dir", tmp_path, *ddp_args, "--max_steps", "1")
    run = tmp_path / "ddp"
    ddp_moments = {name: first_moments(run / "latest.pt", name) for name in ("G", "D")}
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    # resume under DDP continues the same data order
    torchrun("--name", "ddp", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "3")
    assert [r["step"] for r in train_records(run)] == [1, 2, 3]          # rank 0 logs, once per step
    assert sorted(os.listdir(run)) == sorted(["eval.png", "index.html", "latest.pt", "losses.png",
                                              "metrics.jsonl", "opt.json", "samples"])

    single = tmp_path / "single"
    assert run_train("--name", "single", "--checkpoints_dir", tmp_path, *ARGS, "--max_steps", "1") == 0
    for name, ddp_moment in ddp_moments.items():
        single_moment = first_moments(single / "latest.pt", name)
        # Same weights, same images: the two gradients differ only by the order of float32 sums
        # (per-rank sums then an all-reduce, against one batch-2 sum). Such a sum of n terms is
        # off by about sqrt(n) * 6e-8 relative (n <= 1e5 here: ~2e-5), compounded over ~20 layers
        # of backprop: well under 1e-3 of the gradient's norm, so 1e-2 has a factor 10 to spare.
        # Without the averaging rank 0 would keep the gradient of its own image, off by
        # |g_0 - g_1| / |g_0 + g_1|: of order 1 for two different images.
        difference = (ddp_moment - single_moment).norm() / single_moment.norm()
        assert difference < 1e-2, (name, difference.item())

    assert run_train("--name", "single", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "3") == 0
    # Later steps cannot be compared as tightly: Adam divides by sqrt(v), so a gradient component
    # near zero, changed by rounding, can move its weight by up to lr either way. What the maths
    # guarantees: each run moves a weight by at most lr * adam_step_bound(t) at step t, so the two
    # runs' weights differ by at most 2 * lr * sum_t adam_step_bound(t) (both started equal).
    with open(single / "opt.json") as f:
        opt = json.load(f)
    bound = 2 * opt["lr"] * sum(adam_step_bound(t, opt["beta1"], 0.999) for t in (1, 2, 3))
    wd = torch.load(run / "latest.pt", weights_only=True)["generators"]["AtoB"]["state_dict"]
    ws = torch.load(single / "latest.pt", weights_only=True)["generators"]["AtoB"]["state_dict"]
    for k in ws:
        assert (wd[k] - ws[k]).abs().max() <= bound, k
