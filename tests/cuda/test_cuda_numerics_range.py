"""CUDA mirror of tests/ops/test_nan_containment.py and tests/ops/test_extreme_magnitudes.py,
on shapes that reach the GPU kernels' other paths: planes split over several blocks (partial
moments Chan-combined), 16-byte vector loads (4 float32, 8 bfloat16) and the scalar path,
channels_last column tiles, and more channels (48) than the coefficient kernel has warps (16),
so that its per-channel loops (and the double recomputation of overflowed statistics) wrap.

Judges and tolerances: tests/numerics_judges.py (float64 on the CPU). bfloat16 x is computed in
float32 and y / dx are rounded to bfloat16 at the end, which adds up to 2^-8 of their size
(bfloat16's unit roundoff) to the float32 bounds.
"""
import pytest
import torch

from numerics_judges import (assert_close_where, assert_same_finiteness, assert_statistics_match, conditioning,
                             forward_tolerance, fused_run, gradient_tolerances, instance_norm_run, reference_run)
from op_inputs import make_op_inputs  # tests/op_inputs.py

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
]

SHAPES = {"split_planes": ((2, 4, 128, 128), "nchw"), "many_channels": ((1, 48, 40, 40), "channels_last"),
          "scalar_nchw": ((2, 3, 33, 31), "nchw"), "scalar_nhwc": ((2, 3, 33, 31), "channels_last")}
EPS = 1e-5


def output_rounding(dtype, ref):
    """What rounding a float32 result to x's dtype adds."""
    return 0.0 if dtype == torch.float32 else 2.0 ** -8 * ref.abs().max().item()


def cuda_inputs(shape, layout, mode, dtype, scale=1.0):
    x, weight, bias, rho = make_op_inputs(shape, dtype, layout, mode, scale=scale, device="cuda", seed=0)
    gen = torch.Generator().manual_seed(1)
    grad_y = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype).cuda()
    return x, weight, bias, rho, grad_y


# ------------------------------------------------------------------------------------------- NaN containment

@pytest.mark.parametrize("rho_kind", ["none", "ones"])
@pytest.mark.parametrize("case", list(SHAPES))
def test_instance_norm_confines_nan_to_its_plane_on_cuda(case, rho_kind):
    shape, layout = SHAPES[case]
    n, c, h, w = shape
    x, weight, bias, _, grad_y = cuda_inputs(shape, layout, "lin", torch.float32)
    weight, bias = weight[0], bias[0]  # per channel
    rho = None if rho_kind == "none" else torch.ones(c, device="cuda")
    poison = (n - 1, c // 2, h // 2, w // 2)
    clean, x = x.clone(), x.clone()
    clean[poison] = 0.0
    x[poison] = float("nan")

    y, _, grads = fused_run(x, weight, bias, rho, grad_y, unbiased=False, eps=EPS)
    y_in, grads_in = instance_norm_run(x, weight, bias, grad_y, eps=EPS)
    kappa, s_max = conditioning(clean, layer=False, unbiased=False, eps=EPS)
    assert_same_finiteness(y, y_in, "y")
    assert_close_where(y, y_in, torch.isfinite(y_in), forward_tolerance(x, weight, bias, kappa, layer=False), "y")
    tol = gradient_tolerances(x, weight, grad_y, kappa, s_max, layer=False, per_channel=True)
    for name in ("x", "weight", "bias"):
        assert_same_finiteness(grads[name], grads_in[name], name)
        assert_close_where(grads[name], grads_in[name], torch.isfinite(grads_in[name]), tol[name], f"d{name}")


@pytest.mark.parametrize("case", list(SHAPES))
def test_adalin_confines_nan_to_its_sample_on_cuda(case):
    shape, layout = SHAPES[case]
    n, c, h, w = shape
    x, weight, bias, rho, grad_y = cuda_inputs(shape, layout, "adalin", torch.float32)
    x = x.clone()
    x[0, c - 1, h - 1, w - 1] = float("nan")
    y, _, grads = fused_run(x, weight, bias, rho, grad_y, unbiased=True, eps=EPS)
    y_ref, grads_ref = reference_run(x, weight, bias, rho, grad_y, unbiased=True, eps=EPS)
    assert_same_finiteness(y, y_ref, "y")
    for name, g in grads.items():
        assert_same_finiteness(g, grads_ref[name], name)


# ------------------------------------------------------------------------------------------- magnitudes

MAGNITUDES = [(1e25, EPS), (1e30, EPS), (1e-30, 0.0)]


def run_magnitude_case(case, dtype, scale, eps, mode):
    shape, layout = SHAPES[case]
    x, weight, bias, rho, grad_y = cuda_inputs(shape, layout, mode, dtype, scale)
    if mode == "instance":
        weight = bias = None
    assert torch.isfinite(x).all()
    fused = fused_run(x, weight, bias, rho, grad_y, unbiased=True, eps=eps)
    ref = reference_run(x, weight, bias, rho, grad_y, unbiased=True, eps=eps)
    kappa, s_max = conditioning(x, layer=rho is not None, unbiased=True, eps=eps)
    return (x, weight, bias, rho, grad_y), fused, ref, kappa, s_max


@pytest.mark.parametrize("mode", ["instance", "adalin"])
@pytest.mark.parametrize("scale,eps", MAGNITUDES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", list(SHAPES))
def test_extreme_magnitudes_forward_on_cuda(case, dtype, scale, eps, mode):
    (x, weight, bias, _, _), (y, stats, _), (y_ref, _), kappa, _ = run_magnitude_case(case, dtype, scale, eps, mode)
    tol = forward_tolerance(x, weight, bias, kappa, layer=mode != "instance") + output_rounding(dtype, y_ref)
    assert_close_where(y, y_ref, torch.ones_like(y_ref, dtype=torch.bool), tol, "y")
    assert_statistics_match(stats, x, unbiased=True, eps=eps)


@pytest.mark.parametrize("mode", ["instance", "adalin"])
@pytest.mark.parametrize("scale,eps", MAGNITUDES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("case", list(SHAPES))
def test_extreme_magnitudes_backward_on_cuda(case, dtype, scale, eps, mode):
    (x, weight, _, rho, grad_y), (_, _, grads), (_, grads_ref), kappa, s_max = run_magnitude_case(
        case, dtype, scale, eps, mode)
    tol = gradient_tolerances(x, weight, grad_y, kappa, s_max, layer=rho is not None, per_channel=False)
    for name, g in grads.items():
        extra = output_rounding(dtype, grads_ref[name]) if name == "x" else 0.0
        assert_close_where(g, grads_ref[name], torch.ones_like(grads_ref[name], dtype=torch.bool), tol[name] + extra,
                           f"d{name}")

