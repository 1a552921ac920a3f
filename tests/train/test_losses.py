import math

import pytest
import torch

from train.recipes.cycle_gan.losses import GANLoss, cycle_loss, identity_loss


def test_lsgan_is_mean_squared_distance_to_label():
    p = torch.tensor([[0.5, -1.0], [2.0, 0.0]])
    vals = [0.5, -1.0, 2.0, 0.0]
    assert GANLoss("lsgan")(p, True).item() == pytest.approx(sum((v - 1) ** 2 for v in vals) / 4)
    assert GANLoss("lsgan")(p, False).item() == pytest.approx(sum(v ** 2 for v in vals) / 4)


def test_vanilla_is_bce_with_logits():
    p = torch.tensor([0.3, -2.0, 1.5])
    sig = [1 / (1 + math.exp(-v)) for v in p.tolist()]
    real = -sum(math.log(s) for s in sig) / 3
    fake = -sum(math.log(1 - s) for s in sig) / 3
    assert GANLoss("vanilla")(p, True).item() == pytest.approx(real, rel=1e-6)
    assert GANLoss("vanilla")(p, False).item() == pytest.approx(fake, rel=1e-6)


def test_gan_loss_rejects_unknown_mode():
    with pytest.raises(ValueError, match="wgangp"):
        GANLoss("wgangp")


def test_cycle_and_identity_scaling_as_official():
    a = torch.tensor([0.0, 1.0, -1.0, 0.5])
    b = torch.tensor([0.5, 1.0, 0.0, 0.0])
    l1 = (0.5 + 0.0 + 1.0 + 0.5) / 4
    assert cycle_loss(a, b, 10.0).item() == pytest.approx(10.0 * l1)
    # identity: lambda_identity * lambda (official: lambda_idt * lambda_B for G_A's idt)
    assert identity_loss(a, b, 10.0, 0.5).item() == pytest.approx(5.0 * l1)
    assert identity_loss(a, b, 7.0, 0.1).item() == pytest.approx(0.7 * l1)


def test_gan_loss_gradient_flows_to_prediction():
    p = torch.tensor([0.2, 0.4], requires_grad=True)
    GANLoss("lsgan")(p, True).backward()
    # d/dp mean((p-1)^2) = 2 (p - 1) / n
    assert torch.allclose(p.grad, torch.tensor([2 * (0.2 - 1) / 2, 2 * (0.4 - 1) / 2]))
