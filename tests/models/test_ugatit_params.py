"""models.ugatit_params against params files as U-GAT-IT writes them (UGATIT.save: torch.save of
a dict of six state_dicts), made here from the transcribed official networks."""
import pytest
import torch

import models
from models.errors import CheckpointError, WrongCheckpointKindError
from models.ugatit_params import (UGATIT_NETWORKS, load_ugatit_params, load_ugatit_params_into, read_ugatit_params,
                                  ugatit_params, ugatit_params_from_training_checkpoint)
from helpers import randomize_norm_parameters_
from official.ugatit import OfficialUGATITDiscriminator, OfficialUGATITGenerator

IMG = 32


def official_networks(light=False):
    """U-GAT-IT's six networks, small; the discriminators keep U-GAT-IT's depths (7 and 5)."""
    torch.manual_seed(0)
    nets = {name: randomize_norm_parameters_(OfficialUGATITGenerator(3, 3, ngf=4, n_blocks=2, img_size=IMG,
                                                                     light=light))
            for name in ("genA2B", "genB2A")}
    for name in ("disGA", "disGB"):
        nets[name] = OfficialUGATITDiscriminator(3, ndf=4, n_layers=7)
    for name in ("disLA", "disLB"):
        nets[name] = OfficialUGATITDiscriminator(3, ndf=4, n_layers=5)
    return nets


def save_as_ugatit(nets, path):
    torch.save({name: nets[name].state_dict() for name in UGATIT_NETWORKS}, path)  # UGATIT.save
    return path


@pytest.mark.parametrize("light", [False, True])
def test_loads_a_ugatit_params_file_and_computes_the_same(tmp_path, light):
    official = official_networks(light)
    path = save_as_ugatit(official, tmp_path / "selfie2anime_params_latest.pt")
    ours = load_ugatit_params(path, norm_impl="eager")
    assert set(ours) == set(UGATIT_NETWORKS)
    assert ours["genA2B"].config["light"] is light
    assert light or ours["genA2B"].config["img_size"] == IMG  # the light MLP does not fix the size
    assert [ours[n].config["n_layers"] for n in ("disGA", "disGB", "disLA", "disLB")] == [7, 7, 5, 5]
    for name in UGATIT_NETWORKS:
        mine, theirs = ours[name].state_dict(), official[name].state_dict()
        assert list(mine) == list(theirs)
        for key in theirs:
            assert torch.equal(mine[key], theirs[key]), (name, key)
    x = torch.rand(2, 3, IMG, IMG) * 2 - 1
    with torch.no_grad():
        for name in ("genA2B", "genB2A"):
            # float32, same formulas in a different order of operations: 1e-5 of the unit outputs
            for mine, theirs in zip(ours[name](x, with_cam=True), official[name](x)):
                torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)
        big = torch.rand(1, 3, 96, 96)  # the global discriminator's smallest input
        for name in ("disGA", "disLA"):
            ours[name].eval(), official[name].eval()
            for mine, theirs in zip(ours[name](big), official[name](big)):
                torch.testing.assert_close(mine, theirs, rtol=1e-4, atol=1e-5)


def test_exported_params_load_strictly_into_ugatits_networks(tmp_path):
    ours = load_ugatit_params(save_as_ugatit(official_networks(), tmp_path / "p.pt"), norm_impl="eager")
    with torch.no_grad():  # change every weight so the round trip cannot pass by accident
        for net in ours.values():
            for p in net.parameters():
                p.add_(0.5)
    path = tmp_path / "exported.pt"
    torch.save(ugatit_params(ours), path)
    params = torch.load(path, weights_only=True)
    assert list(params) == list(UGATIT_NETWORKS)
    assert {"weight_orig", "weight_u", "weight_v"} <= {k.rpartition(".")[2] for k in params["disGA"]}
    theirs = official_networks()
    for name in UGATIT_NETWORKS:
        theirs[name].load_state_dict(params[name], strict=True)
        for key, value in ours[name].state_dict().items():
            assert torch.equal(theirs[name].state_dict()[key], value), (name, key)


def test_load_generator_reads_a_params_file_in_both_directions(tmp_path):
    official = official_networks()
    path = save_as_ugatit(official, tmp_path / "p.pt")
    x = torch.rand(1, 3, IMG, IMG) * 2 - 1
    with torch.no_grad():
        for direction, name in (("AtoB", "genA2B"), ("BtoA", "genB2A")):
            net = models.load_generator(path, direction=direction, norm_impl="eager")
            torch.testing.assert_close(net(x), official[name](x)[0], rtol=1e-4, atol=1e-5)


def test_a_file_missing_a_network_is_refused_naming_it(tmp_path):
    params = {name: net.state_dict() for name, net in official_networks().items()}
    del params["disLB"]
    params["G_optimizer"] = {}
    torch.save(params, tmp_path / "p.pt")
    with pytest.raises(WrongCheckpointKindError, match=r"p\.pt.*missing disLB.*unexpected G_optimizer"):
        read_ugatit_params(tmp_path / "p.pt")


def test_keys_that_do_not_fit_are_listed_per_network(tmp_path):
    official = official_networks()
    params = {name: dict(net.state_dict()) for name, net in official.items()}
    params["genB2A"]["UpBlock1_9.conv1.weight"] = params["genB2A"].pop("UpBlock1_2.conv1.weight")
    params["disLA"].pop("gap_fc.weight_u")
    params["disGB"]["conv1x1.bias"] = torch.zeros(3)
    path = tmp_path / "bad.pt"
    torch.save(params, path)
    nets = {name: OfficialUGATITDiscriminator(3, ndf=4, n_layers=7 if "G" in name[3] else 5)
            for name in ("disGA", "disGB", "disLA", "disLB")}
    nets.update({name: models.UGATITGenerator(3, 3, ngf=4, n_blocks=2, img_size=IMG, norm_impl="eager")
                 for name in ("genA2B", "genB2A")})
    before = {name: {k: v.clone() for k, v in net.state_dict().items()} for name, net in nets.items()}
    with pytest.raises(CheckpointError) as error:
        load_ugatit_params_into(path, nets)
    message = str(error.value)
    assert "bad.pt" in message
    assert "genB2A: missing keys UpBlock1_2.conv1.weight" in message
    assert "genB2A: unexpected keys UpBlock1_9.conv1.weight" in message
    assert "disLA: missing keys gap_fc.weight_u" in message
    assert "disGB: shape mismatches conv1x1.bias is (3,) in the file" in message
    assert "genA2B" not in message and "disGA" not in message
    for name, net in nets.items():  # all or nothing
        for key, value in net.state_dict().items():
            assert torch.equal(value, before[name][key]), (name, key)


def test_not_a_params_file(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "sd.pt")
    with pytest.raises(WrongCheckpointKindError, match=r"sd\.pt' is not a U-GAT-IT params file.*missing genA2B"):
        load_ugatit_params(tmp_path / "sd.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(WrongCheckpointKindError, match="holds a list"):
        load_ugatit_params(tmp_path / "list.pt")
    with pytest.raises(FileNotFoundError, match="nothing.pt"):
        load_ugatit_params(tmp_path / "nothing.pt")


def training_checkpoint(arch="ugatit_light", discriminators=("GA", "GB", "LA", "LB")):
    gens = {k: models.UGATITGenerator(ngf=4, n_blocks=1, img_size=IMG, light=arch.endswith("light"),
                                      norm_impl="eager") for k in ("AtoB", "BtoA")}
    discs = {k: models.UGATITDiscriminator(3, ndf=4, n_layers=5 if k[0] == "G" else 3) for k in discriminators}
    return {"format": "cyclegan_ext.train", "version": 1, "step": 3, "opt": {"model": "ugatit"},
            "generators": {k: models.generator_payload(g, arch) for k, g in gens.items()},
            "discriminators": {k: d.state_dict() for k, d in discs.items()}}


def test_params_from_a_training_checkpoint_map_our_names_to_ugatits():
    checkpoint = training_checkpoint()
    params = ugatit_params_from_training_checkpoint(checkpoint, "run/latest.pt")
    assert params["genA2B"].keys() == checkpoint["generators"]["AtoB"]["state_dict"].keys()
    assert torch.equal(params["genB2A"]["FC.0.weight"], checkpoint["generators"]["BtoA"]["state_dict"]["FC.0.weight"])
    for ours, theirs in (("GA", "disGA"), ("GB", "disGB"), ("LA", "disLA"), ("LB", "disLB")):
        assert params[theirs].keys() == checkpoint["discriminators"][ours].keys()
        first_conv = "model.1.weight_orig"
        assert torch.equal(params[theirs][first_conv], checkpoint["discriminators"][ours][first_conv])
    assert load_ugatit_params(params, norm_impl="eager")["disLA"].config["n_layers"] == 3


def test_a_cyclegan_training_checkpoint_is_not_exportable():
    checkpoint = training_checkpoint(discriminators=("A", "B"))
    checkpoint["opt"]["model"] = "cycle_gan"
    with pytest.raises(WrongCheckpointKindError, match=r"latest.pt is not a U-GAT-IT training checkpoint.*cycle_gan"):
        ugatit_params_from_training_checkpoint(checkpoint, "run/latest.pt")
