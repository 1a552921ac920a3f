"""FusedAdaLIN / FusedLIN against U-GAT-IT's `adaILN` / `ILN`.

The two modules below restate the normalization layers of U-GAT-IT
(github.com/znxlwm/UGATIT-pytorch, networks.py, MIT licence) with the same parameter
names, shapes, initial values and formulas: torch.mean / torch.var (unbiased) over dims
[2, 3] (instance) and [1, 2, 3] (layer), rho (1, C, 1, 1) expanded over the batch, gamma and
beta (N, C) unsqueezed to (N, C, 1, 1) for adaILN, (1, C, 1, 1) parameters for ILN. They are
written here, not imported from cyclegan_ext.reference, so that they judge it too.
"""
import pytest
import torch
from torch import nn

from cyclegan_ext import FusedAdaLIN, FusedLIN, reference

from official.ugatit import ILN, adaILN


class RhoClipper:
    """U-GAT-IT applies this to every module after each optimizer step (rho in [0, 1])."""

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def __call__(self, module):
        if hasattr(module, "rho"):
            module.rho.data = module.rho.data.clamp(self.lo, self.hi)


TOL32 = 2e-5  # of each tensor's scale: float32 against float32, see test_parity.py
TOL64 = 1e-10


def _randomize(module):
    with torch.no_grad():
        for name, p in module.named_parameters():
            if name == "rho":
                p.copy_(torch.rand_like(p))
            else:
                p.copy_(torch.randn_like(p) + (1.0 if name == "gamma" else 0.0))


def _grads(module, inputs, grad_y):
    inputs = [t.detach().clone().requires_grad_() for t in inputs]
    module.zero_grad(set_to_none=True)
    y = module(*inputs)
    y.backward(grad_y)
    return y.detach(), [t.grad for t in inputs], {n: p.grad for n, p in module.named_parameters()}


def assert_close_scaled(got, want, tol, what=""):
    """max |got - want| <= tol * max |want|: float32 sums of ~1e3..1e4 terms (the gradients of
    rho, gamma, beta) are accurate relative to their scale, not element by element."""
    assert got.shape == want.shape and got.dtype == want.dtype, what
    scale = want.abs().max().item()
    err = (got - want).abs().max().item()
    assert err <= tol * max(scale, 1e-30), f"{what}: max error {err:.3e} > {tol:g} * scale {scale:.3e}"


def _assert_same(ours, theirs, inputs, tol):
    grad_y = torch.randn(inputs[0].shape, dtype=inputs[0].dtype, device=inputs[0].device)
    y1, gi1, gp1 = _grads(ours, inputs, grad_y)
    y2, gi2, gp2 = _grads(theirs, inputs, grad_y)
    assert_close_scaled(y1, y2, tol, "output")
    for i, (a, b) in enumerate(zip(gi1, gi2)):
        assert_close_scaled(a, b, tol, f"grad of input {i}")
    assert gp1.keys() == gp2.keys()
    for k in gp1:
        assert gp2[k].abs().max() > 0
        assert_close_scaled(gp1[k], gp2[k], tol, f"grad of {k}")


def test_fresh_state_dicts_are_identical():
    for ours, theirs in ((FusedAdaLIN(7), adaILN(7)), (FusedLIN(7), ILN(7))):
        sd1, sd2 = ours.state_dict(), theirs.state_dict()
        assert list(sd1) == list(sd2)
        for k in sd1:
            assert sd1[k].shape == sd2[k].shape == (1, 7, 1, 1)
            assert torch.equal(sd1[k], sd2[k]), k
    assert torch.equal(FusedAdaLIN(3).rho, torch.full((1, 3, 1, 1), 0.9))


@pytest.mark.parametrize("shape", [(2, 16, 8, 8), (4, 256, 16, 16), (3, 5, 7, 11)],
                         ids=["2x16x8x8", "4x256x16x16", "3x5x7x11"])
@pytest.mark.parametrize("direction", ["theirs_into_ours", "ours_into_theirs"])
def test_adalin_matches_adailn(device, shape, direction):
    n, c = shape[:2]
    ours, theirs = FusedAdaLIN(c).to(device), adaILN(c).to(device)
    src, dst = (theirs, ours) if direction == "theirs_into_ours" else (ours, theirs)
    _randomize(src)
    dst.load_state_dict(src.state_dict(), strict=True)
    x = torch.randn(shape, device=device) * 1.5 + 0.3
    gamma = torch.randn(n, c, device=device) + 1
    beta = torch.randn(n, c, device=device)
    _assert_same(ours, theirs, [x, gamma, beta], TOL32)


@pytest.mark.parametrize("shape", [(2, 16, 8, 8), (1, 64, 32, 32), (3, 5, 7, 11)],
                         ids=["2x16x8x8", "1x64x32x32", "3x5x7x11"])
@pytest.mark.parametrize("direction", ["theirs_into_ours", "ours_into_theirs"])
def test_lin_matches_iln(device, shape, direction):
    c = shape[1]
    ours, theirs = FusedLIN(c).to(device), ILN(c).to(device)
    src, dst = (theirs, ours) if direction == "theirs_into_ours" else (ours, theirs)
    _randomize(src)
    dst.load_state_dict(src.state_dict(), strict=True)
    _assert_same(ours, theirs, [torch.randn(shape, device=device) * 2 - 1], TOL32)


def test_default_initialisation_matches(device):
    """Fresh layers (rho 0.9 / 0.0, gamma 1, beta 0) give U-GAT-IT's outputs without loading."""
    x = torch.randn(2, 8, 6, 6, device=device)
    gamma, beta = torch.randn(2, 8, device=device), torch.randn(2, 8, device=device)
    _assert_same(FusedAdaLIN(8).to(device), adaILN(8).to(device), [x, gamma, beta], TOL32)
    _assert_same(FusedLIN(8).to(device), ILN(8).to(device), [x], TOL32)


@pytest.mark.parametrize("eps", [1e-3, 1e-8])
def test_float64_and_eps(eps):
    ours, theirs = FusedAdaLIN(6, eps=eps).double(), adaILN(6, eps=eps).double()
    _randomize(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(3, 6, 5, 4, dtype=torch.float64)
    gamma, beta = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    _assert_same(ours, theirs, [x, gamma, beta], TOL64)
    lin, iln = FusedLIN(6, eps=eps).double(), ILN(6, eps=eps).double()
    _randomize(iln)
    lin.load_state_dict(iln.state_dict(), strict=True)
    _assert_same(lin, iln, [x], TOL64)


@pytest.mark.parametrize("rho_value", [0.0, 1.0])
def test_rho_at_the_clip_bounds(rho_value):
    ours, theirs = FusedAdaLIN(4).double(), adaILN(4).double()
    with torch.no_grad():
        theirs.rho.fill_(rho_value)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 4, 6, 6, dtype=torch.float64)
    g, b = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    _assert_same(ours, theirs, [x, g, b], TOL64)


def test_training_steps_with_rho_clipper_stay_in_lockstep():
    """U-GAT-IT's loop: an optimizer step, then RhoClipper(0, 1) on every module. (SGD, not
    U-GAT-IT's Adam: Adam's first step is lr * sign(grad), which turns float32 noise in a
    near-zero gradient into a full step.)"""
    def block(norm_cls, lin_cls):
        torch.manual_seed(1)
        return nn.ModuleDict({"conv": nn.Conv2d(3, 8, 3, padding=1), "norm": norm_cls(8),
                              "fc": nn.Linear(4, 16), "lin": lin_cls(8)})

    ours, theirs = block(FusedAdaLIN, FusedLIN), block(adaILN, ILN)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    opts = [torch.optim.SGD(m.parameters(), lr=0.5, momentum=0.9) for m in (ours, theirs)]
    clip = RhoClipper(0, 1)
    for step in range(4):
        x, z = torch.randn(2, 3, 8, 8), torch.randn(2, 4)
        for m, opt in zip((ours, theirs), opts):
            opt.zero_grad()
            gb = m["fc"](z)
            h = torch.relu(m["norm"](m["conv"](x), gb[:, :8], gb[:, 8:]))
            loss = (m["lin"](h) - 0.5).pow(2).mean()
            loss.backward()
            opt.step()
            m.apply(clip)
        for (k, p1), p2 in zip(ours.state_dict().items(), theirs.state_dict().values()):
            torch.testing.assert_close(p1, p2, rtol=1e-4, atol=1e-5, msg=lambda m, k=k: f"step {step}: {k}: {m}")
    assert (ours["norm"].rho <= 1).all() and not torch.equal(ours["norm"].rho, torch.full_like(ours["norm"].rho, 0.9))


@pytest.mark.parametrize("activation", ["relu", "leaky_relu"])
def test_fused_activation_equals_adailn_then_activation(activation):
    ours, theirs = FusedAdaLIN(5, activation=activation, negative_slope=0.2), adaILN(5)
    _randomize(theirs)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    act = nn.ReLU() if activation == "relu" else nn.LeakyReLU(0.2)
    wrapped = _Then(theirs, act)
    x = torch.randn(2, 5, 6, 6)
    _assert_same(ours, wrapped, [x, torch.randn(2, 5), torch.randn(2, 5)], TOL32)


class _Then(nn.Module):
    def __init__(self, norm, act):
        super().__init__()
        self.norm, self.act = norm, act

    def forward(self, *args):
        return self.act(self.norm(*args))

    def named_parameters(self, *args, **kwargs):  # same names as the bare norm, for comparison
        return self.norm.named_parameters(*args, **kwargs)


def test_reference_twins_match_ugatit_too():
    """cyclegan_ext.reference (the benchmarks' eager baseline) is U-GAT-IT's math as well."""
    for ours, theirs, args in (
        (reference.AdaLIN(6).double(), adaILN(6).double(),
         lambda: [torch.randn(2, 6, 5, 5, dtype=torch.float64), torch.randn(2, 6, dtype=torch.float64),
                  torch.randn(2, 6, dtype=torch.float64)]),
        (reference.LIN(6).double(), ILN(6).double(), lambda: [torch.randn(2, 6, 5, 5, dtype=torch.float64)]),
    ):
        _randomize(theirs)
        ours.load_state_dict(theirs.state_dict(), strict=True)
        _assert_same(ours, theirs, args(), TOL64)
