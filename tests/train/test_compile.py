"""python -m train --compile trains what the eager run trains.

Tolerance. Both runs start from the same weights and data; inductor only reorders and fuses
float32 arithmetic. A reduction of n terms has a relative rounding error of at most n*u
(u = 2**-24); the longest reductions here are the loss means (3*16*16 = 768 terms) and the
instance norms (16*16), and an error passes through about 20 layers of G and D, so
20 * 768 * u ~ 1e-3 bounds the relative difference of a loss or of a gradient tensor (taken
relative to the tensor's largest entry, since single entries may be near zero).
The learning rate is 1e-12: Adam moves each weight by at most lr per step, far below half an
ulp of any weight above 1e-4 in size, so the second step sees (practically) the same weights
in both runs and its losses obey the same bound. Adam's exp_avg after two steps is
(1 - beta1) * (beta1 * g1 + g2): it compares the gradients, relative to the largest one.
"""
import pytest
import torch

from helpers import LOSSES, run_train, train_records

TINY_COMPILE = ["--crop_size", "16", "--load_size", "16", "--ngf", "4", "--ndf", "4", "--n_layers_D", "1",
                "--n_blocks", "1", "--synthetic_size", "4", "--batch_size", "1", "--num_threads", "0",
                "--eval_size", "8", "--no_progress", "--n_epochs", "1", "--n_epochs_decay", "1",
                "--torch_threads", "1", "--lr", "1e-12", "--pool_size", "1", "--max_steps", "2",
                "--print_freq", "1", "--display_freq", "1000", "--eval_freq", "1000", "--save_latest_freq", "1000"]
RTOL = 1e-3


@pytest.mark.slow
def test_compiled_run_matches_eager_run(tmp_path):
    from torch._dynamo.utils import counters

    assert run_train("--name", "eager", "--checkpoints_dir", tmp_path, *TINY_COMPILE) == 0
    counters.clear()
    assert run_train("--name", "compiled", "--checkpoints_dir", tmp_path, *TINY_COMPILE, "--compile") == 0
    assert counters["stats"]["unique_graphs"] >= 2  # the generators' and discriminators' graphs
    assert not counters["graph_break"], dict(counters["graph_break"])

    eager, comp = train_records(tmp_path / "eager"), train_records(tmp_path / "compiled")
    assert [r["step"] for r in comp] == [1, 2]
    for e, c in zip(eager, comp):
        for k in LOSSES:
            assert c[k] == pytest.approx(e[k], rel=RTOL, abs=1e-6), (e["step"], k)

    load = lambda run: torch.load(tmp_path / run / "latest.pt", weights_only=True)["optimizers"]
    for name in ("G", "D"):
        states_e, states_c = load("eager")[name]["state"], load("compiled")[name]["state"]
        assert states_e.keys() == states_c.keys() and states_e
        # Scale: the largest gradient of the optimiser's networks. A gradient that is zero in
        # exact arithmetic (a conv bias before an instance norm) is a sum of terms of that size
        # which cancel, so its rounding error is relative to them, not to its own value.
        scale = max(s["exp_avg"].abs().max().item() for s in states_e.values())
        for i in states_e:
            m_e, m_c = states_e[i]["exp_avg"], states_c[i]["exp_avg"]
            assert (m_c - m_e).abs().max().item() <= RTOL * scale, (name, i)
