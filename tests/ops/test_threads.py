"""Results do not depend on the number of CPU threads: bitwise identical forward and backward
for torch.set_num_threads(1), 2 and 4, in NCHW and channels_last, with shapes large enough
that at::parallel_for splits the work (many planes; and few planes with large H*W, where
any split has to be inside a plane or along a channels_last row)."""
import pytest
import torch

import cyclegan_ext

SHAPES = [(8, 64, 32, 32), (1, 4, 256, 256), (2, 3, 181, 97), (1, 512, 16, 16)]
THREADS = [1, 2, 4]


@pytest.fixture
def restore_threads():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _run(x, w, b, rho, grad_y, activation):
    ins = [t.detach().clone(memory_format=torch.preserve_format).requires_grad_() if t is not None else None
           for t in (x, w, b, rho)]
    y = cyclegan_ext.fused_norm(*ins, unbiased=True, eps=1e-5, activation=activation)
    y.backward(grad_y)
    return [y.detach()] + [t.grad for t in ins if t is not None]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last],
                         ids=["nchw", "channels_last"])
@pytest.mark.parametrize("with_rho", [True, False], ids=["adalin", "instance"])
def test_bitwise_identical_across_thread_counts(restore_threads, shape, memory_format, with_rho):
    n, c = shape[:2]
    x = (torch.randn(shape) * 3 + 1).contiguous(memory_format=memory_format)
    w, b = torch.randn(n, c), torch.randn(n, c)
    rho = torch.rand(c) if with_rho else None
    grad_y = torch.randn(shape).contiguous(memory_format=memory_format)
    results = {}
    for threads in THREADS:
        torch.set_num_threads(threads)
        assert torch.get_num_threads() == threads
        results[threads] = _run(x, w, b, rho, grad_y, "leaky_relu")
    names = ["y", "grad_x", "grad_weight", "grad_bias", "grad_rho"]
    for threads in THREADS[1:]:
        for name, a, b_ in zip(names, results[1], results[threads]):
            assert a.stride() == b_.stride(), name
            assert torch.equal(a, b_), f"{name} differs between 1 and {threads} threads: " \
                                       f"max {(a - b_).abs().max().item():.3g}"


def test_layers_identical_across_thread_counts(restore_threads):
    from cyclegan_ext import FusedInstanceNorm2d, FusedLIN

    x = torch.randn(4, 32, 40, 40)
    outs = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        inorm = FusedInstanceNorm2d(32, affine=True, track_running_stats=True)
        lin = FusedLIN(32)
        xx = x.clone().requires_grad_()
        y = lin(inorm(xx))
        y.square().sum().backward()
        outs.append([y.detach(), xx.grad, inorm.running_mean, inorm.running_var,
                     inorm.weight.grad, lin.rho.grad, lin.gamma.grad])
    for a, b in zip(*outs):
        assert torch.equal(a, b)

