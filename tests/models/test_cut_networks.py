"""CUT's networks on our layers (models.ResnetGenerator / NLayerDiscriminator with antialias):
the state_dict key layout of CUT's networks.py, CUT's outputs given its weights, and CUT's
generator files (latest_net_G.pth) read by models.load_generator, translate, evaluate and export."""
import copy

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

import models
from models.antialias import binomial_filter
from models.errors import CheckpointError
from official import cut as official

IMPLS = ["fused", "eager"]
VARIANTS = [(True, True), (True, False), (False, True)]  # (antialias, antialias_up); both off is CycleGAN's


def layout(net):
    return [(k, tuple(v.shape)) for k, v in net.state_dict().items()]


def blocks(first, n, dim):
    return [(f"model.{i}.conv_block.{j}.{p}", (dim, dim, 3, 3) if p == "weight" else (dim,))
            for i in range(first, first + n) for j in (1, 5) for p in ("weight", "bias")]


# Read off networks.py for --netG resnet_9blocks, --ngf 64, RGB: the anti-aliased generator (CUT's
# default) puts a Downsample after each stride-1 down convolution and an Upsample before each up
# convolution; with --no_antialias --no_antialias_up it is CycleGAN's.
CUT_GENERATOR = [("model.1.weight", (64, 3, 7, 7)), ("model.1.bias", (64,)),
                 ("model.4.weight", (128, 64, 3, 3)), ("model.4.bias", (128,)), ("model.7.filt", (128, 1, 3, 3)),
                 ("model.8.weight", (256, 128, 3, 3)), ("model.8.bias", (256,)), ("model.11.filt", (256, 1, 3, 3)),
                 *blocks(12, 9, 256),
                 ("model.21.filt", (256, 1, 4, 4)), ("model.22.weight", (128, 256, 3, 3)), ("model.22.bias", (128,)),
                 ("model.25.filt", (128, 1, 4, 4)), ("model.26.weight", (64, 128, 3, 3)), ("model.26.bias", (64,)),
                 ("model.30.weight", (3, 64, 7, 7)), ("model.30.bias", (3,))]
CUT_GENERATOR_NO_ANTIALIAS = [("model.1.weight", (64, 3, 7, 7)), ("model.1.bias", (64,)),
                              ("model.4.weight", (128, 64, 3, 3)), ("model.4.bias", (128,)),
                              ("model.7.weight", (256, 128, 3, 3)), ("model.7.bias", (256,)),
                              *blocks(10, 9, 256),
                              ("model.19.weight", (256, 128, 3, 3)), ("model.19.bias", (128,)),
                              ("model.22.weight", (128, 64, 3, 3)), ("model.22.bias", (64,)),
                              ("model.26.weight", (3, 64, 7, 7)), ("model.26.bias", (3,))]
# --netD basic (n_layers 3), --ndf 64, anti-aliased: a Downsample after each of the first three convolutions.
CUT_DISCRIMINATOR = [("model.0.weight", (64, 3, 4, 4)), ("model.0.bias", (64,)), ("model.2.filt", (64, 1, 3, 3)),
                     ("model.3.weight", (128, 64, 4, 4)), ("model.3.bias", (128,)), ("model.6.filt", (128, 1, 3, 3)),
                     ("model.7.weight", (256, 128, 4, 4)), ("model.7.bias", (256,)), ("model.10.filt", (256, 1, 3, 3)),
                     ("model.11.weight", (512, 256, 4, 4)), ("model.11.bias", (512,)),
                     ("model.14.weight", (1, 512, 4, 4)), ("model.14.bias", (1,))]


@pytest.mark.parametrize("antialias, expected", [(True, CUT_GENERATOR), (False, CUT_GENERATOR_NO_ANTIALIAS)])
def test_generator_has_cuts_key_layout(antialias, expected):
    with torch.device("meta"):
        ours = models.ResnetGenerator(n_blocks=9, antialias=antialias, antialias_up=antialias)
    theirs = official.ResnetGenerator(3, 3, ngf=64, n_blocks=9, no_antialias=not antialias,
                                      no_antialias_up=not antialias)
    assert layout(ours) == layout(theirs) == expected


def test_discriminator_has_cuts_key_layout():
    with torch.device("meta"):
        ours = models.NLayerDiscriminator(antialias=True)
    assert layout(ours) == layout(official.NLayerDiscriminator(3, ndf=64, n_layers=3)) == CUT_DISCRIMINATOR


def test_blur_filters_are_cuts():
    for size in (3, 4):  # sums of powers of two over 16 and 64: exact in float32
        assert torch.equal(binomial_filter(size), official.get_filter(size))


@pytest.mark.parametrize("norm_impl", IMPLS)
@pytest.mark.parametrize("antialias, antialias_up", VARIANTS)
def test_generator_reproduces_cuts_outputs(norm_impl, antialias, antialias_up):
    theirs = official.ResnetGenerator(3, 3, ngf=8, n_blocks=2, no_antialias=not antialias,
                                      no_antialias_up=not antialias_up).double()
    ours = models.ResnetGenerator(ngf=8, n_blocks=2, antialias=antialias, antialias_up=antialias_up,
                                  norm_impl=norm_impl).double()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 36, 28, dtype=torch.float64)
    with torch.no_grad():
        # float64, the same operations in other orders: ~1e-16 relative, 1e-9 leaves room
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("norm_impl", IMPLS)
def test_discriminator_reproduces_cuts_outputs(norm_impl):
    theirs = official.NLayerDiscriminator(3, ndf=8, n_layers=3).double()
    ours = models.NLayerDiscriminator(ndf=8, n_layers=3, norm_impl=norm_impl, antialias=True).double()
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 3, 48, 40, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=1e-9, atol=1e-9)


def cut_generator_file(tmp_path, antialias=True, antialias_up=True, use_dropout=False, seed=0):
    """What CUT's save_networks writes: netG's state_dict as latest_net_G.pth."""
    torch.manual_seed(seed)
    net = official.ResnetGenerator(3, 3, ngf=8, n_blocks=3, use_dropout=use_dropout, no_antialias=not antialias,
                                   no_antialias_up=not antialias_up).eval()
    path = tmp_path / "latest_net_G.pth"
    torch.save(net.state_dict(), path)
    return path, net


@pytest.mark.parametrize("antialias, antialias_up", VARIANTS)
@pytest.mark.parametrize("use_dropout", [False, True])
def test_cut_generator_file_loads_with_its_config_and_gives_cuts_outputs(tmp_path, antialias, antialias_up,
                                                                         use_dropout):
    path, theirs = cut_generator_file(tmp_path, antialias, antialias_up, use_dropout)
    for norm_impl in IMPLS:
        net = models.load_generator(path, norm_impl=norm_impl)
        assert isinstance(net, models.ResnetGenerator) and not net.training
        assert net.config == dict(input_nc=3, output_nc=3, ngf=8, n_blocks=3, use_dropout=use_dropout,
                                  antialias=antialias, antialias_up=antialias_up)
        x = torch.rand(2, 3, 32, 32, dtype=torch.float64) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(copy.deepcopy(net).double()(x), copy.deepcopy(theirs).double()(x),
                                       rtol=1e-9, atol=1e-9)


def test_a_cut_file_that_fits_no_layout_is_one_clear_error(tmp_path):
    path, theirs = cut_generator_file(tmp_path)
    state = theirs.state_dict()
    without_last = {k: v for k, v in state.items() if not k.startswith("model.24.")}  # 12 + 3 blocks + 9
    torch.save(without_last, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"cut\.pth.*lacks 'model\.24\.weight'"):
        models.load_generator(tmp_path / "cut.pth")
    wrong_filter = dict(state, **{"model.7.filt": torch.zeros(16, 1, 5, 5)})
    torch.save(wrong_filter, tmp_path / "cut.pth")
    with pytest.raises(CheckpointError, match=r"cut\.pth.*recognised as resnet_3blocks .*do not fit"):
        models.load_generator(tmp_path / "cut.pth")


# --- the commands on a CUT file ------------------------------------------------------------------

def write_images(folder, count, seed):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


def test_translate_runs_a_cut_file(tmp_path):
    from train import translate
    from train.data import load_rgb, pil_to_tensor, to_uint8
    path, theirs = cut_generator_file(tmp_path)
    images = write_images(tmp_path / "in", 2, seed=3)
    assert translate.main(["--checkpoint", str(path), "--input", str(images), "--output", str(tmp_path / "out"),
                           "--device", "cpu"]) == 0
    x = pil_to_tensor(load_rgb(images / "0.png"))[None]  # 32 x 32: no padding needed
    with torch.no_grad():
        expected = to_uint8(theirs(x)[0])
    got = np.asarray(Image.open(tmp_path / "out" / "0.png").convert("RGB"))
    # float32 in both, other sums: a pixel may round to the neighbouring uint8 value
    assert np.abs(got.astype(int) - expected.astype(int)).max() <= 1


def test_evaluate_runs_a_cut_file_and_a_cut_training_checkpoint(tmp_path, capsys):
    from train import evaluate
    path, _ = cut_generator_file(tmp_path)
    dataroot = tmp_path / "data"
    write_images(dataroot / "testA", 4, seed=1)
    write_images(dataroot / "testB", 4, seed=2)

    def features(images):  # TEST DOUBLE for Inception: per-channel means and stds
        x = images.double() / 255
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1).numpy()

    assert evaluate.main(["--checkpoint", str(path), "--dataroot", str(dataroot), "--direction", "AtoB",
                          "--size", "32"], feature_extractor=features) == 0
    assert "G(testA) vs testB" in capsys.readouterr().out
    training = {"format": "cyclegan_ext.train", "opt": {"crop_size": 32}, "step": 1,
                "generators": {"AtoB": models.generator_payload(models.load_generator(path), "resnet_3blocks")}}
    torch.save(training, tmp_path / "latest.pt")
    assert evaluate.main(["--checkpoint", str(tmp_path / "latest.pt"), "--dataroot", str(dataroot)],
                         feature_extractor=features) == 0  # --direction both: what the checkpoint holds
    table = capsys.readouterr().out
    assert "G(testA) vs testB" in table and "F(testB)" not in table


def test_onnx_export_of_a_cut_training_checkpoint_matches_pytorch(tmp_path):
    from train import export
    path, _ = cut_generator_file(tmp_path)
    net = models.load_generator(path)
    training = {"format": "cyclegan_ext.train", "opt": {"crop_size": 32}, "step": 1,
                "generators": {"AtoB": models.generator_payload(net, "resnet_3blocks")}}
    torch.save(training, tmp_path / "latest.pt")
    out = tmp_path / "cut.onnx"
    assert export.main(["--checkpoint", str(tmp_path / "latest.pt"), "--onnx", str(out), "--size", "32"]) == 0
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    (got,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        expected = net(x).numpy()
    # float32 both ways with another operation order: ~1e-6 (tests/train/test_onnx_export.py); 1e-4 is
    # the command's own acceptance bound
    assert np.abs(got - expected).max() < 1e-4
