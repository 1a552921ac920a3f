"""models.load_generator on every supported format (files and in-memory dicts), wrapper
prefixes, and a clear CheckpointError for each kind of bad input."""
import argparse
import copy

import pytest
import torch
from torch import nn

import models
from models.errors import CorruptCheckpointError, NotACheckpointError, UnsafeCheckpointError, WrongCheckpointKindError
from helpers import randomize_norm_parameters_
from official.cyclegan import OfficialNLayerDiscriminator, OfficialResnetGenerator
from official.ugatit import OfficialUGATITGenerator


def image(size=32, channels=3):
    return torch.randn(2, channels, size, size)


def assert_same_outputs(net, reference, x):
    """Compared in float64: the two builds compute the same function with sums in different
    orders, which in float64 is off by ~1e-16 relative; 1e-9 leaves a factor 1e6 for the norm
    layers to amplify it, while one wrong or missing tensor changes outputs by far more."""
    net, reference = copy.deepcopy(net).double(), copy.deepcopy(reference).double()
    with torch.no_grad():
        expected = reference(x.double())
        expected = expected[0] if isinstance(expected, tuple) else expected
        torch.testing.assert_close(net(x.double()), expected, rtol=1e-9, atol=1e-9)


# --- official CycleGAN ---------------------------------------------------------------------

@pytest.mark.parametrize("use_dropout", [False, True])
def test_official_cyclegan_generator_file_loads_with_inferred_config(tmp_path, use_dropout):
    official = OfficialResnetGenerator(1, 2, ngf=8, n_blocks=3, use_dropout=use_dropout).eval()
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(official.state_dict(), path)
    net = models.load_generator(path)
    assert isinstance(net, models.ResnetGenerator) and not net.training
    assert net.config == dict(input_nc=1, output_nc=2, ngf=8, n_blocks=3, use_dropout=use_dropout, antialias=False,
                              antialias_up=False)
    assert_same_outputs(net, official, image(channels=1))


def test_old_official_checkpoint_with_instance_norm_running_stats_loads(tmp_path):
    official = OfficialResnetGenerator(3, 3, ngf=8, n_blocks=1)
    state_dict = dict(official.state_dict())
    for norm_key in ("model.2", "model.10.conv_block.2", "model.10.conv_block.6"):  # saved by torch < 0.4
        state_dict[f"{norm_key}.running_mean"] = torch.zeros(8)
        state_dict[f"{norm_key}.running_var"] = torch.ones(8)
    net = models.load_generator(state_dict)
    assert_same_outputs(net, official, image())


# --- U-GAT-IT ------------------------------------------------------------------------------

@pytest.mark.parametrize("light", [False, True])
def test_ugatit_generator_state_dict_loads_with_inferred_config(tmp_path, light):
    official = randomize_norm_parameters_(OfficialUGATITGenerator(3, 1, ngf=4, n_blocks=2, img_size=32, light=light))
    path = tmp_path / "genA2B.pt"
    torch.save(official.state_dict(), path)
    net = models.load_generator(path)
    assert isinstance(net, models.UGATITGenerator)
    assert net.config["light"] is light and net.config["ngf"] == 4 and net.config["n_blocks"] == 2
    assert net.config["output_nc"] == 1
    if not light:
        assert net.config["img_size"] == 32
    assert_same_outputs(net, official, image())


def test_ugatit_checkpoint_direction_picks_the_generator(tmp_path):
    gen_a2b = randomize_norm_parameters_(OfficialUGATITGenerator(3, 3, ngf=4, n_blocks=1, light=True))
    gen_b2a = randomize_norm_parameters_(OfficialUGATITGenerator(3, 3, ngf=4, n_blocks=1, light=True))
    disc = OfficialNLayerDiscriminator(3, ndf=4)
    path = tmp_path / "selfie2anime_params_latest.pt"
    torch.save({"genA2B": gen_a2b.state_dict(), "genB2A": gen_b2a.state_dict(), "disGA": disc.state_dict()}, path)
    x = image()
    assert_same_outputs(models.load_generator(path, direction="AtoB"), gen_a2b, x)
    assert_same_outputs(models.load_generator(path, direction="BtoA"), gen_b2a, x)


# --- this project's formats ------------------------------------------------------------------

ARCH_CONFIGS = {
    "adalin": dict(ngf=4, n_blocks=1),
    "resnet_9blocks": dict(ngf=4),
    "resnet_6blocks": dict(ngf=4, input_nc=1),
    "ugatit": dict(ngf=4, n_blocks=1, img_size=32),
    "ugatit_light": dict(ngf=4, n_blocks=1),
}


@pytest.mark.parametrize("arch", sorted(ARCH_CONFIGS))
def test_generator_payload_round_trip(tmp_path, arch):
    net = models.build_generator(arch, **ARCH_CONFIGS[arch])
    randomize_norm_parameters_(net)
    path = tmp_path / "G.pt"
    torch.save(models.generator_payload(net, arch), path)
    loaded = models.load_generator(path, norm_impl="eager")
    assert type(loaded) is type(net) and loaded.config == net.config
    assert_same_outputs(loaded, net.eval(), image(channels=net.config["input_nc"]))


def test_payload_of_a_wrapped_network_and_generator_from_payload():
    net = models.build_generator("adalin", ngf=4, n_blocks=1, norm_impl="eager")
    payload = models.generator_payload(nn.DataParallel(net), "adalin")
    assert payload["format"] == "cyclegan_ext.generator" and payload["version"] == 1
    assert payload["config"] == dict(input_nc=3, output_nc=3, ngf=4, n_blocks=1)
    rebuilt = models.generator_from_payload(payload)
    assert_same_outputs(rebuilt.eval(), net.eval(), image())
    with pytest.raises(ValueError, match="ResnetGenerator"):
        models.generator_payload(net, "resnet_9blocks")
    with pytest.raises(ValueError, match="n_blocks"):
        models.generator_payload(models.ResnetGenerator(ngf=4, n_blocks=6, norm_impl="eager"), "resnet_9blocks")


def test_training_checkpoint_direction_picks_the_generator(tmp_path):
    g_ab = models.build_generator("adalin", ngf=4, n_blocks=1)
    g_ba = models.build_generator("resnet_6blocks", ngf=4)
    checkpoint = {"format": "cyclegan_ext.train", "step": 10,
                  "generators": {"AtoB": models.generator_payload(g_ab, "adalin"),
                                 "BtoA": models.generator_payload(g_ba, "resnet_6blocks")}}
    path = tmp_path / "latest.pt"
    torch.save(checkpoint, path)
    assert_same_outputs(models.load_generator(path), g_ab.eval(), image())
    assert_same_outputs(models.load_generator(path, direction="BtoA"), g_ba.eval(), image())


def test_load_generators_finds_every_direction_a_file_holds_and_its_step(tmp_path):
    g_ab = models.build_generator("adalin", ngf=4, n_blocks=1)
    g_ba = models.build_generator("resnet_6blocks", ngf=4)
    torch.save({"format": "cyclegan_ext.train", "step": 10,
                "generators": {"AtoB": models.generator_payload(g_ab, "adalin"),
                               "BtoA": models.generator_payload(g_ba, "resnet_6blocks")}}, tmp_path / "latest.pt")
    found = models.load_generators(tmp_path / "latest.pt")
    assert sorted(found.generators) == ["AtoB", "BtoA"] and found.step == 10
    assert_same_outputs(found.generators["AtoB"], g_ab.eval(), image())
    assert_same_outputs(found.generators["BtoA"], g_ba.eval(), image())
    a2b = OfficialUGATITGenerator(3, 3, ngf=4, n_blocks=1, light=True)
    torch.save({"genA2B": a2b.state_dict()}, tmp_path / "ugatit.pt")
    found = models.load_generators(tmp_path / "ugatit.pt")
    assert list(found.generators) == ["AtoB"] and found.step is None
    official = OfficialResnetGenerator(3, 3, ngf=4, n_blocks=6)
    torch.save(official.state_dict(), tmp_path / "latest_net_G_A.pth")
    found = models.load_generators(tmp_path / "latest_net_G_A.pth")  # a single generator: no direction
    assert list(found.generators) == [None] and found.step is None
    assert_same_outputs(found.generators[None], official.eval(), image())
    with pytest.raises(NotACheckpointError, match="text.pt"):
        (tmp_path / "text.pt").write_text("hello")
        models.load_generators(tmp_path / "text.pt")


@pytest.mark.parametrize("arch", sorted(ARCH_CONFIGS) + ["resnet_4blocks"])
def test_arch_of_names_the_architecture_that_builds_the_network(arch):
    config = ARCH_CONFIGS.get(arch, dict(ngf=4))
    assert models.arch_of(nn.DataParallel(models.build_generator(arch, **config))) == arch


def test_generator_loads_into_the_free_norm_benchmark_build():
    official = OfficialUGATITGenerator(3, 3, ngf=4, n_blocks=1, light=True)
    net = models.load_generator(official.state_dict(), norm_impl="free")
    assert torch.equal(net.DownBlock[1].weight, official.DownBlock[1].weight)


# --- wrapper prefixes ------------------------------------------------------------------------

def test_dataparallel_and_compile_prefixes_are_stripped():
    official = OfficialResnetGenerator(3, 3, ngf=4, n_blocks=2)
    data_parallel = nn.DataParallel(official).state_dict()
    compiled = torch.compile(official).state_dict()
    both = {f"module._orig_mod.{k}": v for k, v in official.state_dict().items()}
    assert all(k.startswith("module.") for k in data_parallel)
    assert all(k.startswith("_orig_mod.") for k in compiled)
    for state_dict in (data_parallel, compiled, both):
        assert_same_outputs(models.load_generator(state_dict), official, image())


def test_ugatit_checkpoint_saved_from_dataparallel_loads():
    official = OfficialUGATITGenerator(3, 3, ngf=4, n_blocks=1, light=True)
    checkpoint = {"genA2B": nn.DataParallel(official).state_dict(), "genB2A": {}}
    assert_same_outputs(models.load_generator(checkpoint), official, image())


# --- errors ----------------------------------------------------------------------------------

def test_not_a_checkpoint(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"\xff\xd8\xff\xe0 not a checkpoint at all")
    with pytest.raises(models.CheckpointError, match="photo.jpg.*not a PyTorch checkpoint"):
        models.load_generator(path)


def test_random_bytes_and_images_are_not_checkpoints_nor_unsafe(tmp_path):
    from PIL import Image
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 16)
    png = tmp_path / "photo.pth"
    Image.new("RGB", (8, 8)).save(png, format="PNG")
    for path, found in ((noise, "starts with bytes 00 01 02"), (png, "it is a PNG image")):
        with pytest.raises(NotACheckpointError) as caught:
            models.load_generator(path)
        message = str(caught.value)
        assert str(path) in message and "not a PyTorch checkpoint" in message and found in message
        assert "unsafe" not in message and "weights_only=False" not in message


def test_wrong_kind_of_torch_file_says_so(tmp_path):
    path = tmp_path / "odd.pt"
    torch.save({"weights": torch.ones(3)}, path)
    with pytest.raises(WrongCheckpointKindError, match=r"odd.pt' is a PyTorch file but not a generator "
                                                       r"checkpoint: unknown architecture.*weights.*expected"):
        models.load_generator(path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pth"
    path.write_bytes(b"")
    with pytest.raises(models.CheckpointError, match="empty.pth.*empty"):
        models.load_generator(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_file(tmp_path, zip_format):
    full = tmp_path / "full.pth"
    torch.save(OfficialResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), full,
               _use_new_zipfile_serialization=zip_format)
    data = full.read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CorruptCheckpointError, match="cut.pth.*truncated or corrupt"):
        models.load_generator(path)


def test_unsafe_pickle_is_refused(tmp_path):
    path = tmp_path / "with_options.pth"
    torch.save({"opt": argparse.Namespace(lr=2e-4), "state_dict": {}}, path)
    with pytest.raises(UnsafeCheckpointError, match="with_options.pth' is unsafe.*weights_only loading refuses"
                                                    ".*argparse.Namespace"):
        models.load_generator(path)


def test_unknown_architecture(tmp_path):
    path = tmp_path / "classifier.pth"
    torch.save(nn.Sequential(nn.Linear(4, 4)).state_dict(), path)
    with pytest.raises(models.CheckpointError, match="classifier.pth.*unknown architecture"):
        models.load_generator(path)


def test_unet_generator_is_named_as_unsupported():
    with pytest.raises(models.CheckpointError, match="U-Net"):
        models.load_generator({"model.model.0.weight": torch.zeros(8, 3, 4, 4)})


def test_discriminator_is_not_taken_for_a_generator():
    with pytest.raises(models.CheckpointError, match="discriminator"):
        models.load_generator(OfficialNLayerDiscriminator(3, ndf=4).state_dict())


def test_batch_norm_cyclegan_generator_is_refused_with_a_reason():
    official = OfficialResnetGenerator(3, 3, ngf=4, n_blocks=1, norm_layer=_batch_norm)
    with pytest.raises(models.CheckpointError, match="instance"):
        models.load_generator(official.state_dict())


def _batch_norm(num_features):
    return nn.BatchNorm2d(num_features)


_batch_norm.func = nn.BatchNorm2d  # the official code reads norm_layer.func (a functools.partial)


def test_tensors_that_do_not_fit_the_recognised_architecture():
    state_dict = OfficialResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict()
    state_dict["model.4.weight"] = torch.zeros(8, 4, 5, 5)
    with pytest.raises(models.CheckpointError, match="do not fit"):
        models.load_generator(state_dict)


def test_non_dict_contents_and_unknown_declared_format(tmp_path):
    path = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], path)
    with pytest.raises(models.CheckpointError, match="list.pth.*list"):
        models.load_generator(path)
    with pytest.raises(models.CheckpointError, match="unknown format"):
        models.load_generator({"format": "somebody.else", "state_dict": {}})


def test_bad_payloads_and_training_checkpoints():
    payload = models.generator_payload(models.build_generator("adalin", ngf=4, n_blocks=1), "adalin")
    with pytest.raises(models.CheckpointError, match="unknown generator architecture"):
        models.load_generator({**payload, "arch": "unet_256"})
    with pytest.raises(models.CheckpointError, match="version"):
        models.load_generator({**payload, "version": 99})
    with pytest.raises(models.CheckpointError, match=r"generators\['BtoA'\]"):
        models.load_generator({"format": "cyclegan_ext.train", "generators": {"AtoB": payload}}, direction="BtoA")
    with pytest.raises(models.CheckpointError, match="genB2A"):
        models.load_generator({"genA2B": {}}, direction="BtoA")


def test_missing_file_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        models.load_generator(tmp_path / "nowhere.pth")
    with pytest.raises(ValueError, match="direction"):
        models.load_generator({}, direction="AB")
    with pytest.raises(TypeError, match="path or a dict"):
        models.load_generator(12)


def test_build_generator_rejects_unknown_and_contradictory_configs():
    with pytest.raises(ValueError, match="unknown generator architecture"):
        models.build_generator("unet_256")
    with pytest.raises(ValueError, match="n_blocks"):
        models.build_generator("resnet_9blocks", n_blocks=6)
    assert models.build_generator("resnet_6blocks", ngf=4, norm_impl="eager").config["n_blocks"] == 6


def test_a_folder_given_as_checkpoint(tmp_path):
    with pytest.raises(NotACheckpointError, match="is a folder; pass the checkpoint file in it"):
        models.load_generator(tmp_path)


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_weights_that_are_not_real_floating_point_are_refused_not_cast(tmp_path, dtype):
    net = models.build_generator("resnet_6blocks", ngf=8)
    state = net.state_dict()
    key = next(iter(state))
    state[key] = state[key].to(dtype)
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    with pytest.raises(models.CheckpointError, match=f"'{key}' holds {dtype}"):
        models.load_generator(path)


def test_weights_holding_nan_are_refused(tmp_path):
    net = models.build_generator("resnet_6blocks", ngf=8)
    state = net.state_dict()
    keys = [k for k, v in state.items() if v.is_floating_point()][2:4]
    for key in keys:
        state[key].view(-1)[0] = float("nan") if key == keys[0] else float("inf")
    with pytest.raises(models.CheckpointError, match=f"2 of {len(state)} tensors hold NaN or inf \\(first: '{keys[0]}'\\)"):
        models.load_generator(state)
