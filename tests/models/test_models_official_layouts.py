"""Our networks against the official architectures (tests/official/):
identical state_dict keys and shapes for the default configurations, and identical outputs
once the official network's weights are loaded with strict=True."""
import pytest
import torch

import models
from helpers import randomize_norm_parameters_
from official.cyclegan import OfficialNLayerDiscriminator, OfficialResnetGenerator
from official.ugatit import OfficialUGATITGenerator

IMPLS = ["fused", "eager"]


def layout(net):
    """[(key, shape)] in registration order."""
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


# --- key and shape layouts, default configurations (built on the meta device: no memory) ---

@pytest.mark.parametrize("n_blocks", [9, 6])
def test_resnet_generator_has_the_official_layout(n_blocks):
    with torch.device("meta"):
        ours = models.ResnetGenerator(n_blocks=n_blocks)
        official = OfficialResnetGenerator(3, 3, ngf=64, n_blocks=n_blocks)
    assert layout(ours) == layout(official)
    final_conv = f"model.{10 + n_blocks + 7}.weight"
    assert dict(layout(ours))[final_conv] == (3, 64, 7, 7)


def test_resnet_generator_with_dropout_has_the_official_layout():
    with torch.device("meta"):
        ours = models.ResnetGenerator(ngf=16, n_blocks=2, use_dropout=True)
        official = OfficialResnetGenerator(3, 3, ngf=16, n_blocks=2, use_dropout=True)
    assert layout(ours) == layout(official)


def test_patchgan_has_the_official_layout():
    with torch.device("meta"):
        ours = models.NLayerDiscriminator()
        official = OfficialNLayerDiscriminator(3, ndf=64, n_layers=3)
    assert layout(ours) == layout(official)


@pytest.mark.parametrize("light", [False, True])
def test_ugatit_generator_has_ugatit_layout(light):
    with torch.device("meta"):
        ours = models.UGATITGenerator(n_blocks=4, img_size=256, light=light)
        official = OfficialUGATITGenerator(3, 3, ngf=64, n_blocks=4, img_size=256, light=light)
    assert layout(ours) == layout(official)


# --- outputs with the official weights -------------------------------------------------

@pytest.mark.parametrize("norm_impl", IMPLS)
def test_resnet_generator_reproduces_official_outputs(norm_impl):
    official = OfficialResnetGenerator(3, 3, ngf=8, n_blocks=3).double()
    ours = models.ResnetGenerator(ngf=8, n_blocks=3, norm_impl=norm_impl).double()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    torch.testing.assert_close(ours(x), official(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("norm_impl", IMPLS)
def test_patchgan_reproduces_official_outputs(norm_impl):
    official = OfficialNLayerDiscriminator(3, ndf=8, n_layers=3).double()
    ours = models.NLayerDiscriminator(ndf=8, n_layers=3, norm_impl=norm_impl).double()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, 3, 64, 64, dtype=torch.float64)
    torch.testing.assert_close(ours(x), official(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("norm_impl", IMPLS)
@pytest.mark.parametrize("light", [False, True])
def test_ugatit_generator_reproduces_ugatit_outputs(norm_impl, light):
    official = randomize_norm_parameters_(
        OfficialUGATITGenerator(3, 3, ngf=8, n_blocks=2, img_size=32, light=light)).double()
    ours = models.UGATITGenerator(ngf=8, n_blocks=2, img_size=32, light=light, norm_impl=norm_impl).double()
    ours.load_state_dict(official.state_dict(), strict=True)
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    image, cam_logit, heatmap = ours.forward_with_cam(x)
    expected_image, expected_cam_logit, expected_heatmap = official(x)
    torch.testing.assert_close(image, expected_image, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(cam_logit, expected_cam_logit, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(heatmap, expected_heatmap, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours(x), expected_image, rtol=1e-9, atol=1e-9)


def test_full_ugatit_generator_refuses_other_sizes_with_a_clear_error():
    net = models.UGATITGenerator(ngf=4, n_blocks=1, img_size=32, light=False, norm_impl="eager")
    with pytest.raises(ValueError, match="32x32"):
        net(torch.randn(1, 3, 64, 64))
