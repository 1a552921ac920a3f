"""Bad input gets a clear Python exception (ValueError / TypeError) that names the argument;
never a crash, a hang, or a silent wrong answer. The raw ops refuse bad arguments too."""
import pytest
import torch

import cyclegan_ext
from cyclegan_ext import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN

fwd = torch.ops.cyclegan_ext.fused_norm_forward
bwd = torch.ops.cyclegan_ext.fused_norm_backward

N, C, H, W = 2, 3, 4, 5


def x_ok(**kw):
    return torch.randn(N, C, H, W, **kw)


def gb(n=N, c=C, **kw):
    return torch.randn(n, c, **kw), torch.randn(n, c, **kw)


# ----------------------------------------------------------------------------- layers

LAYERS = {
    "adalin": lambda **kw: (FusedAdaLIN(C, **kw), lambda m, x: m(x, *gb(x.shape[0], x.shape[1], dtype=x.dtype))),
    "lin": lambda **kw: (FusedLIN(C, **kw), lambda m, x: m(x)),
    "instance": lambda **kw: (FusedInstanceNorm2d(C, affine=True, **kw), lambda m, x: m(x)),
}


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", [(C,), (N, C), (N, C, H, W, 2)], ids=["1d", "2d", "5d"])
def test_wrong_rank(layer, shape):
    module, call = LAYERS[layer]()
    with pytest.raises(ValueError, match=r"expected x of shape \(N, C, H, W\)"):
        module(torch.randn(shape), *gb()) if layer == "adalin" else call(module, torch.randn(shape))


def test_unbatched_is_only_for_instance_norm():
    with pytest.raises(ValueError, match=r"x of shape \(N, C, H, W\)"):
        FusedAdaLIN(C)(torch.randn(C, H, W), *gb())
    with pytest.raises(ValueError, match=r"x of shape \(N, C, H, W\)"):
        FusedLIN(C)(torch.randn(C, H, W))


@pytest.mark.parametrize("layer", LAYERS)
def test_channel_count_differs_from_num_features(layer):
    module, call = LAYERS[layer]()
    with pytest.raises(ValueError, match="num_features") as info:
        call(module, torch.randn(N, C + 1, H, W))
    assert str(C) in str(info.value) and str(C + 1) in str(info.value)


@pytest.mark.parametrize("which", ["gamma", "beta"])
@pytest.mark.parametrize("shape", [(C,), (N, C + 1), (N + 1, C), (N, C, 1, 1), (1, C)],
                         ids=["C", "N_Cplus1", "Nplus1_C", "NC11", "1_C"])
def test_adalin_gamma_beta_wrong_shape(which, shape):
    gamma, beta = gb()
    bad = torch.randn(shape)
    args = (bad, beta) if which == "gamma" else (gamma, bad)
    with pytest.raises(ValueError, match=rf"{which} of shape \(N, C\)"):
        FusedAdaLIN(C)(x_ok(), *args)


@pytest.mark.parametrize("which", ["gamma", "beta"])
def test_adalin_gamma_beta_not_a_tensor(which):
    gamma, beta = gb()
    args = (gamma.tolist(), beta) if which == "gamma" else (gamma, None)
    with pytest.raises(TypeError, match=which):
        FusedAdaLIN(C)(x_ok(), *args)


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64])
def test_non_float_x(layer, dtype):
    module, call = LAYERS[layer]()
    x = x_ok()
    x = (x > 0) if dtype == torch.bool else x.to(dtype)
    with pytest.raises(TypeError, match=r"x to be a floating point tensor") as info:
        if layer == "adalin":
            module(x, *gb())
        else:
            call(module, x)
    assert str(dtype) in str(info.value)


def test_non_tensor_x():
    with pytest.raises(TypeError, match="x to be a torch.Tensor"):
        FusedLIN(C)(x_ok().numpy())


@pytest.mark.parametrize("which", ["gamma", "beta"])
@pytest.mark.parametrize("dtype", [torch.int64, torch.bool, torch.float64, torch.float16])
def test_adalin_gamma_beta_bad_dtype(which, dtype):
    """Integer / bool gamma or beta, and float64 (or half) gamma with float32 x."""
    gamma, beta = gb()
    bad = (torch.rand(N, C) > 0.5) if dtype == torch.bool else torch.randn(N, C).to(dtype)
    args = (bad, beta) if which == "gamma" else (gamma, bad)
    with pytest.raises(TypeError, match=rf"{which} has dtype {dtype}"):
        FusedAdaLIN(C)(x_ok(), *args)


@pytest.mark.parametrize("layer,param", [("adalin", "rho"), ("lin", "rho"), ("instance", "weight")])
def test_layer_params_with_another_dtype(layer, param):
    module, call = LAYERS[layer]()
    module.double()
    with pytest.raises(TypeError, match=rf"{param} has dtype torch.float64 but x has dtype torch.float32"):
        call(module, x_ok()) if layer != "adalin" else module(x_ok(), *gb())


@pytest.mark.parametrize("which", ["gamma", "beta"])
def test_adalin_gamma_beta_on_another_device(which):
    gamma, beta = gb()
    bad = torch.empty(N, C, device="meta")
    args = (bad, beta) if which == "gamma" else (gamma, bad)
    with pytest.raises(ValueError, match=rf"{which} is on meta but x is on cpu"):
        FusedAdaLIN(C)(x_ok(), *args)


@pytest.mark.parametrize("layer,param", [("adalin", "rho"), ("lin", "rho"), ("instance", "weight")])
def test_layer_params_on_another_device(layer, param):
    module, call = LAYERS[layer]()
    module.to("meta")
    with pytest.raises(ValueError, match=rf"{param} is on meta but x is on cpu"):
        call(module, x_ok()) if layer != "adalin" else module(x_ok(), *gb())


@pytest.mark.parametrize("training", [True, False])
def test_instance_norm_running_stats_on_another_device(training):
    module = FusedInstanceNorm2d(C, track_running_stats=True).to("meta").train(training)
    with pytest.raises(ValueError, match="running_mean is on meta but x is on cpu"):
        module(x_ok())


def test_x_on_meta_with_params_on_cpu():
    with pytest.raises(ValueError, match="rho is on cpu but x is on meta"):
        FusedAdaLIN(C)(torch.empty(N, C, H, W, device="meta"), *(t.to("meta") for t in gb()))


EMPTY_SHAPES = [(0, C, H, W), (N, C, 0, W), (N, C, H, 0)]


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=["N0", "H0", "W0"])
def test_empty_input_gives_an_empty_output_as_nn_instance_norm(layer, shape):
    """nn.InstanceNorm2d (and U-GAT-IT's layers) return an empty result for an input with no
    elements; so do the fused layers, forward and backward."""
    module, call = LAYERS[layer]()
    x = torch.randn(shape, requires_grad=True)
    y = call(module, x)
    assert y.shape == x.shape
    y.sum().backward()
    assert x.grad.shape == x.shape
    for p in module.parameters():
        assert p.grad is None or torch.equal(p.grad, torch.zeros_like(p))


@pytest.mark.parametrize("shape", EMPTY_SHAPES, ids=["N0", "H0", "W0"])
def test_empty_input_matches_nn_instance_norm(shape):
    x = torch.randn(shape)
    assert FusedInstanceNorm2d(C)(x).shape == torch.nn.InstanceNorm2d(C)(x).shape == x.shape
    tracked = FusedInstanceNorm2d(C, track_running_stats=True)
    tracked(x)
    assert torch.equal(tracked.running_mean, torch.zeros(C)) and torch.equal(tracked.running_var, torch.ones(C))


@pytest.mark.parametrize("layer", ["adalin", "lin"])
@pytest.mark.parametrize("shape", [(N, C, 1, 1), (1, C, 1, 1)], ids=["N2", "N1"])
def test_single_pixel_with_unbiased_variance(layer, shape):
    module, call = LAYERS[layer]()
    assert module.unbiased
    with pytest.raises(ValueError, match=r"unbiased variance needs H\*W > 1.*unbiased=False") as info:
        call(module, torch.randn(shape))
    assert "x of shape" in str(info.value)
    module.unbiased = False  # the documented way out: biased variance is well defined
    y = call(module, torch.randn(shape))
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("activation", ["gelu", "ReLU", "leaky-relu", 1, ""])
def test_unknown_activation_name(activation):
    for ctor in (FusedAdaLIN, FusedLIN, FusedInstanceNorm2d):
        with pytest.raises(ValueError, match="activation must be one of") as info:
            ctor(C, activation=activation)
        assert repr(activation) in str(info.value)
    with pytest.raises(ValueError, match="activation must be one of"):
        cyclegan_ext.fused_norm(x_ok(), *gb(), unbiased=True, eps=1e-5, activation=activation)


def test_none_string_activation_is_accepted():
    x = x_ok()
    torch.testing.assert_close(FusedLIN(C, activation="none")(x), FusedLIN(C)(x))


# ---------------------------------------------------------------- python entry point

@pytest.mark.parametrize("name,kwargs,exc,pattern", [
    ("weight_shape", dict(weight=torch.randn(C + 1)), ValueError, "weight of shape"),
    ("weight_1C", dict(weight=torch.randn(1, C)), ValueError, "weight of shape"),
    ("bias_shape", dict(bias=torch.randn(N, C + 1)), ValueError, "bias of shape"),
    ("rho_shape", dict(rho=torch.rand(C + 1)), ValueError, "rho of shape"),
    ("rho_dtype", dict(rho=torch.rand(C, dtype=torch.float64)), TypeError, "rho has dtype"),
    ("weight_dtype", dict(weight=torch.randn(N, C, dtype=torch.float64)), TypeError, "weight has dtype"),
    ("bias_int", dict(bias=torch.ones(N, C, dtype=torch.int32)), TypeError, "bias has dtype"),
    ("x_int", dict(x=torch.ones(N, C, H, W, dtype=torch.int64)), TypeError, "x to be a floating point"),
    ("x_rank", dict(x=torch.randn(C, H, W)), ValueError, r"x of shape \(N, C, H, W\)"),
    ("rho_per_sample", dict(rho=torch.rand(N, C)), ValueError, "rho of shape"),
    ("unbiased_1x1", dict(x=torch.randn(N, C, 1, 1)), ValueError, "unbiased variance needs H\\*W > 1"),
    ("negative_eps", dict(eps=-1e-5), ValueError, "eps must be >= 0"),
])
def test_fused_norm_bad_arguments(name, kwargs, exc, pattern):
    args = dict(x=x_ok(), weight=torch.randn(N, C), bias=torch.randn(N, C), rho=torch.rand(C),
                unbiased=True, eps=1e-5)
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        cyclegan_ext.fused_norm(**args)


# ----------------------------------------------------------------------------- raw ops

def _fwd_args(**over):
    args = dict(x=x_ok(), weight=torch.randn(N, C), bias=torch.randn(N, C), rho=torch.rand(C),
                unbiased=True, eps=1e-5, activation=0, negative_slope=0.2)
    args.update(over)
    return tuple(args.values())


@pytest.mark.parametrize("over,exc", [
    (dict(activation=3), ValueError),
    (dict(activation=-1), ValueError),
    (dict(eps=float("-inf")), ValueError),
    (dict(x=torch.randn(N, C, H)), ValueError),
    (dict(x=torch.ones(N, C, H, W, dtype=torch.bool)), TypeError),
    (dict(weight=torch.randn(N * C)), ValueError),
    (dict(rho=torch.rand(C, 1)), ValueError),
    (dict(x=torch.randn(N, C, 1, 1)), ValueError),
], ids=["act3", "act-1", "eps-inf", "rank3", "bool", "weight_flat", "rho_Cx1", "unbiased_1x1"])
def test_raw_forward_op_refuses(over, exc):
    with pytest.raises(exc, match="fused_norm"):
        fwd(*_fwd_args(**over))


def _bwd_args(**over):
    x, w, b, r = x_ok(), torch.randn(N, C), torch.randn(N, C), torch.rand(C)
    _, mean_c, rstd_c, mean_l, rstd_l = fwd(x, w, b, r, True, 1e-5, 0, 0.2)
    args = dict(grad_out=torch.randn_like(x), x=x, weight=w, bias=b, rho=r, mean_c=mean_c, rstd_c=rstd_c,
                mean_l=mean_l, rstd_l=rstd_l, unbiased=True, activation=0, negative_slope=0.2)
    args.update(over)
    return tuple(args.values())


@pytest.mark.parametrize("over,exc", [
    (dict(grad_out=torch.randn(N, C, H, W + 1)), ValueError),
    (dict(grad_out=torch.randn(N, C, H, W, dtype=torch.float64)), TypeError),
    (dict(mean_c=torch.randn(N)), ValueError),
    (dict(rstd_l=torch.randn(N, C)), ValueError),
], ids=["grad_shape", "grad_dtype", "mean_c_shape", "rstd_l_shape"])
def test_raw_backward_op_refuses(over, exc):
    with pytest.raises(exc, match="fused_norm_backward"):
        bwd(*_bwd_args(**over))


# A meta tensor among CPU arguments sends the call to the fake (Meta) kernel registered in
# cyclegan_ext/ops.py, which checks nothing and returns x.new_empty(...) outputs: uninitialised
# CPU memory handed back as the result. aten ops (add, layer_norm, group_norm) raise "Tensor on
# device meta is not on the expected device cpu!" instead. (The layers check devices
# themselves, see test_*_on_another_device above; a real second device, e.g. CUDA, reaches
# that device's kernel, whose C++ checks refuse the mix.)
META_CASES = [
    ("fused_norm_weight", lambda: cyclegan_ext.fused_norm(x_ok(), torch.empty(N, C, device="meta"),
                                                          torch.randn(N, C), unbiased=True, eps=1e-5)),
    ("fused_norm_rho", lambda: cyclegan_ext.fused_norm(x_ok(), *gb(), torch.empty(C, device="meta"),
                                                       unbiased=True, eps=1e-5)),
    ("raw_forward_bias", lambda: fwd(*_fwd_args(bias=torch.empty(N, C, device="meta")))),
    ("raw_backward_grad_out", lambda: bwd(*_bwd_args(grad_out=torch.empty(N, C, H, W, device="meta")))),
    ("raw_backward_mean_c", lambda: bwd(*_bwd_args(mean_c=torch.empty(N, C, device="meta")))),
    ("raw_backward_weight", lambda: bwd(*_bwd_args(weight=torch.empty(N, C, device="meta")))),
]


@pytest.mark.parametrize("call", [c[1] for c in META_CASES], ids=[c[0] for c in META_CASES])
def test_op_with_one_meta_argument_refuses(call):
    with pytest.raises((ValueError, RuntimeError), match="meta"):
        call()


# The backward op validates its parameter arguments as strictly as the forward.
BWD_UNCHECKED = [
    # weight (1, C) for N = 2: the kernel indexes weight[n * C + c] and reads past the end
    (dict(weight=torch.randn(1, C)), ValueError, "weight_1xC_out_of_bounds"),
    (dict(bias=torch.randn(N * C + 5)), ValueError, "bias_flat"),
    (dict(rho=torch.rand(1)), ValueError, "rho_shape"),
    (dict(weight=torch.ones(N, C, dtype=torch.int64)), TypeError, "weight_int"),
    (dict(activation=9), ValueError, "activation_9"),
    # H*W = 1 with unbiased=True: the forward refuses, the backward returns inf
    (dict(grad_out=torch.randn(N, C, 1, 1), x=torch.randn(N, C, 1, 1)), ValueError, "unbiased_1x1"),
]


@pytest.mark.parametrize("over,exc", [case[:2] for case in BWD_UNCHECKED], ids=[c[2] for c in BWD_UNCHECKED])
def test_raw_backward_op_refuses_bad_params(over, exc):
    with pytest.raises(exc, match="fused_norm"):
        bwd(*_bwd_args(**over))


def test_raw_backward_refuses_a_weight_too_short_for_the_batch():
    """weight (1, C) with N = 2 would make the kernel read past weight's end: refused."""
    x, w, b = x_ok(), torch.randn(1, C), torch.randn(1, C)
    _, mean_c, rstd_c, mean_l, rstd_l = fwd(x, w.expand(N, C), b.expand(N, C), None, True, 1e-5, 0, 0.2)
    g = torch.randn_like(x)
    with pytest.raises(ValueError, match="weight"):
        bwd(g, x, w, b, None, mean_c, rstd_c, mean_l, rstd_l, True, 0, 0.2)


def test_raw_ops_accept_float32_params_with_half_x():
    """The documented mixed-precision exception to 'same dtype' (half / bfloat16 x)."""
    for dtype in (torch.float16, torch.bfloat16):
        x = x_ok().to(dtype)
        y, mean_c, *_ = fwd(x, torch.ones(N, C), torch.zeros(N, C), None, False, 1e-5, 0, 0.2)
        assert y.dtype == dtype and mean_c.dtype == torch.float32
        expected = torch.nn.functional.instance_norm(x.float())
        torch.testing.assert_close(y.float(), expected, rtol=2e-2, atol=2e-2)
