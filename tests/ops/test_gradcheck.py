"""gradcheck / gradgradcheck in float64 through the fused op and every layer option.

First-order gradients go through the compiled backward kernel (gradcheck's analytic
Jacobian is computed with create_graph=False); second-order (gradgradcheck, WGAN-GP)
exercises the create_graph=True path.
"""
import pytest
import torch

from op_inputs import make_op_inputs  # tests/op_inputs.py
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

import cyclegan_ext
from cyclegan_ext import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN

SHAPE = (2, 3, 4, 5)
KINK_MARGIN = 1e-2  # gradcheck perturbs by 1e-6: stay far from the activation's kink


def _away_from_kink(make, pre_activation, tries=200):
    """Draw inputs with make() until no pre-activation value is within KINK_MARGIN of 0."""
    for _ in range(tries):
        inputs = make()
        with torch.no_grad():
            pre = pre_activation(*inputs)
        if pre.abs().min() > KINK_MARGIN:
            return inputs
    raise AssertionError("could not draw inputs away from the activation kink")


def _op_inputs(device, memory_format, with_rho, shape=SHAPE):
    layout = "channels_last" if memory_format == torch.channels_last else "nchw"
    return make_op_inputs(shape, torch.float64, layout, "adalin" if with_rho else "instance", offset=0.5, scale=2.0,
                          device=device)


def _requires_grad(tensors):
    return tuple(t.requires_grad_() if t is not None else None for t in tensors)


@pytest.mark.parametrize("activation", [None, "relu", "leaky_relu"])
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("with_rho", [True, False], ids=["adalin", "instance"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
def test_gradcheck_fused_norm(device, activation, unbiased, with_rho, memory_format, norm_ref):
    eps = 1e-5

    def pre_activation(x, w, b, rho):
        return norm_ref(x, w, b, rho, unbiased=unbiased, eps=eps)

    x, w, b, rho = _away_from_kink(lambda: _op_inputs(device, memory_format, with_rho), pre_activation)
    inputs = _requires_grad((x, w, b) + ((rho,) if with_rho else ()))
    assert inputs[0].is_contiguous(memory_format=memory_format)

    def f(x, w, b, rho=None):
        return cyclegan_ext.fused_norm(x, w, b, rho, unbiased=unbiased, eps=eps, activation=activation,
                                       negative_slope=0.3)

    assert gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("activation", [None, "leaky_relu"])
def test_gradcheck_non_contiguous_input(activation, norm_ref):
    """A transposed view (neither NCHW- nor channels_last-contiguous) goes through the copy path."""
    opts = {"dtype": torch.float64}

    def make():  # xt is stored as (N, C, W, H); the op sees its (N, C, H, W) transpose
        return torch.randn(2, 3, 5, 4, **opts) * 2, torch.randn(2, 3, **opts), torch.randn(2, 3, **opts), \
            torch.rand(3, **opts)

    def pre(xt, w, b, rho):
        return norm_ref(xt.transpose(2, 3), w, b, rho, unbiased=True, eps=1e-5)

    inputs = _requires_grad(_away_from_kink(make, pre))

    def f(xt, w, b, rho):
        view = xt.transpose(2, 3)
        assert not view.is_contiguous() and not view.is_contiguous(memory_format=torch.channels_last)
        return cyclegan_ext.fused_norm(view, w, b, rho, unbiased=True, eps=1e-5, activation=activation)

    assert gradcheck(f, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_gradcheck_large_eps_and_single_pixel_biased():
    """H*W = 1 with unbiased=False: the instance term is 0 (var 0), eps keeps it finite."""
    x = torch.randn(2, 4, 1, 1, dtype=torch.float64, requires_grad=True)
    w = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, 4, dtype=torch.float64, requires_grad=True)
    rho = torch.rand(4, dtype=torch.float64, requires_grad=True)

    def f(x, w, b, rho):
        return cyclegan_ext.fused_norm(x, w, b, rho, unbiased=False, eps=0.1)

    assert gradcheck(f, (x, w, b, rho), eps=1e-6, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------- layers

def _layer_gradcheck(layer, param_names, x, *extra):
    params = tuple(getattr(layer, name).detach().clone().requires_grad_() for name in param_names)
    x = x.detach().requires_grad_()
    extra = tuple(t.detach().requires_grad_() for t in extra)
    k = len(extra)

    def f(x, *rest):
        call_args, ps = rest[:k], rest[k:]
        return functional_call(layer, dict(zip(param_names, ps)), (x, *call_args))

    return gradcheck(f, (x, *extra, *params), eps=1e-6, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("affine,bias", [(False, True), (True, True), (True, False)],
                         ids=["plain", "affine", "affine_nobias"])
@pytest.mark.parametrize("track_running_stats", [False, True])
@pytest.mark.parametrize("activation", [None, "relu"])
def test_gradcheck_instance_norm_layer(device, affine, bias, track_running_stats, activation):
    layer = FusedInstanceNorm2d(3, affine=affine, track_running_stats=track_running_stats, bias=bias,
                                activation=activation, dtype=torch.float64, device=device)
    if affine:
        with torch.no_grad():
            layer.weight.copy_(torch.randn(3) + 1.5)
            if layer.bias is not None:
                layer.bias.copy_(torch.randn(3))
    names = [n for n, _ in layer.named_parameters()]
    assert len(names) == (0 if not affine else 2 if bias else 1)

    def pre(x):
        return nn.functional.instance_norm(x, weight=layer.weight, bias=layer.bias, eps=layer.eps)

    (x,) = _away_from_kink(lambda: (torch.randn(SHAPE, dtype=torch.float64, device=device),), pre)
    layer.train()
    assert _layer_gradcheck(layer, names, x)
    if track_running_stats:  # eval with running stats: a fixed affine map
        layer.eval()
        assert _layer_gradcheck(layer, names, x)


def test_gradcheck_instance_norm_layer_unbatched():
    layer = FusedInstanceNorm2d(3, affine=True, dtype=torch.float64)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
    x = torch.randn(3, 4, 5, dtype=torch.float64)
    assert _layer_gradcheck(layer, ["weight", "bias"], x)


@pytest.mark.parametrize("activation", [None, "leaky_relu"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_gradcheck_adalin_layer(device, activation, unbiased, norm_ref):
    layer = FusedAdaLIN(3, unbiased=unbiased, activation=activation, dtype=torch.float64, device=device)
    with torch.no_grad():
        layer.rho.copy_(torch.tensor([0.2, 0.9, 0.5]).reshape(1, 3, 1, 1))
    opts = {"dtype": torch.float64, "device": device}

    def make():
        return torch.randn(SHAPE, **opts), torch.randn(2, 3, **opts), torch.randn(2, 3, **opts)

    def pre(x, g, b):
        return norm_ref(x, g, b, layer.rho.reshape(-1), unbiased=unbiased, eps=layer.eps)

    x, gamma, beta = _away_from_kink(make, pre)
    assert _layer_gradcheck(layer, ["rho"], x, gamma, beta)


@pytest.mark.parametrize("channels_last", [False, True])
def test_gradcheck_lin_layer(device, channels_last, norm_ref):
    layer = FusedLIN(3, activation="relu", dtype=torch.float64, device=device)
    with torch.no_grad():
        layer.rho.copy_(torch.tensor([0.1, 0.6, 1.0]).reshape(1, 3, 1, 1))
        layer.gamma.copy_(torch.tensor([1.2, -0.7, 0.9]).reshape(1, 3, 1, 1))
        layer.beta.copy_(torch.tensor([0.3, 0.1, -0.2]).reshape(1, 3, 1, 1))
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    def pre(x):
        n = x.shape[0]
        return norm_ref(x, layer.gamma.reshape(1, -1).expand(n, -1), layer.beta.reshape(1, -1).expand(n, -1),
                        layer.rho.reshape(-1), unbiased=layer.unbiased, eps=layer.eps)

    (x,) = _away_from_kink(
        lambda: (torch.randn(SHAPE, dtype=torch.float64, device=device).contiguous(memory_format=fmt),),
        pre)
    assert _layer_gradcheck(layer, ["rho", "gamma", "beta"], x)


# ------------------------------------------------------------------- second derivatives

@pytest.mark.parametrize("activation", [None, "leaky_relu"])
@pytest.mark.parametrize("unbiased", [True, False])
def test_gradgradcheck_adalin(device, activation, unbiased, norm_ref):
    eps = 1e-5

    def pre(x, w, b, rho):
        return norm_ref(x, w, b, rho, unbiased=unbiased, eps=eps)

    inputs = _requires_grad(_away_from_kink(lambda: _op_inputs(device, torch.contiguous_format, True,
                                                               shape=(2, 3, 3, 4)), pre))

    def f(x, w, b, rho):
        return cyclegan_ext.fused_norm(x, w, b, rho, unbiased=unbiased, eps=eps, activation=activation)

    assert gradgradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("affine", [False, True])
@pytest.mark.parametrize("channels_last", [False, True])
def test_gradgradcheck_instance_norm(device, affine, channels_last):
    layer = FusedInstanceNorm2d(3, affine=affine, dtype=torch.float64, device=device)
    names = [n for n, _ in layer.named_parameters()]
    if affine:
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([0.5, 1.5, -2.0]))
            layer.bias.copy_(torch.tensor([0.1, -0.3, 0.2]))
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, device=device).contiguous(memory_format=fmt)
    params = tuple(getattr(layer, n).detach().clone().requires_grad_() for n in names)

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x,))

    assert gradgradcheck(f, (x.requires_grad_(), *params), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_gradgradcheck_lin_layer():
    """FusedLIN passes gamma/beta as (N, C) expansions of (1, C, 1, 1) parameters."""
    layer = FusedLIN(3, dtype=torch.float64)
    names = ["rho", "gamma", "beta"]
    params = (torch.tensor([0.2, 0.7, 1.0], dtype=torch.float64).reshape(1, 3, 1, 1).requires_grad_(),
              torch.tensor([1.3, -0.6, 0.8], dtype=torch.float64).reshape(1, 3, 1, 1).requires_grad_(),
              torch.tensor([0.1, 0.2, -0.3], dtype=torch.float64).reshape(1, 3, 1, 1).requires_grad_())
    x = torch.randn(2, 3, 3, 4, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        return functional_call(layer, dict(zip(names, ps)), (x,))

    assert gradgradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


def test_double_backward_matches_reference_hessian_vector_product(norm_ref):
    """d/dx <v, d/dx <u, y>> through the op equals the same from the float64 reference."""
    x, w, b, rho = _op_inputs("cpu", torch.contiguous_format, True, shape=(2, 4, 5, 6))
    u = torch.randn_like(x)

    def hvp(fn):
        xx = x.clone().requires_grad_()
        ww, bb, rr = (t.clone().requires_grad_() for t in (w, b, rho))
        y = fn(xx, ww, bb, rr)
        (gx,) = torch.autograd.grad(y, xx, u, create_graph=True)
        return torch.autograd.grad((gx ** 2).sum(), (xx, ww, rr))  # dx does not depend on bias

    ours = hvp(lambda *a: cyclegan_ext.fused_norm(*a, unbiased=True, eps=1e-5))
    theirs = hvp(lambda *a: norm_ref(*a, unbiased=True, eps=1e-5))
    for got, want in zip(ours, theirs):
        assert want.abs().max() > 0
        torch.testing.assert_close(got, want, rtol=1e-9, atol=1e-9)


class _TinyDiscriminator(nn.Module):
    def __init__(self, norm):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, stride=2, padding=1)
        self.norm = norm
        self.act = nn.Identity() if isinstance(norm, FusedInstanceNorm2d) else nn.LeakyReLU(0.2)
        self.conv2 = nn.Conv2d(6, 1, 3, padding=1)

    def forward(self, x):
        return self.conv2(self.act(self.norm(self.conv1(x))))


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_wgan_gp_gradient_penalty_matches_nn_instance_norm(device, dtype):
    """A WGAN-GP gradient penalty (create_graph=True) through a discriminator with our instance
    norm gives the same penalty and parameter gradients as with nn.InstanceNorm2d."""
    ours = _TinyDiscriminator(FusedInstanceNorm2d(6, affine=True, activation="leaky_relu")).to(device, dtype)
    theirs = _TinyDiscriminator(nn.InstanceNorm2d(6, affine=True)).to(device, dtype)
    with torch.no_grad():
        ours.norm.weight.copy_(torch.rand(6) + 0.5)
        ours.norm.bias.copy_(torch.randn(6) * 0.1)
    theirs.load_state_dict(ours.state_dict())

    real = torch.randn(3, 3, 16, 16, device=device, dtype=dtype)
    fake = torch.randn(3, 3, 16, 16, device=device, dtype=dtype)
    alpha = torch.rand(3, 1, 1, 1, device=device, dtype=dtype)

    def penalty(disc):
        disc.zero_grad()
        interp = (alpha * real + (1 - alpha) * fake).requires_grad_()
        out = disc(interp)
        (grad,) = torch.autograd.grad(out.sum(), interp, create_graph=True)
        gp = ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
        gp.backward()
        # conv2.bias (and the norm's bias, through the activation mask only) get no / zero grads
        return gp.detach(), {n: torch.zeros_like(p) if p.grad is None else p.grad.clone()
                             for n, p in disc.named_parameters()}

    gp_ours, grads_ours = penalty(ours)
    gp_theirs, grads_theirs = penalty(theirs)
    tol = {"rtol": 1e-9, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 2e-4, "atol": 1e-5}
    torch.testing.assert_close(gp_ours, gp_theirs, **tol)
    assert set(grads_ours) == set(grads_theirs)
    for name in grads_theirs:
        if name in ("conv1.weight", "conv1.bias", "norm.weight", "conv2.weight"):
            assert grads_theirs[name].abs().max() > 0, name
        torch.testing.assert_close(grads_ours[name], grads_theirs[name], **tol, msg=name)
