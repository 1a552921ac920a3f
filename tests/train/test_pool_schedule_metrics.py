import math

import pytest
import torch

from train.recipes.cycle_gan.image_pool import ImagePool
from train.evaluation.image_quality import psnr, ssim
from train.recipes.cycle_gan.schedule import linear_rule, make_scheduler


def imgs(values):
    return torch.tensor(values, dtype=torch.float32).reshape(-1, 1, 1, 1)


def test_pool_fills_then_swaps_half_the_time():
    pool = ImagePool(4, seed=0)
    out = pool.query(imgs([1, 2, 3]))
    assert out.flatten().tolist() == [1, 2, 3]          # filling: returned as is, stored
    out = pool.query(imgs([4]))
    assert out.flatten().tolist() == [4]
    assert sorted(t.item() for t in pool.images) == [1, 2, 3, 4]
    swapped = 0
    n = 400
    for k in range(n):
        before = sorted(t.item() for t in pool.images)
        new = 100 + k
        got = pool.query(imgs([new])).item()
        after = sorted(t.item() for t in pool.images)
        if got == new:                                   # returned as is: pool unchanged
            assert after == before
        else:                                            # returned a stored one, new one stored instead
            swapped += 1
            assert got in before
            assert sorted(before + [new]) == sorted(after + [got])
        assert len(pool.images) == 4
    assert 0.4 < swapped / n < 0.6


def test_pool_size_zero_is_identity():
    x = torch.randn(3, 3, 4, 4)
    assert ImagePool(0).query(x) is x


def test_pool_state_roundtrip_gives_same_future():
    a = ImagePool(3, seed=1)
    for k in range(5):
        a.query(imgs([k]))
    b = ImagePool(3, seed=99)
    b.load_state_dict(a.state_dict())
    for k in range(20):
        x = imgs([10 + k, 50 + k])
        assert torch.equal(a.query(x), b.query(x))


def test_schedule_constant_then_linear_decay():
    n, nd = 3, 4
    rule = linear_rule(n, nd)
    # official lambda_rule with epoch_count=1: 1 - max(0, e + 1 - n) / (nd + 1)
    assert [rule(e) for e in range(n)] == [1.0] * n
    decay = [rule(e) for e in range(n, n + nd)]
    assert decay == pytest.approx([4 / 5, 3 / 5, 2 / 5, 1 / 5])
    assert rule(n + nd) == pytest.approx(0.0)
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = make_scheduler(opt, n, nd)
    lrs = []
    for _ in range(n + nd):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.5] * n + [0.5 * f for f in (0.8, 0.6, 0.4, 0.2)])


def test_psnr_of_known_mse():
    x = torch.zeros(2, 3, 8, 8)
    y = x.clone()
    y[0] += 0.1            # mse 0.01 -> 20 dB
    y[1, :, :4] += 0.5     # mse 0.125 -> 9.03 dB
    p = psnr(x, y)
    assert p[0].item() == pytest.approx(20.0)
    assert p[1].item() == pytest.approx(10 * math.log10(1 / 0.125))
    assert math.isinf(psnr(x, x)[0].item())


def test_ssim_identity_constant_and_noise():
    x = torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(ssim(x, x), torch.ones(2, dtype=torch.float64))
    a, b = 0.3, 0.7
    c1 = 0.01 ** 2
    s = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b)).item()
    assert s == pytest.approx((2 * a * b + c1) / (a * a + b * b + c1), rel=1e-6)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    noisier = (x + 0.3 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))).clamp(0, 1)
    assert (ssim(x, noisier) < ssim(x, noisy)).all() and (ssim(x, noisy) < 1).all()
