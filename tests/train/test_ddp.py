"""DDP on the CPU: two gloo processes under torchrun."""
import os
import subprocess
import sys

import pytest
import torch

from conftest import TINY, run_train, train_records

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARGS = [*TINY, "--pool_size", "0", "--print_freq", "1", "--display_freq", "100", "--eval_freq", "100",
        "--save_latest_freq", "100"]


def torchrun(*args, timeout=300):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "train", *map(str, args)]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.mark.slow
def test_ddp_two_gloo_processes(tmp_path):
    # batch 1 on each of 2 ranks sees the same samples as batch 2 in one process (same sampler
    # positions); gradients are averaged, so the losses match a single-process batch-2 run.
    ddp_args = list(ARGS)
    ddp_args[ddp_args.index("--batch_size") + 1] = "1"
    torchrun("--name", "ddp", "--checkpoints_dir", tmp_path, *ddp_args, "--max_steps", "2")
    run = tmp_path / "ddp"
    recs = train_records(run)
    assert [r["step"] for r in recs] == [1, 2]          # rank 0 logs, once per step
    state = torch.load(run / "latest.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    assert sorted(os.listdir(run)) == sorted(["eval.png", "index.html", "latest.pt", "losses.png",
                                              "metrics.jsonl", "opt.json", "samples"])
    # resume under DDP continues the same data order
    torchrun("--name", "ddp", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "3")
    assert [r["step"] for r in train_records(run)] == [1, 2, 3]

    assert run_train("--name", "single", "--checkpoints_dir", tmp_path, *ARGS, "--max_steps", "3") == 0
    # rank 0 logs the losses of its half of the batch, so compare the trained weights instead.
    # Without gradient averaging rank 0's weights would differ by ~lr per step (2e-4).
    wd = torch.load(run / "latest.pt", weights_only=True)["generators"]["AtoB"]["state_dict"]
    ws = torch.load(tmp_path / "single" / "latest.pt", weights_only=True)["generators"]["AtoB"]["state_dict"]
    for k in ws:
        assert torch.allclose(wd[k], ws[k], rtol=1e-3, atol=1e-5), k
