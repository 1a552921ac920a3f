"""The same network built on the fused layers and on cyclegan_ext.reference: identical
state_dicts, outputs and parameter gradients; and the "free" benchmark stand-in builds."""
import pytest
import torch

import models
from helpers import randomize_norm_parameters_

SMALL_BUILDS = {
    "adalin": lambda impl: models.AdaLINGenerator(ngf=8, n_blocks=2, norm_impl=impl),
    "resnet": lambda impl: models.ResnetGenerator(ngf=8, n_blocks=2, norm_impl=impl),
    "ugatit": lambda impl: models.UGATITGenerator(ngf=8, n_blocks=2, img_size=32, norm_impl=impl),
    "ugatit_light": lambda impl: models.UGATITGenerator(ngf=8, n_blocks=2, light=True, norm_impl=impl),
    "patchgan": lambda impl: models.NLayerDiscriminator(ndf=8, n_layers=3, norm_impl=impl),
}


def twin_builds(name):
    eager = randomize_norm_parameters_(SMALL_BUILDS[name]("eager")).double()
    fused = SMALL_BUILDS[name]("fused").double()
    fused.load_state_dict(eager.state_dict(), strict=True)
    return eager, fused


@pytest.mark.parametrize("name", sorted(SMALL_BUILDS))
def test_fused_and_eager_builds_have_identical_state_dicts(name):
    eager, fused = SMALL_BUILDS[name]("eager"), SMALL_BUILDS[name]("fused")
    assert [(k, v.shape) for k, v in eager.state_dict().items()] == \
           [(k, v.shape) for k, v in fused.state_dict().items()]
    assert eager.config == fused.config


@pytest.mark.parametrize("name", sorted(SMALL_BUILDS))
def test_fused_build_matches_eager_build_forward_and_backward(name):
    eager, fused = twin_builds(name)
    size = 64 if name == "patchgan" else 32
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    y_eager, y_fused = eager(x), fused(x)
    torch.testing.assert_close(y_fused, y_eager, rtol=1e-9, atol=1e-9)
    weights = torch.randn_like(y_eager)
    (y_eager * weights).sum().backward()
    (y_fused * weights).sum().backward()
    eager_grads = dict(eager.named_parameters())
    for key, p in fused.named_parameters():
        torch.testing.assert_close(p.grad, eager_grads[key].grad, rtol=1e-7, atol=1e-9, msg=f"gradient of {key}")


def test_every_norm_in_a_fused_build_is_a_fused_layer():
    import cyclegan_ext
    fused_types = (cyclegan_ext.FusedInstanceNorm2d, cyclegan_ext.FusedAdaLIN, cyclegan_ext.FusedLIN)
    for name, build in SMALL_BUILDS.items():
        net = build("fused")
        norm_layers = [m for m in net.modules() if hasattr(m, "num_features")]
        assert norm_layers, name
        assert all(isinstance(m, fused_types) for m in norm_layers), (name, norm_layers)
        assert not any(isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU)) for m in _after_a_norm(net)), name


def _after_a_norm(net):
    """Modules that directly follow a norm layer in a Sequential (where an unfused activation would sit)."""
    for seq in net.modules():
        if isinstance(seq, torch.nn.Sequential):
            children = list(seq)
            for prev, module in zip(children, children[1:]):
                if hasattr(prev, "activation"):
                    yield module


@pytest.mark.parametrize("name", sorted(SMALL_BUILDS))
def test_free_norm_build_runs_and_keeps_the_activations(name):
    net = SMALL_BUILDS[name]("free")
    size = 64 if name == "patchgan" else 32
    y = net(torch.randn(2, 3, size, size))
    assert torch.isfinite(y).all()
    activations = [m for m in net.modules() if isinstance(m, (torch.nn.ReLU, torch.nn.LeakyReLU))]
    fused_activations = [m for m in SMALL_BUILDS[name]("eager").modules()
                         if getattr(m, "activation", None) in ("relu", "leaky_relu")]
    assert len(activations) >= len(fused_activations) > 0


def test_adalin_generator_takes_any_size_divisible_by_4_and_uses_its_skips():
    net = models.AdaLINGenerator(ngf=8, n_blocks=1, norm_impl="fused").eval()
    x = torch.randn(1, 3, 24, 40)
    assert net(x).shape == (1, 3, 24, 40)
    with torch.no_grad():  # the stem's output reaches the decoder through the skip connection
        y = net(x)
        net.up2.conv.weight[:, 2 * 8:].zero_()
        assert not torch.allclose(net(x), y)
    with pytest.raises(ValueError, match="divisible by 4"):
        net(torch.randn(1, 3, 30, 32))
