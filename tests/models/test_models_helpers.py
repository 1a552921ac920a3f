"""Weight initialisation, weights across norm_impl builds, and input-size requirements."""
import pytest
import torch

import models
from helpers import randomize_norm_parameters_


def test_init_normal_sets_conv_and_linear_weights_and_keeps_norm_parameters():
    net = randomize_norm_parameters_(models.UGATITGenerator(ngf=16, n_blocks=2, light=True, norm_impl="eager"))
    norm_before = {k: v.clone() for k, v in net.state_dict().items() if k.rpartition(".")[2] in ("rho", "gamma", "beta")
                   and v.dim() == 4}
    models.init_normal_(net, std=0.02)
    weights = torch.cat([m.weight.flatten() for m in net.modules()
                         if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear))])
    assert abs(weights.std().item() - 0.02) < 0.002 and abs(weights.mean().item()) < 0.002
    assert torch.count_nonzero(net.conv1x1.bias) == 0
    state = net.state_dict()
    assert norm_before and all(torch.equal(state[k], v) for k, v in norm_before.items())


@pytest.mark.parametrize("arch", ["adalin", "resnet_6blocks", "ugatit_light"])
def test_load_weights_gives_a_free_norm_build_the_same_non_norm_weights(arch):
    config = dict(ngf=4) if arch.startswith("resnet") else dict(ngf=4, n_blocks=1)
    eager = models.build_generator(arch, norm_impl="eager", **config)
    free = models.build_generator(arch, norm_impl="free", **config)
    models.load_weights(free, eager.state_dict())
    free_state = free.state_dict()
    shared = [k for k in eager.state_dict() if k in free_state]
    free_norm_keys = [k for k in free_state if k.endswith((".scale", ".shift"))]
    assert len(shared) + len(free_norm_keys) == len(free_state) and shared
    assert all(torch.equal(free_state[k], eager.state_dict()[k]) for k in shared)
    state = dict(eager.state_dict())
    conv_key = next(k for k in state if k.endswith("weight") and state[k].dim() == 4)
    state[conv_key] = torch.zeros(1)
    with pytest.raises(RuntimeError):
        models.load_weights(free, state)


def test_fixed_input_size():
    assert models.UGATITGenerator(ngf=4, n_blocks=1, img_size=32, norm_impl="eager").fixed_input_size == 32
    assert models.UGATITGenerator(ngf=4, n_blocks=1, light=True, norm_impl="eager").fixed_input_size is None
    assert models.ResnetGenerator(ngf=4, n_blocks=1, norm_impl="eager").fixed_input_size is None
    assert models.AdaLINGenerator(ngf=4, n_blocks=1, norm_impl="eager").fixed_input_size is None


def test_unknown_norm_impl_is_refused():
    with pytest.raises(ValueError, match="norm_impl"):
        models.ResnetGenerator(ngf=4, n_blocks=1, norm_impl="apex")
