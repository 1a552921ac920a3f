"""A NaN in one plane of x goes where the mathematics takes it, and no further.

Instance norm (rho None, or rho given and exactly 1): planes are independent, so a NaN at
x[1, 2, 3, 3] may reach plane [1, 2] of y and of dx, and channel 2 of per-channel weight /
bias gradients (summed over n), nothing else. Sample 1's layer statistics are NaN, but they
enter with weight 1 - rho = 0. (The gradient of rho itself is a layer-minus-instance term:
NaN for every channel, as in the reference.) AdaLIN with rho < 1 couples the planes of a
sample: the NaN fills sample 1 and no other sample.

Judges (tests/numerics_judges.py): torch.nn.functional.instance_norm in float64 for which
entries are non-finite and for the finite values; cyclegan_ext.reference.adalin in float64 for
the finite values too, evaluated on the clean x (the planes the NaN must not reach do not
depend on it), for rho's gradient, and for AdaLIN. reference.adalin cannot judge the
instance-norm pattern: it evaluates (1 - rho) * layer_norm(x) = 0 * NaN.
"""
import pytest
import torch

from numerics_judges import (assert_close_where, assert_same_finiteness, conditioning, forward_tolerance,
                             fused_run, gradient_tolerances, instance_norm_run, reference_run)
from op_inputs import make_op_inputs  # tests/op_inputs.py

SHAPE = (3, 4, 6, 6)
POISON = (1, 2, 3, 3)
EPS = 1e-5
LAYOUTS = ["nchw", "channels_last"]


def poisoned_inputs(device, layout, mode):
    """x with a NaN at POISON, the same x with 0 there, the parameters and grad_y."""
    x, weight, bias, rho = make_op_inputs(SHAPE, torch.float32, layout, mode, device=device, seed=0)
    clean, x = x.clone(), x.clone()
    clean[POISON] = 0.0
    x[POISON] = float("nan")
    gen = torch.Generator().manual_seed(1)
    grad_y = torch.randn(SHAPE, generator=gen, dtype=torch.float64).float().to(device)
    return x, clean, weight, bias, rho, grad_y


def instance_inputs(device, layout, rho_kind):
    """Per-channel (C,) weight and bias; rho None or exactly ones."""
    x, clean, weight, bias, _, grad_y = poisoned_inputs(device, layout, "lin")
    rho = None if rho_kind == "none" else torch.ones(SHAPE[1], device=device)
    return x, clean, weight[0], bias[0], rho, grad_y


def stats64(x):
    """float64 mean and biased variance per plane: NaN exactly where the op's may be."""
    x64 = x.detach().cpu().double()
    return x64.mean(dim=(2, 3)), x64.var(dim=(2, 3), unbiased=False)


@pytest.mark.parametrize("rho_kind", ["none", "ones"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_instance_norm_forward_confines_nan_to_its_plane(device, layout, rho_kind):
    x, clean, weight, bias, rho, grad_y = instance_inputs(device, layout, rho_kind)
    y, (mean_c, rstd_c, _, _), _ = fused_run(x, weight, bias, rho, grad_y, unbiased=False, eps=EPS)
    y_in, _ = instance_norm_run(x, weight, bias, grad_y, eps=EPS)
    y_clean, _ = reference_run(clean, weight, bias, rho, grad_y, unbiased=False, eps=EPS)

    assert_same_finiteness(y, y_in, "y")
    mean64, var64 = stats64(x)
    assert_same_finiteness(mean_c, mean64, "mean_c")
    assert_same_finiteness(rstd_c, var64, "rstd_c")
    kappa, _ = conditioning(clean, layer=False, unbiased=False, eps=EPS)
    tol = forward_tolerance(x, weight, bias, kappa, layer=False)
    finite = torch.isfinite(y_in)
    assert_close_where(y, y_in, finite, tol, "y vs instance_norm")
    assert_close_where(y, y_clean, finite, tol, "y vs reference")


@pytest.mark.parametrize("rho_kind", ["none", "ones"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_instance_norm_backward_confines_nan_to_its_plane(device, layout, rho_kind):
    x, clean, weight, bias, rho, grad_y = instance_inputs(device, layout, rho_kind)
    _, _, grads = fused_run(x, weight, bias, rho, grad_y, unbiased=False, eps=EPS)
    _, grads_in = instance_norm_run(x, weight, bias, grad_y, eps=EPS)
    _, grads_clean = reference_run(clean, weight, bias, rho, grad_y, unbiased=False, eps=EPS)

    kappa, s_max = conditioning(clean, layer=False, unbiased=False, eps=EPS)
    tol = gradient_tolerances(x, weight, grad_y, kappa, s_max, layer=False, per_channel=True)
    for name in ("x", "weight", "bias"):
        assert_same_finiteness(grads[name], grads_in[name], name)
        finite = torch.isfinite(grads_in[name])
        assert_close_where(grads[name], grads_in[name], finite, tol[name], f"d{name} vs instance_norm")
        assert_close_where(grads[name], grads_clean[name], finite, tol[name], f"d{name} vs reference")
    if rho is not None:
        _, grads_ref = reference_run(x, weight, bias, rho, grad_y, unbiased=False, eps=EPS)
        assert_same_finiteness(grads["rho"], grads_ref["rho"], "rho")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_adalin_confines_nan_to_its_sample(device, layout):
    """rho in (0, 1), per-sample weight / bias: every plane of sample 1 depends on the NaN."""
    x, clean, weight, bias, rho, grad_y = poisoned_inputs(device, layout, "adalin")
    y, _, grads = fused_run(x, weight, bias, rho, grad_y, unbiased=True, eps=EPS)
    y_ref, grads_ref = reference_run(x, weight, bias, rho, grad_y, unbiased=True, eps=EPS)

    assert (~torch.isfinite(y.cpu())).flatten(1).any(1).tolist() == [False, True, False]
    assert_same_finiteness(y, y_ref, "y")
    kappa, s_max = conditioning(clean, layer=True, unbiased=True, eps=EPS)
    assert_close_where(y, y_ref, torch.isfinite(y_ref), forward_tolerance(x, weight, bias, kappa, layer=True), "y")
    tol = gradient_tolerances(x, weight, grad_y, kappa, s_max, layer=True, per_channel=False)
    for name, g in grads.items():
        assert_same_finiteness(g, grads_ref[name], name)
        if name != "rho":  # rho's gradient sums over n: NaN for every channel
            assert_close_where(g, grads_ref[name], torch.isfinite(grads_ref[name]), tol[name], f"d{name}")
