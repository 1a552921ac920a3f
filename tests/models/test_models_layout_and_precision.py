"""Networks in channels_last memory format and under CPU bfloat16 autocast."""
import pytest
import torch

import models
from helpers import randomize_norm_parameters_

BUILDS = {
    "adalin": lambda impl: models.AdaLINGenerator(ngf=8, n_blocks=1, norm_impl=impl),
    "resnet": lambda impl: models.ResnetGenerator(ngf=8, n_blocks=1, norm_impl=impl),
    "ugatit": lambda impl: models.UGATITGenerator(ngf=8, n_blocks=1, img_size=32, norm_impl=impl),
    "ugatit_light": lambda impl: models.UGATITGenerator(ngf=8, n_blocks=1, light=True, norm_impl=impl),
    "patchgan": lambda impl: models.NLayerDiscriminator(ndf=8, n_layers=3, norm_impl=impl),
}


def build(name, norm_impl="fused"):
    return randomize_norm_parameters_(BUILDS[name](norm_impl)).eval()


def input_for(name):
    return torch.randn(2, 3, 64 if name == "patchgan" else 32, 64 if name == "patchgan" else 32)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_channels_last_gives_the_contiguous_result(name):
    # float64: the layouts sum in different orders; in float64 that is ~1e-16 relative, and 1e-9
    # leaves a factor 1e6 for the norm layers to amplify it (float32 would leave next to none).
    net = build(name).double()
    x = input_for(name).double()
    with torch.no_grad():
        expected = net(x)
        net = net.to(memory_format=torch.channels_last)
        y = net(x.to(memory_format=torch.channels_last))
    torch.testing.assert_close(y, expected, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_channels_last_backward_matches(name):
    # float64: biases right before an instance norm have a true gradient of zero, which in
    # float32 is rounding noise that differs between layouts.
    net = build(name).double()
    x = input_for(name).double()
    net(x).square().sum().backward()
    expected = {k: p.grad.clone() for k, p in net.named_parameters()}
    net.zero_grad()
    net = net.to(memory_format=torch.channels_last)
    net(x.to(memory_format=torch.channels_last)).square().sum().backward()
    for k, p in net.named_parameters():
        torch.testing.assert_close(p.grad, expected[k], rtol=1e-7, atol=1e-9, msg=f"gradient of {k}")


@pytest.mark.parametrize("name", sorted(BUILDS))
def test_cpu_bfloat16_autocast_runs_and_stays_close_to_float32(name):
    net = build(name)
    x = input_for(name)
    with torch.no_grad():
        expected = net(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = net(x)
    assert y.dtype in (torch.bfloat16, torch.float32)
    assert torch.isfinite(y).all()
    # bfloat16 convolutions: about 3 significant digits per layer.
    scale = expected.abs().max().item()
    assert (y.float() - expected).abs().max().item() <= 0.1 * max(scale, 1.0)


@pytest.mark.parametrize("norm_impl", ["fused", "eager"])
def test_cpu_bfloat16_autocast_trains(norm_impl):
    net = models.UGATITGenerator(ngf=8, n_blocks=1, light=True, norm_impl=norm_impl).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = net(torch.randn(2, 3, 32, 32)).float().square().mean()
    loss.backward()
    rho = net.UpBlock1_1.norm1.rho
    assert rho.grad is not None and rho.grad.dtype == torch.float32 and torch.isfinite(rho.grad).all()


@pytest.fixture
def no_tf32():
    """cuDNN convolutions default to TF32 on Ampere and later: inputs rounded to 10 mantissa bits
    (~5e-4 relative), which would swamp a float32 comparison of two builds."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(BUILDS))
def test_cuda_fused_build_matches_eager_in_channels_last_and_fp16_autocast(name, no_tf32):
    if not torch.cuda.is_available():
        pytest.skip("CUDA is not available")
    eager = build(name, "eager").cuda()
    fused = BUILDS[name]("fused").eval().cuda()
    fused.load_state_dict(eager.state_dict(), strict=True)
    x = input_for(name).cuda()
    with torch.no_grad():
        expected = eager(x)
        torch.testing.assert_close(fused(x), expected, rtol=1e-4, atol=1e-4)
        fused = fused.to(memory_format=torch.channels_last)
        x_cl = x.to(memory_format=torch.channels_last)
        torch.testing.assert_close(fused(x_cl), expected, rtol=1e-4, atol=1e-4)
        with torch.autocast("cuda", dtype=torch.float16):
            y = fused(x_cl)
    assert torch.isfinite(y).all()
    assert (y.float() - expected).abs().max().item() <= 0.1 * max(expected.abs().max().item(), 1.0)
