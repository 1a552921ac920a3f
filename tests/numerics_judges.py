"""Judges of the fused norm op on hostile data, shared by tests/ops and tests/cuda: NaN
containment (which outputs must be non-finite, and are the finite ones right) and extreme
magnitudes (float32 statistics that overflow or underflow).

The references are float64 pure PyTorch on the CPU, independent of the kernels:
cyclegan_ext.reference.adalin (the U-GAT-IT formula; rho None is rho = ones there) and
torch.nn.functional.instance_norm.

Tolerances are absolute error bounds built from float32's unit roundoff U = 2^-24 (the float64
reference is exact at that scale, so the error is the kernel's own). A k-term sum whose terms
add up to T in absolute value is off by at most (k - 1) U T in the worst case, a bound real
summations do not come near; for rounding errors that behave independently (random data, as
here) Higham & Mary (SIAM J. Sci. Comput. 41(5), 2019) prove lambda sqrt(k) U T, except with
probability at most 2k exp(-lambda^2 / 2): lambda = 8 makes that < 1e-8 for every size used.
EXTRA U T covers the handful of roundings outside the sums (statistics, coefficients, the
apply), each at most U of the value. `kappa` (the conditioning) is max |x| times the largest
rstd multiplying it: normalized values are built from x - mu, which float32 rounds (and mu
carries its sum's error) at the size of x, so they are off by about kappa times the above.
"""
import math

import torch
import torch.nn.functional as F

import cyclegan_ext
from cyclegan_ext import reference

U32 = 2.0 ** -24
LAMBDA = 8.0
EXTRA = 16
NAMES = ("x", "weight", "bias", "rho")


def fused_run(x, weight, bias, rho, grad_y, *, unbiased, eps):
    """Forward and backward of the fused op: (y, stats, grads). stats = (mean_c, rstd_c,
    mean_l, rstd_l); grads maps x / weight / bias / rho (those given) to d<y, grad_y>."""
    given = {k: t for k, t in zip(NAMES, (x, weight, bias, rho)) if t is not None}
    leaves = {k: t.detach().clone().requires_grad_() for k, t in given.items()}  # clone keeps the layout
    args = [leaves.get(k) for k in NAMES]
    y = cyclegan_ext.fused_norm(*args, unbiased=unbiased, eps=eps)
    grads = dict(zip(leaves, torch.autograd.grad(y, list(leaves.values()), grad_y)))
    with torch.no_grad():
        stats = torch.ops.cyclegan_ext.fused_norm_forward(x, weight, bias, rho, unbiased, eps, 0, 0.2)[1:]
    return y.detach(), stats, grads


def _leaf64(t):
    return None if t is None else t.detach().cpu().double().requires_grad_()


def reference_run(x, weight, bias, rho, grad_y, *, unbiased, eps):
    """(y, grads) as fused_run, from reference.adalin in float64. weight / bias None are ones /
    zeros; a per-channel (C,) parameter is expanded to (N, C) inside the graph, so that its
    gradient is summed over n as the op's is."""
    n, c = x.shape[:2]
    leaves = {k: _leaf64(t) for k, t in zip(NAMES, (x, weight, bias, rho)) if t is not None}

    def per_sample(p, default):
        if p is None:
            return torch.full((n, c), default, dtype=torch.float64)
        return p.expand(n, c) if p.dim() == 1 else p

    r = leaves.get("rho", torch.ones(c, dtype=torch.float64))
    y = reference.adalin(leaves["x"], per_sample(leaves.get("weight"), 1.0), per_sample(leaves.get("bias"), 0.0), r,
                         eps, unbiased)
    grads = torch.autograd.grad(y, list(leaves.values()), grad_y.cpu().double())
    return y.detach(), dict(zip(leaves, grads))


def instance_norm_run(x, weight, bias, grad_y, *, eps):
    """(y, grads) of torch.nn.functional.instance_norm (biased variance) in float64; weight
    and bias per channel (C,)."""
    leaves = {k: _leaf64(t) for k, t in zip(NAMES, (x, weight, bias)) if t is not None}
    y = F.instance_norm(leaves["x"], weight=leaves.get("weight"), bias=leaves.get("bias"), eps=eps)
    grads = torch.autograd.grad(y, list(leaves.values()), grad_y.cpu().double())
    return y.detach(), dict(zip(leaves, grads))


def rstds64(x, *, unbiased, eps):
    """float64 rstd per plane (N, C) and per sample (N,)."""
    x64 = x.detach().cpu().double()
    s_c = (x64.var(dim=(2, 3), unbiased=unbiased) + eps).rsqrt()
    s_l = (x64.flatten(1).var(dim=1, unbiased=unbiased) + eps).rsqrt()
    return s_c, s_l


def conditioning(x, *, layer, unbiased, eps):
    """kappa = max over planes of max |x| * rstd, the rstd being s_c, or max(s_c, s_L) where
    the layer statistics enter (layer=True); and that largest rstd."""
    s_c, s_l = rstds64(x, unbiased=unbiased, eps=eps)
    s = torch.maximum(s_c, s_l[:, None]) if layer else s_c
    amax = x.detach().cpu().double().abs().amax(dim=(2, 3))
    return (amax * s).max().item(), s.max().item()


def _max_abs(t, default):
    return default if t is None else t.detach().abs().max().item()


def rounding_bound(k, total):
    """Error bound for a value made of k-term sums whose terms add up to `total` in absolute
    value (for a mean, the size of one term), and a few more roundings."""
    return (LAMBDA * math.sqrt(k) + EXTRA) * U32 * total


def forward_tolerance(x, weight, bias, kappa, *, layer):
    """y = gamma xhat + beta: xhat comes from the statistics' sums over a plane (M terms) or a
    sample (C M) and from x - mu, all off by ~kappa times the bound."""
    n, c, h, w = x.shape
    k = c * h * w if layer else h * w
    return rounding_bound(k, (1 + kappa) * _max_abs(weight, 1.0) + _max_abs(bias, 0.0))


def gradient_tolerances(x, weight, grad_y, kappa, s_max, *, layer, per_channel):
    """Bounds on the gradients' errors. dx = A g + B xs + C: B and C are means over a plane
    (M terms), or the whole sample (C M) where the layer statistics enter, of size at most
    s gamma g (1 + kappa)^2 (g times the normalized moment mean(g xhat), times xhat again).
    The parameter gradients are sums over a plane and, for per-channel parameters, over n:
    of terms g xhat (dgamma), g (dbeta), gamma g xhat (drho, always summed over n)."""
    n, c, h, w = x.shape
    m = h * w
    k_param = (n if per_channel else 1) * m
    g = grad_y.detach().abs().max().item()
    gamma = _max_abs(weight, 1.0)
    k1 = 1 + kappa
    return {
        "x": rounding_bound(c * m if layer else m, s_max * gamma * g * k1 ** 2),
        "weight": rounding_bound(k_param, k_param * g * k1),
        "bias": rounding_bound(k_param, k_param * g),
        "rho": rounding_bound(n * m, n * m * gamma * g * k1),
    }


def nonfinite_where(t):
    """Where t is not finite, compactly: the (n, c) planes of a 4-d tensor, else the indices."""
    bad = ~torch.isfinite(t.detach().cpu())
    if bad.dim() == 4:
        bad = bad.flatten(2).any(-1)
    return bad.nonzero().tolist()


def assert_same_finiteness(got, want, name):
    got_ok, want_ok = torch.isfinite(got.detach().cpu()), torch.isfinite(want)
    assert torch.equal(got_ok, want_ok), (f"{name}: non-finite at {nonfinite_where(got)}, expected at "
                                          f"{nonfinite_where(want)}")


def assert_close_where(got, want, mask, tol, name):
    """|got - want| <= tol where mask is True (and there is something to compare)."""
    assert mask.any(), f"{name}: nothing to compare"
    err = (got.detach().cpu().double() - want)[mask].abs().max().item()
    assert err <= tol, f"{name}: error {err:.3e} > {tol:.3e}"


def assert_statistics_match(stats, x, *, unbiased, eps):
    """The op's (mean_c, rstd_c, mean_l, rstd_l) against float64: means of k = M (per plane)
    or C M (per sample) values of size at most max |x|; rstds from sums of k squares, good to
    the bound relative to themselves."""
    mean_c, rstd_c, mean_l, rstd_l = (t.detach().cpu().double() for t in stats)
    n, c, h, w = x.shape
    m = h * w
    x64 = x.detach().cpu().double()
    s_c, s_l = rstds64(x, unbiased=unbiased, eps=eps)
    amax = x64.abs().max().item()
    for got, want, k, name in ((mean_c, x64.mean(dim=(2, 3)), m, "mean_c"),
                               (mean_l, x64.flatten(1).mean(dim=1), c * m, "mean_l")):
        err = (got - want).abs().max().item()
        assert err <= rounding_bound(k, amax), f"{name}: error {err:.3e} for max |x| {amax:.1e}"
    for got, want, k, name in ((rstd_c, s_c, m, "rstd_c"), (rstd_l, s_l, c * m, "rstd_l")):
        err = ((got - want).abs() / want).max().item()
        assert err <= rounding_bound(k, 1.0), f"{name}: relative error {err:.3e}"
