"""float32 (and float64) kernels against the float64 reference computation (conftest.norm_ref).

Tolerances. float32 has a unit roundoff of 6e-8. The forward output is a per-(n, c) affine map
of x with coefficients from sums over M = H*W elements; its error is a few roundoffs of
|y| (measured ~2e-7 of max|y|), so we allow 2e-6 of the output scale. Gradients are sums over
M (dgamma, dbeta) or N*M (drho) elements of products, and drho is a difference of two such
sums, so we allow 2e-5 (dx, dgamma, dbeta) and 2e-4 (drho) of each gradient's scale.
On hostile inputs (|mean| >> std) float32 cannot do that well at all: the input itself is
only known to ulp(1e3)/0.1 = 6e-4 relative. There the judge is the plain eager float32
computation of the same formula (two-pass, as PyTorch users run it today): the kernel must
be within a small factor of its error, and much better than E[x^2] - E[x]^2.
"""
import pytest
import torch

from op_inputs import make_op_inputs  # tests/op_inputs.py

import cyclegan_ext

FWD_TOL = 2e-6
GRAD_TOL = {"x": 2e-5, "weight": 2e-5, "bias": 2e-5, "rho": 2e-4}
NAMES = ("x", "weight", "bias", "rho")


def scaled_error(got, want, scale=None):
    """max |got - want| relative to max |want| (the scale of the tensor), or to `scale`."""
    want = want.double()
    if scale is None:
        scale = want.abs().max().item()
    return ((got.double() - want).abs().max() / max(scale, 1e-30)).item()


def grad_scale(name, ref_grads):
    """drho = sum gamma * (IN-term - LN-term) is a difference of two sums, each of the size of
    dgamma, and can be (exactly, for C = 1) zero: its error is measured against its own scale,
    but never against less than 1% of dgamma's."""
    if name == "rho":
        return max(ref_grads["rho"].abs().max().item(), 0.01 * ref_grads["weight"].abs().max().item())
    return ref_grads[name].abs().max().item()


def make_inputs(shape, *, device="cpu", dtype=torch.float32, with_rho=True, offset=0.0, std=1.0,
                memory_format=torch.contiguous_format):
    layout = "channels_last" if memory_format == torch.channels_last else "nchw"
    return make_op_inputs(shape, dtype, layout, "adalin" if with_rho else "instance", param_dtype=dtype,
                          offset=offset, scale=std, device=device)


def run_both(x, weight, bias, rho, *, unbiased, eps=1e-5, activation=None, norm_ref, grad_y=None,
             ref_dtype=torch.float64):
    """Forward + backward of the fused op and of the reference (on the same rounded inputs)."""
    ins = [t.detach().clone().requires_grad_() if t is not None else None for t in (x, weight, bias, rho)]
    # clone() keeps a channels_last / NCHW layout; a non-contiguous x is passed as given
    ins[0] = x.detach().requires_grad_() if not x.is_contiguous() and not \
        x.is_contiguous(memory_format=torch.channels_last) else ins[0]
    y = cyclegan_ext.fused_norm(*ins, unbiased=unbiased, eps=eps, activation=activation)
    if grad_y is None:
        grad_y = torch.randn(y.shape, dtype=torch.float64).to(y.device, y.dtype)
    live = [t for t in ins if t is not None]
    grads = torch.autograd.grad(y, live, grad_y)

    refs = [t.detach().to(ref_dtype).requires_grad_() if t is not None else None for t in ins]
    y_ref = norm_ref(*refs, unbiased=unbiased, eps=eps, activation=activation, dtype=ref_dtype)
    ref_live = [t for t in refs if t is not None]
    ref_grads = torch.autograd.grad(y_ref, ref_live, grad_y.to(ref_dtype))
    names = [n for n, t in zip(NAMES, ins) if t is not None]
    return y, y_ref, dict(zip(names, grads)), dict(zip(names, ref_grads))


def assert_parity(y, y_ref, grads, ref_grads, fwd_tol=FWD_TOL, grad_tol=None):
    grad_tol = GRAD_TOL if grad_tol is None else grad_tol
    assert torch.isfinite(y).all()
    err = scaled_error(y, y_ref)
    assert err < fwd_tol, f"forward error {err:.2e} of output scale"
    for name, g in grads.items():
        assert g.shape == ref_grads[name].shape and g.dtype == y.dtype, name
        assert torch.isfinite(g).all(), name
        err = scaled_error(g, ref_grads[name], grad_scale(name, ref_grads))
        assert err < grad_tol[name], f"grad {name}: error {err:.2e} of its scale"


# ------------------------------------------------------------------ realistic shapes

@pytest.mark.slow
def test_realistic_adalin_float32(device, norm_ref):
    """A U-GAT-IT decoder block's AdaLIN: (4, 256, 64, 64), unbiased, learned rho."""
    x, w, b, rho = make_inputs((4, 256, 64, 64), device=device)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, norm_ref=norm_ref)
    assert y.is_contiguous()
    assert_parity(y, y_ref, grads, ref_grads)


@pytest.mark.slow
def test_realistic_instance_norm_relu_float32(device, norm_ref):
    """A CycleGAN generator's first block: instance norm + ReLU on (1, 64, 256, 256)."""
    x, w, b, _ = make_inputs((1, 64, 256, 256), device=device, with_rho=False)
    y, y_ref, grads, ref_grads = run_both(x, w, b, None, unbiased=False, activation="relu",
                                          norm_ref=norm_ref)
    assert (y >= 0).all() and (y == 0).any()
    assert_parity(y, y_ref, grads, ref_grads)


# ------------------------------------------------------------- odd sizes and layouts

ODD_SHAPES = [(3, 5, 7, 11), (1, 1, 9, 9), (2, 3, 1, 7), (5, 2, 13, 3), (1, 17, 33, 31), (2, 1, 3, 2)]


@pytest.mark.parametrize("shape", ODD_SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("with_rho", [True, False], ids=["adalin", "instance"])
@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
def test_odd_shapes_float32(device, shape, with_rho, activation, memory_format, norm_ref):
    x, w, b, rho = make_inputs(shape, device=device, with_rho=with_rho, memory_format=memory_format)
    unbiased = with_rho  # AdaLIN defaults to unbiased, instance norm to biased variance
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=unbiased, activation=activation,
                                          norm_ref=norm_ref)
    if memory_format == torch.channels_last and shape[1] > 1 and shape[2] * shape[3] > 1:
        assert not y.is_contiguous() and y.is_contiguous(memory_format=torch.channels_last)
        assert grads["x"].is_contiguous(memory_format=torch.channels_last)
    else:
        assert y.is_contiguous(memory_format=memory_format)
    assert_parity(y, y_ref, grads, ref_grads)


@pytest.mark.parametrize("shape", [(3, 5, 7, 11), (2, 16, 12, 12)], ids=["3x5x7x11", "2x16x12x12"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_float64_matches_reference_tightly(device, shape, memory_format, unbiased, norm_ref):
    x, w, b, rho = make_inputs(shape, device=device, dtype=torch.float64, memory_format=memory_format)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=unbiased, activation="leaky_relu",
                                          norm_ref=norm_ref)
    assert y.dtype == torch.float64
    assert_parity(y, y_ref, grads, ref_grads, fwd_tol=1e-12,
                  grad_tol={"x": 1e-11, "weight": 1e-11, "bias": 1e-11, "rho": 1e-10})


@pytest.mark.parametrize("view", ["slice", "transpose", "expanded_batch"])
def test_non_contiguous_input_gives_nchw_output(device, view, norm_ref):
    big = torch.randn(3, 8, 12, 20, device=device)
    if view == "slice":
        x = big[:, 1:6, 2:-1, ::2]
    elif view == "transpose":
        x = big.transpose(2, 3)[:, :5]
    else:  # a stride-0 batch: the same sample twice
        x = big[:1, :5].expand(2, -1, -1, -1)
    assert not x.is_contiguous() and not x.is_contiguous(memory_format=torch.channels_last)
    n, c = x.shape[:2]
    w, b, rho = torch.randn(n, c, device=device) + 1, torch.randn(n, c, device=device), torch.rand(c, device=device)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, norm_ref=norm_ref)
    assert y.shape == x.shape and y.is_contiguous()
    assert grads["x"].shape == x.shape
    assert_parity(y, y_ref, grads, ref_grads)


def test_per_sample_params_may_be_expanded_views(norm_ref):
    """weight/bias (N, C) given as stride-0 expansions of (1, C) (what FusedLIN passes)."""
    x = torch.randn(4, 6, 5, 5)
    w = torch.randn(1, 6).expand(4, 6)
    b = torch.randn(6, 1).t().expand(4, 6)
    rho = torch.rand(12)[::2]
    assert not rho.is_contiguous()
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, norm_ref=norm_ref)
    assert_parity(y, y_ref, grads, ref_grads)


# ------------------------------------------------------------------- hostile numerics

def _eager32_errors(x, w, b, rho, unbiased, norm_ref, grad_y):
    _, y_ref, _, ref_grads = run_both(x, w, b, rho, unbiased=unbiased, norm_ref=norm_ref, grad_y=grad_y)
    _, y32, _, grads32 = run_both(x, w, b, rho, unbiased=unbiased, norm_ref=norm_ref, grad_y=grad_y,
                                  ref_dtype=torch.float32)
    return scaled_error(y32, y_ref), {k: scaled_error(grads32[k], ref_grads[k], grad_scale(k, ref_grads))
                                      for k in ref_grads}


@pytest.mark.parametrize("with_rho", [True, False], ids=["adalin", "instance"])
@pytest.mark.parametrize("offset,std", [(1e3, 0.1), (1.0, 1e-4), (-3e2, 1e-2)],
                         ids=["offset1e3_std0.1", "offset1_std1e-4", "offset-3e2_std1e-2"])
def test_large_mean_small_std(device, with_rho, offset, std, norm_ref):
    shape = (2, 8, 32, 32)
    x, w, b, rho = make_inputs(shape, device=device, with_rho=with_rho, offset=offset, std=std)
    grad_y = torch.randn(shape, device=device)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, norm_ref=norm_ref, grad_y=grad_y)
    eager_fwd, eager_grads = _eager32_errors(x, w, b, rho, True, norm_ref, grad_y)

    # Within a small factor of plain float32 eager PyTorch (floors: what float32 does on easy data).
    fwd_err = scaled_error(y, y_ref)
    assert fwd_err < max(8 * eager_fwd, FWD_TOL), (fwd_err, eager_fwd)
    for k, g in grads.items():
        err = scaled_error(g, ref_grads[k], grad_scale(k, ref_grads))
        assert err < max(8 * eager_grads[k], GRAD_TOL[k]), (k, err, eager_grads[k])

    # ... and far better than the catastrophic E[x^2] - E[x]^2 in float32 would be.
    xf = x.float().reshape(2, 8, -1)
    naive_var = (xf * xf).mean(-1) - xf.mean(-1) ** 2
    true_var = x.double().reshape(2, 8, -1).var(-1, unbiased=False)
    naive_rel = ((naive_var.double() - true_var).abs() / true_var).max().item()
    if offset / std >= 1e4:  # only there does the naive formula break down in float32
        assert naive_rel > 1e-2
        assert fwd_err < 1e-2


@pytest.mark.parametrize("std", [1e-4, 0.0], ids=["std1e-4", "constant"])
@pytest.mark.parametrize("with_rho", [True, False], ids=["adalin", "instance"])
def test_tiny_and_zero_variance(device, std, with_rho, norm_ref):
    """var << eps (std 1e-4) and var == 0 (constant planes): eps dominates, output finite."""
    shape = (2, 4, 16, 16)
    x, w, b, rho = make_inputs(shape, device=device, with_rho=with_rho, std=1.0)
    # (a tiny std on top of a large mean is test_large_mean_small_std's business)
    x = x * std if std > 0 else torch.full_like(x, 0.25)
    if std == 0.0:
        x[1, 2].fill_(-0.7)  # one more constant plane with its own value
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, norm_ref=norm_ref)
    assert_parity(y, y_ref, grads, ref_grads)
    if std == 0.0 and not with_rho:  # instance norm of a constant plane: exactly bias
        assert (y - b[:, :, None, None]).abs().max() < 1e-5


def test_constant_plane_inside_varying_sample(device, norm_ref):
    x, w, b, rho = make_inputs((2, 5, 9, 9), device=device)
    x[0, 3] = 4.0
    x[1, 0] = -2.5
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, norm_ref=norm_ref)
    assert_parity(y, y_ref, grads, ref_grads)


@pytest.mark.parametrize("with_rho", [True, False], ids=["adalin", "instance"])
def test_single_pixel_planes_biased(device, with_rho, norm_ref):
    """H*W = 1 with unbiased=False: instance variance is 0, so IN(x) = 0; LN runs over C."""
    x, w, b, rho = make_inputs((3, 6, 1, 1), device=device, with_rho=with_rho)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=False, norm_ref=norm_ref)
    # dx = A g + B x + C: with M = 1 the instance part of A g is cancelled exactly by C, both of
    # size gamma / sqrt(eps) = 316 |g|, so float32 leaves ~316 roundoffs (2e-5) of that behind.
    assert_parity(y, y_ref, grads, ref_grads, grad_tol={**GRAD_TOL, "x": 2e-4})
    if not with_rho:
        assert (y - b[:, :, None, None]).abs().max() < 1e-6


@pytest.mark.parametrize("shape", [(1, 7, 10, 10), (4, 1, 10, 10), (1, 1, 3, 2)],
                         ids=["N1", "C1", "N1C1"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_n1_c1(device, shape, unbiased, norm_ref):
    """N = 1 and C = 1 (then layer norm == instance norm, so any rho gives the same y).
    (With M = 2 as well, dx is ~eps/var of its usual size, all cancellation: not a useful check.)"""
    x, w, b, rho = make_inputs(shape, device=device)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=unbiased, norm_ref=norm_ref)
    assert_parity(y, y_ref, grads, ref_grads)
    if shape[1] == 1:
        y_in = cyclegan_ext.fused_norm(x, w, b, None, unbiased=unbiased, eps=1e-5)
        torch.testing.assert_close(y, y_in, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("eps", [0.0, 1e-3, 1.0])
def test_eps_values(eps, norm_ref):
    x, w, b, rho = make_inputs((2, 3, 6, 5))
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, eps=eps, norm_ref=norm_ref)
    assert_parity(y, y_ref, grads, ref_grads)


def test_leaky_relu_slope_is_used(norm_ref):
    x, w, b, rho = make_inputs((2, 3, 6, 5))
    for slope in (0.01, 0.2, 0.5):
        y = cyclegan_ext.fused_norm(x, w, b, rho, unbiased=True, eps=1e-5, activation="leaky_relu",
                                    negative_slope=slope)
        y_ref = norm_ref(x, w, b, rho, unbiased=True, eps=1e-5, activation="leaky_relu", negative_slope=slope)
        assert scaled_error(y, y_ref) < FWD_TOL


# --------------------------------------------------------------- gradient layouts, half

@pytest.mark.parametrize("kind", ["expanded_ones", "transposed", "channels_last"])
@pytest.mark.parametrize("x_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "nhwc"])
def test_any_grad_output_layout(kind, x_format, norm_ref):
    """grad_y as autograd hands it over: y.sum() gives a stride-0 expanded tensor, a later
    transpose a permuted view, a later channels_last op a channels_last tensor."""
    x, w, b, rho = make_inputs((2, 5, 6, 7), memory_format=x_format)
    if kind == "expanded_ones":
        grad_y = torch.ones(()).expand(2, 5, 6, 7)
    elif kind == "transposed":
        grad_y = torch.randn(2, 5, 7, 6).transpose(2, 3)
    else:
        grad_y = torch.randn(2, 5, 6, 7).contiguous(memory_format=torch.channels_last)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, activation="relu",
                                          norm_ref=norm_ref, grad_y=grad_y)
    assert_parity(y, y_ref, grads, ref_grads)


HALF_ROUNDOFF = {torch.float16: 2.0 ** -11, torch.bfloat16: 2.0 ** -8}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["fp16", "bf16"])
@pytest.mark.parametrize("param_dtype", ["same", "float32"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
def test_half_precision_input(device, dtype, param_dtype, memory_format, norm_ref):
    """Half / bfloat16 x (with half or float32 parameters): statistics in float32, so
    the only large error is rounding the results to the output dtype: allow 4 roundoffs."""
    p_dtype = dtype if param_dtype == "same" else torch.float32
    x, w, b, rho = make_inputs((2, 6, 10, 9), device=device, dtype=dtype, memory_format=memory_format)
    w, b, rho = w.to(p_dtype), b.to(p_dtype), rho.to(p_dtype)
    grad_y = torch.randn(x.shape, device=device).to(dtype)
    y, y_ref, grads, ref_grads = run_both(x, w, b, rho, unbiased=True, activation="leaky_relu",
                                          norm_ref=norm_ref, grad_y=grad_y)
    assert y.dtype == dtype and grads["x"].dtype == dtype
    assert grads["weight"].dtype == grads["bias"].dtype == grads["rho"].dtype == p_dtype
    u = HALF_ROUNDOFF[dtype]
    assert scaled_error(y, y_ref) < 4 * u
    for name, g in grads.items():
        assert scaled_error(g, ref_grads[name], grad_scale(name, ref_grads)) < 4 * u, name
