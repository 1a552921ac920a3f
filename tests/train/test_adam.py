"""Recipe.adam (torch's fused Adam where it exists) against the per-parameter Adam loop the
official code runs, and a resume from a checkpoint written by the per-parameter Adam."""
import pytest
import torch
from torch import nn

from train.recipes.base import Recipe, with_implementation_of

STEPS, LR = 20, 2e-4
EPS32 = torch.finfo(torch.float32).eps


def nets(seed):
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8, affine=True), nn.Conv2d(8, 1, 3)) for _ in range(2)]


def run(optimizer, params, grads):
    for step_grads in grads:
        for p, g in zip(params, step_grads):
            p.grad = g.clone()
        optimizer.step()


@pytest.mark.parametrize("weight_decay", [0.0, 1e-4])
def test_fused_adam_matches_the_per_parameter_loop(weight_decay):
    ours, reference = nets(0), nets(0)
    mine = Recipe.adam(ours, LR, (0.5, 0.999), weight_decay)
    assert mine.param_groups[0]["fused"] is True
    theirs = torch.optim.Adam([p for n in reference for p in n.parameters()], lr=LR, betas=(0.5, 0.999),
                              weight_decay=weight_decay, foreach=False)
    params = [p for n in ours for p in n.parameters()]
    generator = torch.Generator().manual_seed(1)
    grads = [[torch.randn(p.shape, generator=generator) for p in params] for _ in range(STEPS)]
    run(mine, params, grads)
    run(theirs, [p for n in reference for p in n.parameters()], grads)
    # One step moves a parameter by lr * m_hat / (sqrt(v_hat) + eps), at most ~16 lr for these betas
    # ((1 - beta1) / sqrt(1 - beta2)); the two implementations round its ~10 float32 operations
    # differently (<= 10 eps32 of it) and may round p - update to neighbouring floats (1 ulp of |p|).
    # Moments see the same gradients, so per-step differences add up at most linearly over STEPS.
    for p, q in zip(params, (p for n in reference for p in n.parameters())):
        bound = STEPS * (16 * LR * 10 * EPS32 + 2 * EPS32 * q.abs().max().item())
        assert (p - q).abs().max().item() <= bound
    assert any(not torch.equal(p, q0) for p, q0 in zip(params, (p for n in nets(0) for p in n.parameters())))


def test_a_checkpoint_of_the_per_parameter_adam_resumes_on_the_fused_one():
    ours, reference = nets(2), nets(2)
    params = [p for n in ours for p in n.parameters()]
    ref_params = [p for n in reference for p in n.parameters()]
    loop = torch.optim.Adam(params, lr=LR, betas=(0.5, 0.999), foreach=False)
    generator = torch.Generator().manual_seed(3)
    grads = [[torch.randn(p.shape, generator=generator) for p in params] for _ in range(4)]
    run(loop, params, grads[:2])
    saved = loop.state_dict()
    fused = Recipe.adam(ours, LR, (0.5, 0.999))
    fused.load_state_dict(with_implementation_of(fused, saved))
    assert fused.param_groups[0]["fused"] is True and fused.param_groups[0]["foreach"] is None
    run(fused, params, grads[2:])
    straight = torch.optim.Adam(ref_params, lr=LR, betas=(0.5, 0.999), foreach=False)
    run(straight, ref_params, grads)
    for p, q in zip(params, ref_params):  # the same tolerance as above, over the 4 steps
        assert (p - q).abs().max().item() <= 4 * (16 * LR * 10 * EPS32 + 2 * EPS32 * q.abs().max().item())
    assert all(int(fused.state[p]["step"]) == 4 for p in params)
