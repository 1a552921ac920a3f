"""FusedInstanceNorm2d is a drop-in for nn.InstanceNorm2d: same outputs, gradients, running
statistics, eval behaviour, state_dict and error behaviour, for every constructor option."""
import itertools
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cyclegan_ext import FusedInstanceNorm2d

TOL = {"rtol": 1e-5, "atol": 1e-5}  # float32, outputs of unit scale (see test_parity.py)


def make_pair(*args, device="cpu", dtype=torch.float32, bias=True, **kwargs):
    ours = FusedInstanceNorm2d(*args, device=device, dtype=dtype, bias=bias, **kwargs)
    theirs = nn.InstanceNorm2d(*args, device=device, dtype=dtype, bias=bias, **kwargs)
    with torch.no_grad():
        if ours.weight is not None:
            ours.weight.copy_(torch.rand_like(ours.weight) + 0.5)
        if ours.bias is not None:
            ours.bias.copy_(torch.randn_like(ours.bias))
    theirs.load_state_dict(ours.state_dict(), strict=True)
    return ours, theirs


def forward_backward(module, x, grad_y):
    x = x.detach().clone().requires_grad_()
    module.zero_grad(set_to_none=True)
    y = module(x)
    y.backward(grad_y)
    return y.detach(), x.grad, {n: p.grad for n, p in module.named_parameters()}


def assert_same_step(ours, theirs, x):
    grad_y = torch.randn(x.shape, device=x.device, dtype=x.dtype)
    y1, gx1, gp1 = forward_backward(ours, x, grad_y)
    y2, gx2, gp2 = forward_backward(theirs, x, grad_y)
    torch.testing.assert_close(y1, y2, **TOL)
    torch.testing.assert_close(gx1, gx2, **TOL)
    assert gp1.keys() == gp2.keys()
    for k in gp1:
        torch.testing.assert_close(gp1[k], gp2[k], **TOL, msg=k)


def assert_same_state(ours, theirs):
    sd1, sd2 = ours.state_dict(), theirs.state_dict()
    assert list(sd1.keys()) == list(sd2.keys())
    for k in sd1:
        assert sd1[k].dtype == sd2[k].dtype and sd1[k].shape == sd2[k].shape, k
        torch.testing.assert_close(sd1[k], sd2[k], rtol=1e-5, atol=1e-6, msg=k)


OPTIONS = list(itertools.product([False, True], [False, True], [0.1, 0.5, None]))


@pytest.mark.parametrize("affine,track,momentum", OPTIONS,
                         ids=[f"affine{a}-track{t}-mom{m}" for a, t, m in OPTIONS])
def test_train_then_eval_matches_nn(device, affine, track, momentum):
    ours, theirs = make_pair(5, eps=1e-5, momentum=momentum, affine=affine, track_running_stats=track,
                             device=device)
    assert_same_state(ours, theirs)
    for step in range(3):  # running stats accumulate over several batches
        x = torch.randn(4, 5, 9, 7, device=device) * (step + 1) + step
        assert_same_step(ours, theirs, x)
        assert_same_state(ours, theirs)
    if track and momentum is not None:
        assert not torch.equal(ours.running_mean, torch.zeros_like(ours.running_mean))
    ours.eval()
    theirs.eval()
    x = torch.randn(3, 5, 6, 6, device=device) * 2 + 1
    assert_same_step(ours, theirs, x)  # eval: running stats when tracked, else instance stats
    assert_same_state(ours, theirs)
    x1 = torch.randn(3, 5, 1, 1, device=device)
    if track:  # eval with running statistics is a per-channel affine map: 1x1 maps are fine
        assert_same_step(ours, theirs, x1)
    else:
        with pytest.raises(ValueError):
            theirs(x1)
        with pytest.raises(ValueError, match="spatial"):
            ours(x1)


def test_eval_really_uses_running_stats():
    """Guard against a test that cannot fail: eval output must differ from instance-stat output."""
    ours = FusedInstanceNorm2d(3, track_running_stats=True, momentum=1.0)
    ours(torch.randn(2, 3, 8, 8) * 5 + 3)
    ours.eval()
    x = torch.randn(2, 3, 8, 8)
    expected = (x - ours.running_mean[None, :, None, None]) / torch.sqrt(ours.running_var[None, :, None, None] + 1e-5)
    torch.testing.assert_close(ours(x), expected, **TOL)
    assert not torch.allclose(ours(x), F.instance_norm(x), atol=1e-2)


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True), (False, True)])
def test_unbatched_input(device, affine, track):
    ours, theirs = make_pair(4, affine=affine, track_running_stats=track, device=device)
    x = torch.randn(4, 6, 5, device=device)
    assert_same_step(ours, theirs, x)
    assert_same_state(ours, theirs)
    assert ours(x).shape == theirs(x).shape == (4, 6, 5)
    ours.eval()
    theirs.eval()
    assert_same_step(ours, theirs, x)


@pytest.mark.parametrize("track", [False, True])
def test_affine_without_bias(device, track):
    ours, theirs = make_pair(3, affine=True, bias=False, track_running_stats=track, device=device)
    assert ours.bias is None and theirs.bias is None
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert "bias" not in ours.state_dict()
    x = torch.randn(2, 3, 5, 5, device=device)
    assert_same_step(ours, theirs, x)
    assert [n for n, _ in ours.named_parameters()] == ["weight"]


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_layouts_and_dtypes(device, memory_format, dtype):
    ours, theirs = make_pair(6, affine=True, track_running_stats=True, device=device, dtype=dtype)
    x = torch.randn(2, 6, 7, 9, device=device, dtype=dtype).contiguous(memory_format=memory_format)
    assert_same_step(ours, theirs, x)
    y = ours(x)
    theirs(x)  # the same number of running-stat updates on both sides
    assert y.dtype == dtype
    if memory_format == torch.channels_last:
        assert y.is_contiguous(memory_format=torch.channels_last)
    assert_same_state(ours, theirs)


@pytest.mark.parametrize("activation,fn", [("relu", F.relu), ("leaky_relu", lambda t: F.leaky_relu(t, 0.2))])
@pytest.mark.parametrize("track", [False, True])
def test_fused_activation_equals_nn_plus_activation(device, activation, fn, track):
    ours = FusedInstanceNorm2d(4, affine=True, track_running_stats=track, activation=activation, device=device)
    theirs = nn.InstanceNorm2d(4, affine=True, track_running_stats=track, device=device)
    with torch.no_grad():
        ours.weight.copy_(torch.rand(4) + 0.5)
        ours.bias.copy_(torch.randn(4))
    theirs.load_state_dict(ours.state_dict())
    for mode in ("train", "eval"):
        ours.train(mode == "train")
        theirs.train(mode == "train")
        x = torch.randn(3, 4, 8, 8, device=device)
        grad_y = torch.randn_like(x)
        y1, gx1, gp1 = forward_backward(ours, x, grad_y)
        xx = x.clone().requires_grad_()
        theirs.zero_grad(set_to_none=True)
        y2 = fn(theirs(xx))
        y2.backward(grad_y)
        torch.testing.assert_close(y1, y2.detach(), **TOL)
        torch.testing.assert_close(gx1, xx.grad, **TOL)
        torch.testing.assert_close(gp1["weight"], theirs.weight.grad, **TOL)
        torch.testing.assert_close(gp1["bias"], theirs.bias.grad, **TOL)
        assert (y1 < 0).any() == (activation == "leaky_relu")


@pytest.mark.parametrize("affine,track", [(False, False), (True, False), (True, True), (False, True)])
def test_state_dict_round_trip_both_ways(affine, track):
    ours, theirs = make_pair(5, affine=affine, track_running_stats=track)
    for _ in range(2):
        ours(torch.randn(2, 5, 4, 4) + 1)
    # ours -> nn
    fresh_nn = nn.InstanceNorm2d(5, affine=affine, track_running_stats=track)
    fresh_nn.load_state_dict(ours.state_dict(), strict=True)
    assert_same_state(ours, fresh_nn)
    # nn -> ours
    for _ in range(2):
        theirs(torch.randn(2, 5, 4, 4) * 3)
    fresh_ours = FusedInstanceNorm2d(5, affine=affine, track_running_stats=track)
    fresh_ours.load_state_dict(theirs.state_dict(), strict=True)
    assert_same_state(fresh_ours, theirs)
    for m in (fresh_ours, theirs):
        m.eval()
    x = torch.randn(2, 5, 4, 4)
    torch.testing.assert_close(fresh_ours(x), theirs(x), **TOL)


def test_running_stats_in_state_dict_without_tracking_is_rejected_like_nn():
    src = nn.InstanceNorm2d(3, track_running_stats=True).state_dict()
    with pytest.raises(RuntimeError) as theirs_error:
        nn.InstanceNorm2d(3).load_state_dict(src)
    with pytest.raises(RuntimeError) as ours_error:
        FusedInstanceNorm2d(3).load_state_dict(src)
    assert "running_mean" in str(ours_error.value) and "running_mean" in str(theirs_error.value)


def test_num_features_mismatch_affine_raises_like_nn():
    x = torch.randn(2, 4, 5, 5)
    with pytest.raises(ValueError):
        nn.InstanceNorm2d(3, affine=True)(x)
    with pytest.raises(ValueError, match="num_features|channels"):
        FusedInstanceNorm2d(3, affine=True)(x)
    with pytest.raises(ValueError, match="num_features|channels"):
        FusedInstanceNorm2d(3, affine=True)(torch.randn(4, 5, 5))  # unbatched


@pytest.mark.parametrize("shape", [(2, 4, 5, 5), (4, 5, 5)], ids=["batched", "unbatched"])
def test_num_features_mismatch_without_affine_warns_like_nn(shape):
    x = torch.randn(shape)
    with pytest.warns(UserWarning, match="num_features"):
        y_nn = nn.InstanceNorm2d(3)(x)
    with pytest.warns(UserWarning, match="num_features"):
        y_ours = FusedInstanceNorm2d(3)(x)
    torch.testing.assert_close(y_ours, y_nn, **TOL)


def test_matching_num_features_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        FusedInstanceNorm2d(3)(torch.randn(2, 3, 4, 4))


@pytest.mark.parametrize("shape", [(2, 3, 1, 1), (3, 1, 1)], ids=["batched", "unbatched"])
def test_single_pixel_in_training_raises_like_nn(shape):
    x = torch.randn(shape)
    with pytest.raises(ValueError, match="spatial element"):
        nn.InstanceNorm2d(3)(x)
    with pytest.raises(ValueError, match="spatial"):
        FusedInstanceNorm2d(3)(x)
    with pytest.raises(ValueError, match="spatial"):
        FusedInstanceNorm2d(3, affine=True, track_running_stats=True).train()(x)


def test_is_an_instance_norm_and_repr():
    layer = FusedInstanceNorm2d(8, affine=True, activation="relu")
    assert isinstance(layer, nn.InstanceNorm2d)
    assert "8" in repr(layer) and "relu" in repr(layer)
    with pytest.raises(ValueError, match="activation"):
        FusedInstanceNorm2d(8, activation="gelu")


def test_to_dtype_and_device_like_nn():
    ours, theirs = make_pair(3, affine=True, track_running_stats=True)
    ours.double()
    theirs.double()
    x = torch.randn(2, 3, 5, 5, dtype=torch.float64)
    assert_same_step(ours, theirs, x)
    assert ours.running_mean.dtype == torch.float64


@pytest.mark.parametrize("std", [1e-2, 1e-4, 0.0])
def test_running_stats_on_tiny_variance(std):
    """The running variance is recovered from the kernel's rstd (1 / sqrt(var + eps)), so for
    var << eps it is accurate to ~1e-7 * eps absolutely, not relatively; what matters is that
    eval outputs (which use var + eps) are unchanged. Constant planes give exactly 0."""
    ours, theirs = make_pair(3, track_running_stats=True, momentum=1.0)
    x = torch.randn(2, 3, 16, 16) * std + 0.5
    ours(x)
    theirs(x)
    torch.testing.assert_close(ours.running_mean, theirs.running_mean, rtol=1e-6, atol=1e-7)
    assert (ours.running_var - theirs.running_var).abs().max() <= 1e-6 * ours.eps
    assert (ours.running_var >= 0).all()
    if std == 0.0:
        assert torch.equal(ours.running_var, torch.zeros(3))
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x), theirs(x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("training", [True, False])
def test_num_features_mismatch_with_running_stats_raises(training):
    """nn warns and then fails inside F.instance_norm (RuntimeError about running_mean); ours
    refuses up front with a ValueError naming num_features. Both refuse."""
    x = torch.randn(2, 4, 5, 5)
    with pytest.raises(RuntimeError), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nn.InstanceNorm2d(3, track_running_stats=True).train(training)(x)
    with pytest.raises(ValueError, match="num_features"):
        FusedInstanceNorm2d(3, track_running_stats=True).train(training)(x)
