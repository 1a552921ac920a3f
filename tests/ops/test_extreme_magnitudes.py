"""float32 data of extreme magnitude: the op matches float64 wherever float32 can hold the
answer.

x = scale * randn in float32. From scale ~1e19 / sqrt(H*W) on, float32 sums of squares
overflow (and so do the layer statistics' (mu_c - mu_L)^2), and from |x| ~1e13 on the
backward's s_c^3 underflows; with scale 1e-30 and eps = 0 the variance (~1e-60) underflows.
The outputs (normalized values, gradients) and the statistics are all representable in
float32 there, so they must match the float64 reference (cyclegan_ext.reference.adalin) to
within bounds built from float32's roundoff and the data's conditioning (tests/numerics_judges.py).
With eps = 1e-5 and scale 1e-30 the variance is negligible against eps: y is beta plus ~3e-28,
still compared with float64.

Shapes: 40 channels of 9 x 9 run the CPU kernels' 4-vector, 1-vector and scalar-tail paths
(channels_last over channels, NCHW over pixels); AdaLIN, whose bounds grow with its
sample-wide sums (C H W terms), runs on 8 channels.
"""
import pytest
import torch

from numerics_judges import (assert_close_where, assert_statistics_match, conditioning, forward_tolerance, fused_run,
                             gradient_tolerances, reference_run)
from op_inputs import make_op_inputs  # tests/op_inputs.py

MAGNITUDES = [1e20, 1e25, 1e30, 1e-30]
CASES = {"instance": (2, 40, 9, 9), "adalin": (2, 8, 9, 9)}


def extreme_inputs(device, layout, mode, scale):
    """Instance norm without affine parameters (y is the normalized x itself); AdaLIN with
    per-sample weight / bias and rho."""
    x, weight, bias, rho = make_op_inputs(CASES[mode], torch.float32, layout, mode, scale=scale, device=device,
                                          seed=0)
    if mode == "instance":
        weight = bias = None
    gen = torch.Generator().manual_seed(1)
    grad_y = torch.randn(x.shape, generator=gen, dtype=torch.float64).float().to(device)
    return x, weight, bias, rho, grad_y


def run_case(device, layout, mode, scale, eps):
    x, weight, bias, rho, grad_y = extreme_inputs(device, layout, mode, scale)
    assert torch.isfinite(x).all()
    fused = fused_run(x, weight, bias, rho, grad_y, unbiased=True, eps=eps)
    ref = reference_run(x, weight, bias, rho, grad_y, unbiased=True, eps=eps)
    kappa, s_max = conditioning(x, layer=rho is not None, unbiased=True, eps=eps)
    return (x, weight, bias, rho, grad_y), fused, ref, kappa, s_max


@pytest.mark.parametrize("eps", [1e-5, 0.0])
@pytest.mark.parametrize("scale", MAGNITUDES)
@pytest.mark.parametrize("mode", list(CASES))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_forward_matches_float64(device, layout, mode, scale, eps):
    (x, weight, bias, _, _), (y, stats, _), (y_ref, _), kappa, _ = run_case(device, layout, mode, scale, eps)
    tol = forward_tolerance(x, weight, bias, kappa, layer=mode != "instance")
    assert_close_where(y, y_ref, torch.ones_like(y_ref, dtype=torch.bool), tol, "y")
    assert_statistics_match(stats, x, unbiased=True, eps=eps)


@pytest.mark.parametrize("eps", [1e-5, 0.0])
@pytest.mark.parametrize("scale", MAGNITUDES)
@pytest.mark.parametrize("mode", list(CASES))
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_backward_matches_float64(device, layout, mode, scale, eps):
    (x, weight, _, rho, grad_y), (_, _, grads), (_, grads_ref), kappa, s_max = run_case(device, layout, mode, scale,
                                                                                      eps)
    tol = gradient_tolerances(x, weight, grad_y, kappa, s_max, layer=rho is not None, per_channel=False)
    for name, g in grads.items():
        everywhere = torch.ones_like(grads_ref[name], dtype=torch.bool)
        assert_close_where(g, grads_ref[name], everywhere, tol[name], f"d{name}")
