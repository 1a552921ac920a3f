"""The cycle_gan recipe's batched step (generator calls that do not wait for each other's output
run as one batch; see train/recipes/cycle_gan/recipe.py) against the official model's iteration
(train.bench.OfficialCycleGAN: six generator calls, two per discriminator, the per-parameter
Adam), from the same weights on the same images, in float64."""
import pytest
import torch

from train import options
from train.bench import OfficialCycleGAN
from train.recipes import RunContext
from train.recipes.cycle_gan import CycleGAN
from train.run.precision import Precision

LOSSES = CycleGAN.loss_names


def build(cls, argv):
    torch.manual_seed(0)
    cpu = torch.device("cpu")
    recipe = cls(options.parse(argv), RunContext(cpu, Precision("none", cpu), steps_per_epoch=1))
    for net in recipe.networks().values():
        net.double()
    return recipe


@pytest.mark.parametrize("extra", [[], ["--lambda_identity", "0"], ["--batch_size", "2", "--channels_last"]])
def test_batched_step_is_the_official_iteration(tmp_path, extra):
    argv = ["--netG", "resnet_6blocks", "--ngf", "4", "--ndf", "4", "--n_layers_D", "2", "--crop_size", "16",
            "--pool_size", "1", "--checkpoints_dir", str(tmp_path), *extra]
    ours, official = build(CycleGAN, argv), build(OfficialCycleGAN, argv)
    n = 2 if "--batch_size" in extra else 1
    generator = torch.Generator().manual_seed(1)
    memory_format = torch.channels_last if "--channels_last" in extra else torch.contiguous_format
    for _ in range(3):  # the pool is full from the second step on: its swaps run too
        real_A, real_B = ((torch.rand(n, 3, 16, 16, generator=generator, dtype=torch.float64) * 2 - 1)
                          .contiguous(memory_format=memory_format) for _ in range(2))
        got, expected = ours.train_step(real_A, real_B), official.train_step(real_A, real_B)
        # float64; what differs is the order of the sums inside batched convolutions (and the
        # Adam kernels): ~1e-16 relative per sum, far below 1e-10 after three steps.
        for key in LOSSES:
            assert got[key].item() == pytest.approx(expected[key].item(), rel=1e-10, abs=1e-12), key
    # Compared through what the networks compute: a convolution bias right before an instance
    # norm has a gradient that is zero but for rounding, which Adam's normalisation turns into
    # steps of +-lr in either direction; the norm removes it again from every output.
    probe = torch.rand(1, 3, 16, 16, generator=generator, dtype=torch.float64) * 2 - 1
    with torch.no_grad():
        for name in ("AtoB", "BtoA"):
            torch.testing.assert_close(ours.generators[name](probe), official.generators[name](probe),
                                       rtol=1e-9, atol=1e-12, msg=name)
    assert len({tuple(r.shape) for r in (ours.fake_B, ours.rec_A, ours.fake_A, ours.rec_B)}) == 1
