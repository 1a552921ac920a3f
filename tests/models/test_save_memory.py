"""save_memory (exact recompute in the norm-activation-conv units) and grad_checkpoint change
what autograd keeps, never what it computes: outputs, input gradients and parameter gradients
equal those of the plain network (float64; the same kernels run on the same values in the same
order, so equality is exact and asserted as such), and the state_dict is untouched."""
import pytest
import torch

import models
from models.save_memory import set_save_memory

NETWORKS = {
    "resnet": lambda impl: models.ResnetGenerator(ngf=4, n_blocks=2, norm_impl=impl),
    "patchgan": lambda impl: models.NLayerDiscriminator(3, 4, 3, norm_impl=impl),
    "adalin": lambda impl: models.AdaLINGenerator(ngf=4, n_blocks=2, norm_impl=impl),
    "ugatit_light": lambda impl: models.UGATITGenerator(ngf=4, n_blocks=2, img_size=32, light=True, norm_impl=impl),
    "ugatit": lambda impl: models.UGATITGenerator(ngf=4, n_blocks=1, img_size=32, light=False, norm_impl=impl),
}
SIZES = {"resnet": (36, 44), "patchgan": (35, 37), "adalin": (32, 40), "ugatit_light": (36, 28), "ugatit": (32, 32)}


def forward_backward(net, x):
    net.zero_grad(set_to_none=True)
    x = x.detach().requires_grad_()
    y = net(x)
    (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)).sum().backward()
    grads = {name: p.grad for name, p in net.named_parameters() if p.grad is not None}
    return y.detach(), x.grad, grads


def saved_bytes(net, x):
    params = {p.untyped_storage()._cdata for p in net.parameters()}
    seen = {}

    def pack(t):  # what the forward keeps (recomputation inside the backward is transient)
        if torch._C._current_graph_task_id() == -1 and t.untyped_storage()._cdata not in params:
            seen[t.untyped_storage()._cdata] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(x).sum().backward()
    return sum(seen.values())


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("norm_impl", ["fused", "eager"])
@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_same_outputs_and_gradients_as_the_plain_network(name, norm_impl, channels_last):
    torch.manual_seed(0)
    net = NETWORKS[name](norm_impl).double()
    keys = list(net.state_dict())
    h, w = SIZES[name]
    x = torch.rand(2, 3, h, w, dtype=torch.float64) * 2 - 1
    if channels_last:
        net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    plain = forward_backward(net, x)
    for flags in ((True, False), (False, True), (True, True)):
        set_save_memory(net, *flags)
        got = forward_backward(net, x)
        assert torch.equal(got[0], plain[0]) and torch.equal(got[1], plain[1]), flags
        assert got[2].keys() == plain[2].keys()
        for key, grad in plain[2].items():
            assert torch.equal(got[2][key], grad), (flags, key)
    assert list(net.state_dict()) == keys


def test_frozen_parameters_get_no_gradient_and_the_input_still_does():
    # The generator step back-propagates through a frozen discriminator to the fake images.
    torch.manual_seed(0)
    net = models.NLayerDiscriminator(3, 4, 3, save_memory=True).double().requires_grad_(False)
    x = (torch.rand(1, 3, 32, 32, dtype=torch.float64) * 2 - 1).requires_grad_()
    net(x).sum().backward()
    reference = models.NLayerDiscriminator(3, 4, 3).double().requires_grad_(False)
    reference.load_state_dict(net.state_dict())
    x2 = x.detach().requires_grad_()
    reference(x2).sum().backward()
    assert torch.equal(x.grad, x2.grad) and all(p.grad is None for p in net.parameters())


def test_saves_less_and_runs_as_usual_without_gradients():
    torch.manual_seed(0)
    net = models.ResnetGenerator(ngf=8, n_blocks=3)
    x = torch.rand(1, 3, 64, 64)
    plain = saved_bytes(net, x)
    set_save_memory(net, True)
    units = saved_bytes(net, x)
    set_save_memory(net, True, True)
    both = saved_bytes(net, x)
    assert both < units < 0.6 * plain
    with torch.no_grad():
        assert torch.equal(net(x), set_save_memory(net, False)(x))


def test_constructors_and_build_generator_take_the_switches():
    net = models.build_generator("resnet_9blocks", ngf=4, save_memory=True, grad_checkpoint=True)
    assert net.save_memory and net.grad_checkpoint and all(b.save_memory for b in net.model if hasattr(b, "conv_block"))
    assert "save_memory" not in net.config and "save_memory" not in models.generator_payload(net, "resnet_9blocks")["config"]
