"""CUDA kernels of the fused norm op, judged against the float64 PyTorch reference.

Every test here needs a GPU and is skipped cleanly without one. The judge is
`cyclegan_ext.reference.adalin` evaluated in float64 (on the CPU for small cases, on the GPU
for large ones, where the CPU would take minutes; same code either way). Instance norm is
rho = ones.

Errors are relative to the largest reference value: max|out - ref| / max|ref|. Limits: 1e-5
for float32 (or, on purpose-built hostile inputs, no worse than 3x what eager float32
PyTorch achieves on the same input), 1e-2 for float16 / bfloat16 (their own rounding of the
output is ~5e-4 / ~4e-3).

Autocast: the op computes in float32 internally for half-precision x and returns x's dtype;
autocast does not cast its inputs (the op has no autocast rule), so inside
`torch.autocast("cuda", dtype=torch.bfloat16)` a bfloat16 x (e.g. a conv output) gives a
bfloat16 y, a float32 x a float32 y, and float32 parameters are fine with either.
"""
import math

import pytest
import torch

import cyclegan_ext
from cyclegan_ext import reference
from op_inputs import make_op_inputs, param_dtype_for  # tests/op_inputs.py

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available"),
]

ACTIVATIONS = [None, "relu", "leaky_relu"]
HALF_TOL = 1e-2
FP32_TOL = 1e-5


def tol_for(dtype):
    return {torch.float32: FP32_TOL, torch.float64: 1e-10}.get(dtype, HALF_TOL)


def rel_err(out, ref, floor=0.0):
    """max|out - ref| / max(max|ref|, floor)."""
    out = out.detach().to(device=ref.device, dtype=torch.float64)
    ref = ref.detach().to(torch.float64)
    assert out.shape == ref.shape
    return ((out - ref).abs().max() / ref.abs().max().clamp_min(max(floor, 1e-30))).item()


def make_inputs(shape, dtype, layout="nchw", mode="adalin", **kwargs):
    """The shared builder on the GPU, seeded (seed 0 unless given)."""
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("device", "cuda")
    return make_op_inputs(shape, dtype, layout, mode, **kwargs)


def ref_device(x):
    return "cpu" if x.numel() <= (1 << 21) else x.device


def reference_forward(x, weight, bias, rho, *, unbiased, eps, activation, negative_slope, dtype=torch.float64):
    dev = ref_device(x)
    c = x.shape[1]
    r = torch.ones(c, dtype=dtype, device=dev) if rho is None else rho.detach().to(dev, dtype)
    return reference.adalin(x.detach().to(dev, dtype), weight.detach().to(dev, dtype), bias.detach().to(dev, dtype),
                            r, eps, unbiased, activation, negative_slope)


def reference_grads(x, weight, bias, rho, grad_out, *, unbiased, eps, activation, negative_slope,
                    dtype=torch.float64):
    """Gradients (x, weight, bias, rho-or-None) of <reference(x, ...), grad_out>."""
    dev = ref_device(x)
    c = x.shape[1]
    xd = x.detach().to(dev, dtype).requires_grad_()
    wd = weight.detach().to(dev, dtype).requires_grad_()
    bd = bias.detach().to(dev, dtype).requires_grad_()
    rd = (torch.ones(c, dtype=dtype, device=dev) if rho is None else rho.detach().to(dev, dtype)).requires_grad_()
    y = reference.adalin(xd, wd, bd, rd, eps, unbiased, activation, negative_slope)
    y.backward(grad_out.detach().to(dev, dtype))
    return xd.grad, wd.grad, bd.grad, (None if rho is None else rd.grad)


def fused(x, weight, bias, rho, *, unbiased, eps, activation, negative_slope):
    return cyclegan_ext.fused_norm(x, weight, bias, rho, unbiased=unbiased, eps=eps, activation=activation,
                                   negative_slope=negative_slope)


def check_forward(x, weight, bias, rho, *, unbiased=True, eps=1e-5, activation=None, negative_slope=0.2,
                  tol=None, baseline=False):
    kw = dict(unbiased=unbiased, eps=eps, activation=activation, negative_slope=negative_slope)
    y = fused(x, weight, bias, rho, **kw)
    assert y.dtype == x.dtype and y.device == x.device and y.shape == x.shape
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        assert y.is_contiguous(memory_format=torch.channels_last)
    else:
        assert y.is_contiguous()
    assert torch.isfinite(y).all(), "non-finite output"
    ref = reference_forward(x, weight, bias, rho, **kw)
    err = rel_err(y, ref)
    tol = tol or tol_for(x.dtype)
    if baseline:  # hostile inputs: at least as good as eager PyTorch in x's dtype (within 3x)
        eager = reference_forward(x, weight, bias, rho, dtype=x.dtype, **kw)
        tol = max(tol, 3 * rel_err(eager, ref))
    assert err < tol, f"forward rel err {err:.3e} >= {tol:.1e}"
    return y


def check_backward(x, weight, bias, rho, *, unbiased=True, eps=1e-5, activation=None, negative_slope=0.2,
                   grad_layout=None, tol=None, param_tol=None, baseline=False, seed=1):
    """Autograd through the fused op vs autograd through the float64 reference.

    x and the parameters are used as they are (same strides, same data pointers: detach());
    expanded (N, C) parameters (LIN) are differentiated through the expansion of their first
    row, as the layers do. grad_layout: None (like x), "nchw", "channels_last", "strided",
    "misaligned" (a contiguous grad_out whose data pointer is not 16-byte aligned).
    """
    kw = dict(unbiased=unbiased, eps=eps, activation=activation, negative_slope=negative_slope)
    gen = torch.Generator().manual_seed(seed)
    n, c = x.shape[:2]
    grad_out = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype).to(x.device)
    if grad_layout is None and x.is_contiguous(memory_format=torch.channels_last):
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
    elif grad_layout == "channels_last":
        grad_out = grad_out.contiguous(memory_format=torch.channels_last)
    elif grad_layout == "strided":
        grad_out = grad_out.transpose(2, 3).contiguous().transpose(2, 3)
    elif grad_layout == "misaligned":
        buf = torch.empty(grad_out.numel() + 1, dtype=grad_out.dtype, device=grad_out.device)
        buf[1:].copy_(grad_out.reshape(-1))
        grad_out = buf[1:].view(grad_out.shape)

    def leaf(t):
        if t is None:
            return None, None
        if t.dim() == 2 and t.stride(0) == 0:  # expanded LIN parameter
            row = t[:1].detach().clone().requires_grad_()
            return row, row.expand(n, c)
        lf = t.detach().requires_grad_()
        return lf, lf

    xs, _ = leaf(x)
    (ws, w_in), (bs, b_in), (rs, _) = leaf(weight), leaf(bias), leaf(rho)
    y = fused(xs, w_in, b_in, rs, **kw)
    y.backward(grad_out)
    refs = list(reference_grads(x, weight, bias, rho, grad_out, **kw))
    # Eager PyTorch in float32 on the same input: the parameter gradients (sums over whole
    # planes, and grad_rho a difference of two such sums) may be as far off as it is.
    use_eager = baseline or x.dtype == torch.float32
    eager = list(reference_grads(x, weight, bias, rho, grad_out, dtype=x.dtype, **kw)) if use_eager else None
    tol = tol or tol_for(x.dtype)
    param_tol = param_tol or (1e-4 if x.dtype == torch.float32 else tol)
    # 1x1 planes: the instance part of grad_x is (g - mean g) * s_c * ..., exactly 0 but made of
    # terms of size |gamma| |g| / sqrt(eps) that cancel; measure the error against their size.
    x_floor = 0.0
    if x.shape[2] * x.shape[3] == 1:
        x_floor = (weight.detach().abs().max() * grad_out.abs().max()).item() / math.sqrt(eps)
    # grad_rho = gamma (s_c P - s_L Q) is a difference of terms of the size of grad_weight's (it
    # vanishes identically for C = 1): measure its error against their size.
    rho_floor = (refs[1].abs().max() * weight.detach().abs().max()).item()
    for i, (name, lf) in enumerate(zip(("x", "weight", "bias", "rho"), (xs, ws, bs, rs))):
        if lf is None:
            continue
        ref = refs[i]
        if lf.shape[0] == 1 and name in ("weight", "bias") and n > 1:
            ref = ref.sum(0, keepdim=True)
            if eager is not None:
                eager[i] = eager[i].sum(0, keepdim=True)
        got = lf.grad
        assert got is not None, f"no gradient for {name}"
        assert got.dtype == lf.dtype and got.shape == lf.shape
        assert torch.isfinite(got).all(), f"non-finite grad of {name}"
        floor = {"x": x_floor, "rho": rho_floor}.get(name, 0.0)
        limit = tol if name == "x" else param_tol
        if eager is not None and (baseline or name != "x"):
            limit = max(limit, 3 * rel_err(eager[i], ref, floor))
        err = rel_err(got, ref, floor)
        assert err < limit, f"grad {name}: rel err {err:.3e} >= {limit:.1e}"
    if x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        assert xs.grad.is_contiguous(memory_format=torch.channels_last)
    return xs, ws, bs, rs


# ------------------------------------------------------------------------------------------- parity

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
LAYOUTS = ["nchw", "channels_last"]
MODES = ["adalin", "instance", "lin"]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_forward_parity(dtype, layout, mode, activation):
    x, w, b, rho = make_inputs((4, 64, 32, 32), dtype, layout, mode)
    check_forward(x, w, b, rho, unbiased=(mode != "instance"), activation=activation)


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_backward_parity(dtype, layout, mode, activation):
    x, w, b, rho = make_inputs((4, 64, 32, 32), dtype, layout, mode)
    check_backward(x, w, b, rho, unbiased=(mode != "instance"), activation=activation)


# Shapes exercising every path: 1x1 planes, odd sizes (scalar loads), vectorised planes,
# channel counts that are / are not multiples of the vector width (channels_last), many
# planes (N*C > 65535), few planes with big planes (split reductions).
SHAPES = [
    (1, 1, 1, 1),
    (2, 3, 1, 1),
    (1, 1, 2, 2),
    (1, 8, 1, 3),
    (2, 3, 5, 7),
    (3, 5, 17, 19),
    (2, 6, 9, 9),
    (2, 12, 8, 8),
    (2, 16, 4, 4),
    (4, 64, 32, 32),
    (2, 256, 64, 64),
    (64, 1100, 2, 2),
    (1, 3, 128, 128),
    (1, 64, 256, 256),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_shapes_forward_backward(shape, layout, dtype):
    unbiased = shape[2] * shape[3] > 1
    x, w, b, rho = make_inputs(shape, dtype, layout, "adalin")
    check_forward(x, w, b, rho, unbiased=unbiased, activation="leaky_relu")
    check_backward(x, w, b, rho, unbiased=unbiased, activation="leaky_relu")


@pytest.mark.parametrize("layout", LAYOUTS)
def test_split_plane_path_instance_norm(layout):
    """N=1, C=64, 256x256: few planes, each reduced by several blocks."""
    for dtype in (torch.float32, torch.float16):
        x, w, b, rho = make_inputs((1, 64, 256, 256), dtype, layout, "instance")
        check_forward(x, w, b, rho, unbiased=False, activation="relu")
        check_backward(x, w, b, rho, unbiased=False, activation="relu")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_large_shape_forward(layout, dtype):
    x, w, b, rho = make_inputs((8, 64, 512, 512), dtype, layout, "adalin")
    check_forward(x, w, b, rho, unbiased=True, activation="relu")


@pytest.mark.slow
def test_large_shape_backward_float32():
    x, w, b, rho = make_inputs((8, 64, 512, 512), torch.float32, "nchw", "adalin")
    check_backward(x, w, b, rho, unbiased=True, activation=None)
    torch.cuda.empty_cache()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_hostile_mean_is_stable(layout):
    """|mean| >> std: the statistics must not cancel (no E[x^2] - E[x]^2)."""
    x, w, b, rho = make_inputs((2, 32, 64, 64), torch.float32, layout, "adalin", offset=300.0, scale=1.0)
    check_forward(x, w, b, rho, baseline=True)
    check_backward(x, w, b, rho, baseline=True)
    # Equal to normalizing the de-meaned input: y does not depend on a constant shift (up to
    # the shift's own rounding in x).
    y = fused(x, w, b, rho, unbiased=True, eps=1e-5, activation=None, negative_slope=0.2)
    assert torch.isfinite(y).all()


def test_float64_parity_and_half_params():
    x, w, b, rho = make_inputs((2, 8, 6, 5), torch.float64, "nchw", "adalin")
    check_forward(x, w, b, rho, activation="leaky_relu")
    check_backward(x, w, b, rho, activation="leaky_relu", param_tol=1e-10)
    # float16 x with float16 parameters (converted to float32 inside)
    x, w, b, rho = make_inputs((2, 16, 8, 8), torch.float16, "channels_last", "adalin", param_dtype=torch.float16)
    check_forward(x, w, b, rho)
    check_backward(x, w, b, rho)


def test_non_dense_and_misaligned_inputs():
    # Non-dense x: copied once; output NCHW contiguous.
    base = torch.randn(2, 8, 20, 20, device="cuda")
    x = base[:, :, ::2, 1::2]
    _, w, b, rho = make_inputs((2, 8, 10, 10), torch.float32)
    y = check_forward(x, w, b, rho)
    assert y.is_contiguous()
    check_backward(x, w, b, rho)
    # A contiguous view whose data pointer is not 16-byte aligned: scalar loads.
    buf = torch.randn(1 + 2 * 8 * 16 * 16, device="cuda")
    x = buf[1:].view(2, 8, 16, 16)
    assert x.data_ptr() % 16 != 0
    check_forward(x, w, b, rho)
    check_backward(x, w, b, rho)
    check_backward(x.contiguous(), w, b, rho, grad_layout="misaligned")
    # Strided parameters: a transposed (N, C) weight.
    wt = w.t().contiguous().t()
    assert not wt.is_contiguous()
    check_forward(x.contiguous(), wt, b, rho)


@pytest.mark.parametrize("grad_layout", ["nchw", "channels_last", "strided", "misaligned"])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_grad_out_in_another_memory_format(layout, grad_layout):
    x, w, b, rho = make_inputs((2, 16, 12, 12), torch.float32, layout, "adalin")
    check_backward(x, w, b, rho, grad_layout=grad_layout, activation="relu")


def test_runs_on_the_current_stream():
    x, w, b, rho = make_inputs((2, 32, 64, 64), torch.float32)
    expected = fused(x, w, b, rho, unbiased=True, eps=1e-5, activation=None, negative_slope=0.2)
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            y = fused(x, w, b, rho, unbiased=True, eps=1e-5, activation=None, negative_slope=0.2)
    torch.cuda.current_stream().wait_stream(stream)
    torch.cuda.synchronize()
    assert torch.equal(y, expected)  # deterministic


# ------------------------------------------------------------------------------------------- gradcheck

@pytest.mark.parametrize("activation", [None, "leaky_relu"])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("mode", ["adalin", "instance", "lin"])
def test_gradcheck_float64(mode, layout, activation):
    x, w, b, rho = make_inputs((2, 3, 4, 5), torch.float64, layout, mode)
    if mode == "lin":
        w, b = w[:1].clone(), b[:1].clone()
    inputs = [t.detach().clone(memory_format=torch.preserve_format).requires_grad_() for t in (x, w, b)]
    if rho is not None:
        inputs.append(rho.detach().clone().requires_grad_())
    n = x.shape[0]

    def fn(xx, ww, bb, rr=None):
        if mode == "lin":
            ww, bb = ww.expand(n, -1), bb.expand(n, -1)
        return fused(xx, ww, bb, rr, unbiased=(mode != "instance"), eps=1e-5, activation=activation,
                     negative_slope=0.2)

    assert torch.autograd.gradcheck(fn, inputs)


# ------------------------------------------------------------------------------------------- poisoned outputs

def _poison(*like, copies=3):
    """Fill the caching allocator with NaN blocks shaped like the coming allocations."""
    torch.cuda.synchronize()
    blocks = []
    for t in like:
        for _ in range(copies):
            blocks.append(torch.full(t.shape, float("nan"), dtype=t.dtype, device="cuda"))
            blocks.append(torch.full((t.numel() + 4096,), float("nan"), dtype=torch.float32, device="cuda"))
    blocks.append(torch.full((1 << 22,), float("nan"), device="cuda"))
    del blocks


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 7), (2, 16, 16, 16), (1, 64, 256, 256), (3, 40, 33, 31)],
                         ids=lambda s: "x".join(map(str, s)))
def test_poisoned_outputs(shape, layout, dtype):
    unbiased = shape[2] * shape[3] > 1
    kw = dict(unbiased=unbiased, eps=1e-5, activation="leaky_relu", negative_slope=0.2)
    x, w, b, rho = make_inputs(shape, dtype, layout, "adalin")
    stat = torch.empty(shape[0], shape[1], device="cuda")
    _poison(x, stat)
    y, mean_c, rstd_c, mean_l, rstd_l = torch.ops.cyclegan_ext.fused_norm_forward(
        x, w, b, rho, unbiased, 1e-5, 2, 0.2)
    torch.cuda.synchronize()
    for name, t in (("y", y), ("mean_c", mean_c), ("rstd_c", rstd_c), ("mean_l", mean_l), ("rstd_l", rstd_l)):
        assert torch.isfinite(t).all(), f"{name} has non-finite elements"
    assert rel_err(y, reference_forward(x, w, b, rho, **kw)) < tol_for(dtype)
    assert rel_err(mean_c, x.double().mean(dim=(2, 3))) < (1e-5 if dtype == torch.float32 else 1e-3)
    grad_out = torch.randn_like(x)
    _poison(x, stat)
    gx, gw, gb, gr = torch.ops.cyclegan_ext.fused_norm_backward(
        grad_out, x, w, b, rho, mean_c, rstd_c, mean_l, rstd_l, unbiased, 2, 0.2)
    torch.cuda.synchronize()
    for name, t in (("grad_x", gx), ("grad_weight", gw), ("grad_bias", gb), ("grad_rho", gr)):
        assert torch.isfinite(t).all(), f"{name} has non-finite elements"
    ref = reference_grads(x, w, b, rho, grad_out, **kw)
    x_floor = (w.abs().max() * grad_out.abs().max()).item() / math.sqrt(1e-5) if shape[2] * shape[3] == 1 else 0.0
    assert rel_err(gx, ref[0], x_floor) < tol_for(dtype)
    assert rel_err(gb, ref[2]) < (1e-4 if dtype == torch.float32 else HALF_TOL)
    rho_floor = (ref[1].abs().max() * w.abs().max()).item()  # see check_backward
    assert rel_err(gr.sum(0), ref[3], rho_floor) < (1e-4 if dtype == torch.float32 else HALF_TOL)


def test_poisoned_grad_rho_is_zero_for_instance_norm():
    x, w, b, _ = make_inputs((2, 8, 8, 8), torch.float32, "nchw", "instance")
    _, mean_c, rstd_c, mean_l, rstd_l = torch.ops.cyclegan_ext.fused_norm_forward(x, w, b, None, False, 1e-5, 0, 0.2)
    _poison(torch.empty(2, 8, device="cuda"), x)
    _, _, _, gr = torch.ops.cyclegan_ext.fused_norm_backward(
        torch.randn_like(x), x, w, b, None, mean_c, rstd_c, mean_l, rstd_l, False, 0, 0.2)
    assert torch.equal(gr, torch.zeros_like(gr))


# ------------------------------------------------------------------------------------------- layers, autocast

@pytest.mark.parametrize("autocast_dtype", [torch.bfloat16, torch.float16])
def test_autocast_layers_output_dtype_is_x_dtype(autocast_dtype):
    n, c = 2, 16
    adalin = cyclegan_ext.FusedAdaLIN(c).cuda()
    lin = cyclegan_ext.FusedLIN(c).cuda()
    inorm = cyclegan_ext.FusedInstanceNorm2d(c, affine=True, activation="relu").cuda()
    conv = torch.nn.Conv2d(3, c, 3, padding=1).cuda()
    gamma = torch.randn(n, c, device="cuda")
    beta = torch.randn(n, c, device="cuda")
    img = torch.randn(n, 3, 32, 32, device="cuda")
    with torch.autocast("cuda", dtype=autocast_dtype):
        h = conv(img)  # autocast: half-precision conv output
        assert h.dtype == autocast_dtype
        out_a = adalin(h, gamma, beta)
        out_l = lin(h)
        out_i = inorm(h)
        out_f = adalin(h.float(), gamma, beta)  # float32 x stays float32
    for out in (out_a, out_l, out_i):
        assert out.dtype == autocast_dtype
        assert torch.isfinite(out).all()
    assert out_f.dtype == torch.float32
    # Same values as the float32 reference on the half-precision input.
    ref = reference.adalin(h.detach().double(), gamma.double(), beta.double(), adalin.rho.detach().double(), 1e-5,
                           True)
    assert rel_err(out_a, ref) < HALF_TOL
    (out_a.float().sum() + out_l.float().square().mean() + out_i.float().mean()).backward()
    for p in (adalin.rho, lin.rho, lin.gamma, lin.beta, inorm.weight, inorm.bias, conv.weight):
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()


def test_layers_match_reference_layers_on_cuda():
    c = 32
    x = torch.randn(3, c, 24, 24, device="cuda")
    gamma, beta = torch.randn(3, c, device="cuda"), torch.randn(3, c, device="cuda")
    fa, ra = cyclegan_ext.FusedAdaLIN(c).cuda(), reference.AdaLIN(c).cuda()
    fl, rl = cyclegan_ext.FusedLIN(c).cuda(), reference.LIN(c).cuda()
    fi, ri = cyclegan_ext.FusedInstanceNorm2d(c, affine=True).cuda(), torch.nn.InstanceNorm2d(c, affine=True).cuda()
    assert rel_err(fa(x, gamma, beta), ra(x, gamma, beta)) < 1e-5
    assert rel_err(fl(x), rl(x)) < 1e-5
    assert rel_err(fi(x), ri(x)) < 1e-5
    xc = x.contiguous(memory_format=torch.channels_last)
    assert rel_err(fi(xc), ri(x)) < 1e-5


# ------------------------------------------------------------------------------------------- opcheck

@pytest.mark.parametrize("layout", LAYOUTS)
def test_opcheck_cuda(layout):
    x, w, b, rho = make_inputs((2, 8, 6, 6), torch.float32, layout, "adalin")
    args = (x.requires_grad_(), w.requires_grad_(), b.requires_grad_(), rho.requires_grad_(), True, 1e-5, 2, 0.2)
    torch.library.opcheck(torch.ops.cyclegan_ext.fused_norm_forward.default, args)
    x2 = x.detach()
    y, mean_c, rstd_c, mean_l, rstd_l = torch.ops.cyclegan_ext.fused_norm_forward(
        x2, w.detach(), b.detach(), rho.detach(), True, 1e-5, 2, 0.2)
    bargs = (torch.randn_like(y), x2, w.detach(), b.detach(), rho.detach(), mean_c, rstd_c, mean_l, rstd_l, True, 2,
             0.2)
    torch.library.opcheck(torch.ops.cyclegan_ext.fused_norm_backward.default, bargs)


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_denormal_variance_with_zero_eps_matches_the_cpu(layout):
    """A plane whose variance (~1e-40) is below float32's normal range, with eps 0: the kernels
    are built without fast math (no flush-to-zero), so rstd is finite and large, as on the CPU,
    instead of inf. A denormal variance of ~9e-41 keeps only ~16 significant bits
    (9e-41 / 1.4e-45 ~ 2^16), so each device's rstd is good to ~2^-16 ~ 1.5e-5 relative,
    whatever its summation order: rtol 1e-4 bounds the difference of the two."""
    x = torch.zeros(1, 2, 4, 4)
    x[:, :, 0, 0] = 4e-20  # biased variance = (4e-20)^2 * 15 / 256 ~ 9e-41, below 1.18e-38
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    expected = cyclegan_ext.fused_norm(x, unbiased=False, eps=0.0)
    got = cyclegan_ext.fused_norm(x.cuda(), unbiased=False, eps=0.0)
    assert torch.isfinite(expected).all() and torch.isfinite(got).all()
    torch.testing.assert_close(got.cpu(), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("weight_shape", [None, "C", "1C11"])
def test_optional_and_per_channel_params_on_cuda(weight_shape):
    """weight / bias absent or per channel on the GPU: values and gradients as on the CPU."""
    n, c = 2, 8
    shape = {None: None, "C": (c,), "1C11": (1, c, 1, 1)}[weight_shape]
    x = torch.randn(n, c, 6, 5, dtype=torch.float64, requires_grad=True)
    w = None if shape is None else (torch.rand(shape, dtype=torch.float64) + 0.5).requires_grad_()
    rho = torch.rand(c, dtype=torch.float64, requires_grad=True)
    inputs = [t for t in (x, w, rho) if t is not None]
    results = []
    for device in ("cpu", "cuda"):
        moved = [t.detach().to(device).requires_grad_() for t in inputs]
        xd, wd, rd = moved[0], (moved[1] if w is not None else None), moved[-1]
        y = cyclegan_ext.fused_norm(xd, wd, wd, rd, unbiased=True, eps=1e-5, activation="relu")
        grads = torch.autograd.grad(y, moved, torch.ones_like(y).mul(0.5))
        results.append([y.cpu(), *[g.cpu() for g in grads]])
    for cpu_value, cuda_value in zip(*results):
        torch.testing.assert_close(cuda_value, cpu_value)  # float64 on both: default float64 tolerances
