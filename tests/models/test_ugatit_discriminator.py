"""models.UGATITDiscriminator against U-GAT-IT's Discriminator (tests/official/ugatit.py) and
against the key layout its architecture defines, written out by hand below."""
import pytest
import torch

from models.ugatit_discriminator import UGATITDiscriminator, min_input_size
from official.ugatit import OfficialUGATITDiscriminator


def spectral_conv(name, c_out, c_in, k, bias=True):
    """Keys of spectral_norm(Conv2d(c_in, c_out, k)): weight_u has c_out entries (the rows),
    weight_v c_in * k * k (the flattened columns)."""
    keys = {f"{name}.weight_orig": (c_out, c_in, k, k), f"{name}.weight_u": (c_out,),
            f"{name}.weight_v": (c_in * k * k,)}
    if bias:
        keys[f"{name}.bias"] = (c_out,)
    return keys


def spectral_linear(name, c_out, c_in):
    return {f"{name}.weight_orig": (c_out, c_in), f"{name}.weight_u": (c_out,), f"{name}.weight_v": (c_in,)}


# input_nc 3, ndf 64. Global (n_layers 7): convs at model.1, 4, 7, 10, 13 (stride 2, channels
# 3 -> 64 -> 128 -> 256 -> 512 -> 1024) and model.16 (stride 1, 1024 -> 2048); the CAM head
# works on 64 * 2 ** 5 = 2048 channels.
GLOBAL_LAYOUT = {
    **spectral_conv("model.1", 64, 3, 4), **spectral_conv("model.4", 128, 64, 4),
    **spectral_conv("model.7", 256, 128, 4), **spectral_conv("model.10", 512, 256, 4),
    **spectral_conv("model.13", 1024, 512, 4), **spectral_conv("model.16", 2048, 1024, 4),
    **spectral_linear("gap_fc", 1, 2048), **spectral_linear("gmp_fc", 1, 2048),
    "conv1x1.weight": (2048, 4096, 1, 1), "conv1x1.bias": (2048,),
    **spectral_conv("conv", 1, 2048, 4, bias=False),
}
# Local (n_layers 5): model.1, 4, 7 stride 2 (3 -> 64 -> 128 -> 256), model.10 stride 1
# (256 -> 512); CAM head on 64 * 2 ** 3 = 512 channels.
LOCAL_LAYOUT = {
    **spectral_conv("model.1", 64, 3, 4), **spectral_conv("model.4", 128, 64, 4),
    **spectral_conv("model.7", 256, 128, 4), **spectral_conv("model.10", 512, 256, 4),
    **spectral_linear("gap_fc", 1, 512), **spectral_linear("gmp_fc", 1, 512),
    "conv1x1.weight": (512, 1024, 1, 1), "conv1x1.bias": (512,),
    **spectral_conv("conv", 1, 512, 4, bias=False),
}


def layout(net):
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


@pytest.mark.parametrize("n_layers, expected", [(7, GLOBAL_LAYOUT), (5, LOCAL_LAYOUT)])
def test_key_layout_is_ugatits(n_layers, expected):
    ours = UGATITDiscriminator(3, ndf=64, n_layers=n_layers)
    assert layout(ours) == expected
    with torch.device("meta"):
        official = OfficialUGATITDiscriminator(3, ndf=64, n_layers=n_layers)
    assert layout(official) == expected
    assert list(ours.state_dict()) == list(official.state_dict())  # same order in saved files


@pytest.mark.parametrize("n_layers, size", [(7, 128), (5, 32), (3, 16)])
def test_loads_ugatit_weights_strictly_and_computes_the_same(n_layers, size):
    torch.manual_seed(0)
    official = OfficialUGATITDiscriminator(3, ndf=8, n_layers=n_layers).double()
    ours = UGATITDiscriminator(3, ndf=8, n_layers=n_layers).double()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, 3, size, size, dtype=torch.float64)
    # Training mode: each forward runs one power iteration and updates weight_u / weight_v;
    # two forwards check the updates match too. Same float64 ops in the same order: 1e-12.
    for _ in range(2):
        for mine, theirs in zip(ours(x), official(x)):
            torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=1e-12)
    for key, value in official.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[key], value, rtol=1e-12, atol=1e-12)
    official.load_state_dict(ours.state_dict(), strict=True)


def test_cam_weights_use_the_raw_weight_as_ugatit_does():
    """U-GAT-IT multiplies the feature maps by weight_orig (its parameters()[0]), not by the
    spectrally normalised weight: scaling weight_orig leaves the logits (normalised) unchanged
    but scales the weighted maps, hence changes the heatmap."""
    torch.manual_seed(0)
    net = UGATITDiscriminator(3, ndf=8, n_layers=3).double().eval()
    x = torch.randn(1, 3, 16, 16, dtype=torch.float64)
    _, cam_before, heat_before = net(x)
    with torch.no_grad():
        net.gap_fc.weight_orig.mul_(3.0)
    _, cam_after, heat_after = net(x)
    torch.testing.assert_close(cam_after, cam_before, rtol=1e-10, atol=1e-12)
    assert not torch.allclose(heat_after, heat_before)


def test_output_shapes():
    net = UGATITDiscriminator(3, ndf=8, n_layers=5)
    out, cam_logit, heatmap = net(torch.randn(2, 3, 32, 32))
    # 32 -> 16 -> 8 -> 4 (three stride-2 convs), 4 -> 3 (stride 1), 3 -> 2 (last conv)
    assert out.shape == (2, 1, 2, 2) and cam_logit.shape == (2, 2) and heatmap.shape == (2, 1, 3, 3)


@pytest.mark.parametrize("n_layers, smallest", [(3, 6), (5, 24), (7, 96)])
def test_smallest_input(n_layers, smallest):
    # n_layers - 2 halvings must leave >= 3 pixels: the stride-1 conv (pad 1, kernel 4) takes
    # one off and the last conv's reflection padding needs >= 2 pixels.
    assert min_input_size(n_layers) == smallest
    net = UGATITDiscriminator(1, ndf=2, n_layers=n_layers)
    assert net(torch.randn(1, 1, smallest, smallest))[0].shape[-1] == 1
    with pytest.raises(ValueError, match=f"at least {smallest}x{smallest}"):
        net(torch.randn(1, 1, smallest - 1, smallest + 5))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_layers"):
        UGATITDiscriminator(3, ndf=8, n_layers=2)
    with pytest.raises(ValueError, match="norm_impl"):
        UGATITDiscriminator(3, norm_impl="bogus")
    with pytest.raises(ValueError, match="expected input of shape"):
        UGATITDiscriminator(3, ndf=8, n_layers=3)(torch.randn(3, 16, 16))
