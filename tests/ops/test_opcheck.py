"""The ops are proper dispatcher ops: torch.library.opcheck (schema, fake/meta kernels,
autograd registration, AOT dispatch) and torch.compile(fullgraph=True) through every layer."""
import pytest
import torch

import cyclegan_ext  # noqa: F401  (registers torch.ops.cyclegan_ext.*)
from cyclegan_ext import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN
from op_inputs import make_op_inputs  # tests/op_inputs.py

fwd = torch.ops.cyclegan_ext.fused_norm_forward.default
bwd = torch.ops.cyclegan_ext.fused_norm_backward.default




def _args(shape, *, device, dtype=torch.float32, rho=True, channels_last=False, requires_grad=True,
          unbiased=True, activation=0):
    x, w, b, r = make_op_inputs(shape, dtype, "channels_last" if channels_last else "nchw",
                                "adalin" if rho else "instance", device=device, requires_grad=requires_grad)
    return (x, w, b, r, unbiased, 1e-5, activation, 0.2)


FWD_CASES = [
    dict(shape=(2, 3, 4, 5)),
    dict(shape=(2, 3, 4, 5), rho=False, unbiased=False, activation=1),
    dict(shape=(2, 8, 5, 3), channels_last=True, activation=2),
    dict(shape=(1, 4, 6, 6), rho=False, channels_last=True, requires_grad=False),
    dict(shape=(3, 2, 3, 3), dtype=torch.float64, activation=1),
]


@pytest.mark.parametrize("case", FWD_CASES, ids=[str(i) for i in range(len(FWD_CASES))])
def test_opcheck_forward(device, case):
    torch.library.opcheck(fwd, _args(device=device, **case))


@pytest.mark.parametrize("rho", [True, False])
@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("activation", [0, 2])
def test_opcheck_backward(device, rho, channels_last, activation):
    x, w, b, r, unbiased, eps, act, slope = _args((2, 4, 5, 3), device=device, rho=rho,
                                                  channels_last=channels_last, requires_grad=False,
                                                  activation=activation)
    _, mean_c, rstd_c, mean_l, rstd_l = fwd(x, w, b, r, unbiased, eps, act, slope)
    grad_out = torch.randn_like(x)
    torch.library.opcheck(bwd, (grad_out, x, w, b, r, mean_c, rstd_c, mean_l, rstd_l, unbiased, act, slope))


def test_forward_statistics_outputs(device):
    """The op's extra outputs are what the schema says: per-(n, c) and per-n mean and rstd."""
    x, w, b, r, *_ = _args((3, 4, 5, 6), device=device, dtype=torch.float64, requires_grad=False)
    y, mean_c, rstd_c, mean_l, rstd_l = fwd(x, w, b, r, True, 1e-5, 0, 0.2)
    torch.testing.assert_close(mean_c, x.mean((2, 3)))
    torch.testing.assert_close(rstd_c, (x.var((2, 3)) + 1e-5).rsqrt())
    torch.testing.assert_close(mean_l, x.mean((1, 2, 3)))
    torch.testing.assert_close(rstd_l, (x.var((1, 2, 3)) + 1e-5).rsqrt())


def test_meta_tensors_trace_shapes_and_layouts():
    x = torch.empty(2, 3, 8, 8, device="meta").contiguous(memory_format=torch.channels_last)
    w = torch.empty(2, 3, device="meta")
    y, mean_c, rstd_c, mean_l, rstd_l = fwd(x, w, w, None, True, 1e-5, 1, 0.2)
    assert y.device.type == "meta" and y.shape == x.shape
    assert y.is_contiguous(memory_format=torch.channels_last)
    assert mean_c.shape == rstd_c.shape == (2, 3) and mean_l.shape == rstd_l.shape == (2,)


class _AllThree(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ada = FusedAdaLIN(8, activation="relu")
        self.lin = FusedLIN(8)
        self.inorm = FusedInstanceNorm2d(8, affine=True, track_running_stats=True, activation="leaky_relu")

    def forward(self, x, gamma, beta):
        return self.inorm(self.lin(self.ada(x, gamma, beta)) * 2 + 0.1)


def _run(model, x, gamma, beta, grad_y, fn=None):
    """fn (default: model) is called; the parameter gradients are read from model."""
    x, gamma, beta = (t.detach().clone().requires_grad_() for t in (x, gamma, beta))
    model.zero_grad(set_to_none=True)
    y = (model if fn is None else fn)(x, gamma, beta)
    y.backward(grad_y)
    return y.detach(), [x.grad, gamma.grad, beta.grad], {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.slow
def test_compile_fullgraph_through_every_layer(device):
    torch._dynamo.reset()
    eager = _AllThree().to(device)
    with torch.no_grad():
        for p in eager.parameters():
            p.add_(torch.rand_like(p) * 0.3)
    compiled_model = _AllThree().to(device)
    compiled_model.load_state_dict(eager.state_dict())
    compiled = torch.compile(compiled_model, fullgraph=True, backend="aot_eager")
    for step in range(2):  # the second call reuses the compiled graph
        x = torch.randn(2, 8, 6, 7, device=device)
        gamma, beta = torch.randn(2, 8, device=device) + 1, torch.randn(2, 8, device=device)
        grad_y = torch.randn(2, 8, 6, 7, device=device)
        y1, gi1, gp1 = _run(eager, x, gamma, beta, grad_y)
        y2, gi2, gp2 = _run(compiled_model, x, gamma, beta, grad_y, compiled)
        torch.testing.assert_close(y2, y1, rtol=1e-5, atol=1e-5)
        for a, b in zip(gi2, gi1):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        assert gp1.keys() == gp2.keys() and len(gp1) == 6
        for k in gp1:
            torch.testing.assert_close(gp2[k], gp1[k], rtol=1e-5, atol=1e-5)
    # the running statistics were updated inside the compiled graph as in eager
    torch.testing.assert_close(compiled_model.inorm.running_mean, eager.inorm.running_mean)
    torch.testing.assert_close(compiled_model.inorm.running_var, eager.inorm.running_var)


@pytest.mark.slow
def test_compile_inductor_channels_last_eval():
    """The default backend (inductor) with the layers in eval mode and channels_last input."""
    torch._dynamo.reset()
    model = _AllThree()
    model.inorm(torch.randn(2, 8, 5, 5))  # some running statistics
    model.eval()
    compiled = torch.compile(model, fullgraph=True)
    x = torch.randn(2, 8, 6, 7).contiguous(memory_format=torch.channels_last)
    gamma, beta = torch.randn(2, 8) + 1, torch.randn(2, 8)
    grad_y = torch.randn(2, 8, 6, 7)
    y1, gi1, gp1 = _run(model, x, gamma, beta, grad_y)
    y2, gi2, gp2 = _run(model, x, gamma, beta, grad_y, compiled)
    torch.testing.assert_close(y2, y1, rtol=1e-5, atol=1e-5)
    for a, b in zip(gi2 + list(gp2.values()), gi1 + list(gp1.values())):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
