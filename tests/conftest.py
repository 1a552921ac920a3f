"""Shared fixtures for the op and layer suites (tests/*.py).

`device` parametrises a test over "cpu" and "cuda"; the cuda case is skipped cleanly when
torch.cuda.is_available() is False (and, with a reason saying so, when the extension was
built without its CUDA kernels: tests/cuda/ is where a GPU build is required), so the same
suite runs on every machine.

`norm_ref` is the tests' own judge: the op's semantics (docs/ops.md) written out directly in
float64 with plain tensor arithmetic, independent of cyclegan_ext (including its
`reference` module), and differentiable so its autograd gradients can judge the kernels'.
"""
import pytest
import torch
import torch.nn.functional as F


@pytest.fixture(params=["cpu", "cuda"])
def device(request):
    if request.param == "cuda":
        if not torch.cuda.is_available():
            pytest.skip("CUDA is not available")
        import cyclegan_ext

        if not cyclegan_ext.has_cuda_kernels():
            pytest.skip("cyclegan_ext was built without its CUDA kernels (CYCLEGAN_EXT_CUDA=0 or no toolkit)")
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    """Every test starts from the same random state, and leaves the global one untouched."""
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    yield
    torch.random.set_rng_state(state)


def _norm_ref(x, weight, bias, rho=None, *, unbiased, eps, activation=None, negative_slope=0.2,
              dtype=torch.float64):
    """y = act(weight * (rho * IN(x) + (1 - rho) * LN(x)) + bias), computed in `dtype`.

    x (N, C, H, W); weight, bias (N, C); rho (C,) or None (instance norm). Statistics are
    two-pass (mean, then the sum of squared deviations) over each plane / each sample.
    dtype=float32 gives the plain eager float32 computation, a baseline for what float32
    can achieve on hostile inputs.
    """
    x = x.to(dtype)
    n, c, h, w = x.shape
    m = h * w
    u = 1 if unbiased else 0
    planes = x.reshape(n, c, m)
    mu_c = planes.sum(-1, keepdim=True) / m
    var_c = ((planes - mu_c) ** 2).sum(-1, keepdim=True) / (m - u)
    x_in = (planes - mu_c) / torch.sqrt(var_c + eps)
    if rho is None:
        normed = x_in
    else:
        flat = x.reshape(n, c * m)
        mu_l = flat.sum(-1, keepdim=True) / (c * m)
        var_l = ((flat - mu_l) ** 2).sum(-1, keepdim=True) / (c * m - u)
        x_ln = ((flat - mu_l) / torch.sqrt(var_l + eps)).reshape(n, c, m)
        r = rho.to(dtype).reshape(1, c, 1)
        normed = r * x_in + (1 - r) * x_ln
    y = weight.to(dtype).reshape(n, c, 1) * normed + bias.to(dtype).reshape(n, c, 1)
    if activation == "relu":
        y = F.relu(y)
    elif activation == "leaky_relu":
        y = F.leaky_relu(y, negative_slope)
    elif activation not in (None, "none"):
        raise ValueError(activation)
    return y.reshape(n, c, h, w)


@pytest.fixture
def norm_ref():
    return _norm_ref
