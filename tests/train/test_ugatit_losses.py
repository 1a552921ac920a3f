"""train.recipes.ugatit.losses / .optim against U-GAT-IT's formulas, written out again here
and in tests/official/ugatit.py (its UGATIT.train transcribed), never produced by the code
under test."""
import copy
import math

import pytest
import torch
from torch import nn

from models.ugatit_discriminator import UGATITDiscriminator
from train.recipes.ugatit.losses import LossWeights, discriminator_losses, generator_losses, translate_all
from train.recipes import Recipe
from train.recipes.ugatit.optim import BETA1, BETA2, clip_rho_, lr_multiplier, make_step_scheduler
from official.ugatit import OfficialIteration, OfficialUGATITDiscriminator, RhoClipper


def mean_square_distance(x, target):
    return sum(float((v - target) ** 2) for v in x.flatten().tolist()) / x.numel()


def bce_with_logits(x, target):
    # -[t log s(x) + (1 - t) log(1 - s(x))], s the logistic function
    total = 0.0
    for v in x.flatten().tolist():
        s = 1.0 / (1.0 + math.exp(-v))
        total += -(target * math.log(s) + (1 - target) * math.log(1 - s))
    return total / x.numel()


def mean_abs_distance(x, y):
    return sum(abs(a - b) for a, b in zip(x.flatten().tolist(), y.flatten().tolist())) / x.numel()


class FixedOutputs:
    """A stand-in network: returns a fixed (logit, cam_logit, heatmap) for each input tensor."""

    def __init__(self, table):
        self.table = table

    def __call__(self, x):
        return self.table[id(x)]


def random_outputs(patch=(2, 1, 3, 3)):
    return torch.randn(patch, dtype=torch.float64), torch.randn(2, 2, dtype=torch.float64), None


# Float64 sums of at most a few hundred terms in a different order: 1e-12 relative is ample.
TOL = dict(rtol=1e-12, atol=1e-12)


def test_discriminator_losses_match_the_formulas():
    real_A, real_B, fake_A2B, fake_B2A = (torch.randn(2, 3, 8, 8, dtype=torch.float64) for _ in range(4))
    outs = {name: {id(real_A if name[1] == "A" else real_B): random_outputs(),
                   id(fake_B2A if name[1] == "A" else fake_A2B): random_outputs()}
            for name in ("GA", "LA", "GB", "LB")}
    nets = {name: FixedOutputs(table) for name, table in outs.items()}
    adv = 1.7
    losses = discriminator_losses(nets, real_A, real_B, fake_A2B, fake_B2A, adv)

    expected = {}
    for name in ("GA", "LA", "GB", "LB"):
        real, fake = (real_A, fake_B2A) if name.endswith("A") else (real_B, fake_A2B)
        (r_logit, r_cam, _), (f_logit, f_cam, _) = outs[name][id(real)], outs[name][id(fake)]
        expected[f"D_ad_loss_{name}"] = mean_square_distance(r_logit, 1) + mean_square_distance(f_logit, 0)
        expected[f"D_ad_cam_loss_{name}"] = mean_square_distance(r_cam, 1) + mean_square_distance(f_cam, 0)
    for d in "AB":
        expected[f"D_loss_{d}"] = adv * (expected[f"D_ad_loss_G{d}"] + expected[f"D_ad_cam_loss_G{d}"]
                                         + expected[f"D_ad_loss_L{d}"] + expected[f"D_ad_cam_loss_L{d}"])
    expected["Discriminator_loss"] = expected["D_loss_A"] + expected["D_loss_B"]
    assert set(losses) == set(expected)
    for key, value in expected.items():
        assert losses[key].item() == pytest.approx(value, rel=1e-12), key


def test_generator_losses_match_the_formulas():
    t = lambda *shape: torch.randn(*shape, dtype=torch.float64)  # noqa: E731
    real_A, real_B = t(2, 3, 8, 8), t(2, 3, 8, 8)
    outputs = {k: t(2, 3, 8, 8) for k in ("fake_A2B", "fake_B2A", "fake_A2B2A", "fake_B2A2B", "fake_A2A", "fake_B2B")}
    outputs.update({k: t(2, 2) for k in ("fake_A2B_cam_logit", "fake_B2A_cam_logit", "fake_A2A_cam_logit",
                                         "fake_B2B_cam_logit")})
    outs = {name: {id(outputs["fake_B2A"] if name[1] == "A" else outputs["fake_A2B"]): random_outputs()}
            for name in ("GA", "LA", "GB", "LB")}
    nets = {name: FixedOutputs(table) for name, table in outs.items()}
    w = LossWeights(adv=1.5, cycle=7.0, identity=3.0, cam=500.0)
    losses = generator_losses(nets, real_A, real_B, outputs, w)

    e = {}
    for name in ("GA", "LA", "GB", "LB"):
        logit, cam, _ = next(iter(outs[name].values()))
        e[f"G_ad_loss_{name}"] = mean_square_distance(logit, 1)
        e[f"G_ad_cam_loss_{name}"] = mean_square_distance(cam, 1)
    e["G_recon_loss_A"] = mean_abs_distance(outputs["fake_A2B2A"], real_A)
    e["G_recon_loss_B"] = mean_abs_distance(outputs["fake_B2A2B"], real_B)
    e["G_identity_loss_A"] = mean_abs_distance(outputs["fake_A2A"], real_A)
    e["G_identity_loss_B"] = mean_abs_distance(outputs["fake_B2B"], real_B)
    e["G_cam_loss_A"] = (bce_with_logits(outputs["fake_B2A_cam_logit"], 1)
                         + bce_with_logits(outputs["fake_A2A_cam_logit"], 0))
    e["G_cam_loss_B"] = (bce_with_logits(outputs["fake_A2B_cam_logit"], 1)
                         + bce_with_logits(outputs["fake_B2B_cam_logit"], 0))
    for d in "AB":
        e[f"G_loss_{d}"] = (w.adv * (e[f"G_ad_loss_G{d}"] + e[f"G_ad_cam_loss_G{d}"] + e[f"G_ad_loss_L{d}"]
                                     + e[f"G_ad_cam_loss_L{d}"])
                            + w.cycle * e[f"G_recon_loss_{d}"] + w.identity * e[f"G_identity_loss_{d}"]
                            + w.cam * e[f"G_cam_loss_{d}"])
    e["Generator_loss"] = e["G_loss_A"] + e["G_loss_B"]
    assert set(losses) == set(e)
    for key, value in e.items():
        # float64 throughout; log(1 - s) loses ~1e-16 / (1 - s) relative for logits of a few units
        assert losses[key].item() == pytest.approx(value, rel=1e-12), key


def test_default_weights_are_ugatits():
    assert LossWeights() == LossWeights(adv=1.0, cycle=10.0, identity=10.0, cam=1000.0)


class TinyGenerator(nn.Module):
    """A stand-in generator with U-GAT-IT's (image, cam_logit, heatmap) outputs and a `rho`."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.mix = nn.Module()
        self.mix.rho = nn.Parameter(torch.tensor([0.0, 1.0, 0.0, 1.0]).reshape(1, 4, 1, 1))
        self.cam = nn.Linear(4, 2)
        self.out = nn.Conv2d(4, 3, 3, padding=1)

    def forward(self, x):
        h = self.conv(x)
        h = self.mix.rho * h + (1 - self.mix.rho) * h.mean(dim=(1, 2, 3), keepdim=True)
        cam_logit = self.cam(h.mean(dim=(2, 3)))
        return torch.tanh(self.out(torch.relu(h))), cam_logit, h.sum(1, keepdim=True)


def our_iteration(gens, discs, opt_G, opt_D, real_A, real_B, weights):
    """The order train.recipes.ugatit uses: translate once, D step on detached fakes, then the
    G step with the updated discriminators, then rho clipping."""
    genA2B, genB2A = gens
    outputs = translate_all(genA2B, genB2A, real_A, real_B)
    d = discriminator_losses(discs, real_A, real_B, outputs["fake_A2B"].detach(), outputs["fake_B2A"].detach(),
                             weights.adv)
    opt_D.zero_grad()
    d["Discriminator_loss"].backward()
    opt_D.step()
    for net in discs.values():
        net.requires_grad_(False)
    g = generator_losses(discs, real_A, real_B, outputs, weights)
    for net in discs.values():
        net.requires_grad_(True)
    opt_G.zero_grad()
    g["Generator_loss"].backward()
    opt_G.step()
    for gen in gens:
        clip_rho_(gen)
    return {k: v.item() for k, v in {**d, **g}.items()}


def test_two_iterations_match_ugatits_training_loop():
    torch.manual_seed(0)
    gens = [TinyGenerator().double() for _ in range(2)]
    n_layers = {"GA": 4, "GB": 4, "LA": 3, "LB": 3}  # global / local, small enough for 16 px
    discs = {name: OfficialUGATITDiscriminator(3, ndf=4, n_layers=n).double() for name, n in n_layers.items()}
    ours_discs = {name: UGATITDiscriminator(3, ndf=4, n_layers=n).double() for name, n in n_layers.items()}
    for name, net in discs.items():
        ours_discs[name].load_state_dict(net.state_dict(), strict=True)
    ours_gens = copy.deepcopy(gens)
    lr = 0.05  # large, so one Adam step moves rho (initially 0 / 1) outside [0, 1] and clipping acts
    official = OfficialIteration(*gens, discs["GA"], discs["GB"], discs["LA"], discs["LB"], lr=lr)
    opt_G = Recipe.adam(ours_gens, lr, (BETA1, BETA2), 1e-4)
    opt_D = Recipe.adam([ours_discs[n] for n in ("GA", "GB", "LA", "LB")], lr, (BETA1, BETA2), 1e-4)
    weights = LossWeights()
    for _ in range(2):
        real_A, real_B = torch.rand(2, 2, 3, 16, 16, dtype=torch.float64) * 2 - 1
        expected = official(real_A, real_B)
        got = our_iteration(ours_gens, ours_discs, opt_G, opt_D, real_A, real_B, weights)
        assert set(expected) == set(got)
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-10, abs=1e-12), key
    # Adam divides by sqrt(v) + 1e-8, which turns float64 rounding of a gradient (1e-16
    # relative) into at most ~lr * 1e-8 absolute in a parameter; 1e-9 leaves room.
    for ours, theirs in zip(ours_gens, gens):
        for (name, p), q in zip(ours.named_parameters(), theirs.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9, msg=name)
    for name, net in discs.items():
        for key, value in net.state_dict().items():
            torch.testing.assert_close(ours_discs[name].state_dict()[key], value, rtol=1e-9, atol=1e-9, msg=key)
    rho = torch.cat([g.mix.rho.flatten() for g in ours_gens])
    assert ((rho == 0) | (rho == 1)).any() and rho.min() >= 0 and rho.max() <= 1


def test_clip_rho_matches_ugatits_rho_clipper():
    from cyclegan_ext import reference
    net = nn.Sequential(reference.AdaLIN(4), nn.Conv2d(4, 4, 1), nn.Sequential(reference.LIN(4))).double()
    with torch.no_grad():
        net[0].rho.copy_(torch.tensor([-0.5, 0.2, 1.0, 1.7], dtype=torch.float64).reshape(1, 4, 1, 1))
        net[2][0].rho.copy_(torch.tensor([2.0, -1e-3, 0.0, 0.5]).reshape(1, 4, 1, 1))
    theirs = copy.deepcopy(net)
    theirs.apply(RhoClipper(0, 1))
    clip_rho_(net)
    assert net[0].rho.flatten().tolist() == [0.0, 0.2, 1.0, 1.0]
    for p, q in zip(net.parameters(), theirs.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("iterations", [10, 11])
def test_lr_falls_like_ugatits(iterations):
    """U-GAT-IT: at the start of step s (1-based) above iteration // 2 it does
    lr -= lr0 / (iteration // 2); replay that subtraction and compare every step. (With an
    odd count its last step would run at a negative lr; ours stops at 0.)"""
    lr0, half = 1e-4, iterations // 2
    opt = torch.optim.Adam([nn.Parameter(torch.zeros(1))], lr=lr0)
    sched = make_step_scheduler(opt, decay_start=half, decay_steps=half)
    theirs = lr0
    for step in range(1, iterations + 1):
        if step > half:
            theirs -= lr0 / half
        assert opt.param_groups[0]["lr"] == pytest.approx(max(theirs, 0.0), abs=1e-15), step
        opt.step()
        sched.step()
    assert lr_multiplier(0, 0, 0) == 1.0  # no decay phase: constant lr
