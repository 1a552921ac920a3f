"""The one builder of op inputs for the test suites: x, weight, bias, rho of a fused-norm call."""
import torch


def param_dtype_for(dtype):
    """Parameters of half-precision x are float32 (the layers' mixed-precision contract)."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def make_op_inputs(shape, dtype=torch.float32, layout="nchw", mode="adalin", *, param_dtype=None, offset=0.0,
                   scale=1.0, device="cpu", seed=None, requires_grad=False):
    """x (N, C, H, W) ~ offset + scale * N(0, 1); weight ~ 1 + 0.5 N(0, 1), bias ~ 0.5 N(0, 1),
    each (N, C); rho ~ U(0, 1) of shape (C,).

    mode: "adalin" (per-sample weight / bias, rho), "instance" (rho None) or "lin" (per-channel
    weight / bias expanded to (N, C), rho). layout: "nchw" or "channels_last". Draws come from
    a generator seeded with `seed`, or from torch's global generator when seed is None.
    """
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    n, c, _, _ = shape
    param_dtype = param_dtype or param_dtype_for(dtype)

    def draw(*size):
        return torch.randn(*size, generator=gen, dtype=torch.float64)

    x = (draw(*shape) * scale + offset).to(dtype).to(device)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    rows = 1 if mode == "lin" else n
    weight = (1 + 0.5 * draw(rows, c)).to(param_dtype).to(device).expand(n, c)
    bias = (0.5 * draw(rows, c)).to(param_dtype).to(device).expand(n, c)
    if mode != "lin":
        weight, bias = weight.contiguous(), bias.contiguous()
    rho = None if mode == "instance" else torch.rand(c, generator=gen, dtype=torch.float64).to(param_dtype).to(device)
    if requires_grad:
        x, weight, bias = (t.detach().clone().requires_grad_() for t in (x, weight, bias))
        rho = None if rho is None else rho.requires_grad_()
    return x, weight, bias, rho
