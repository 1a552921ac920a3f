"""python -m train --model ugatit: U-GAT-IT's training step (against tests/official/ugatit.py's
transcription of UGATIT.train), run outputs, exact resume, export / --init_from and DDP."""
import copy
import json

import pytest
import torch
from PIL import Image
from torch import nn

import models
from helpers import make_recipe, read_jsonl, run_train, torchrun, train_records
from train import options
from train.recipes.ugatit import UGATIT, heatmap_image
from official.ugatit import OfficialIteration, OfficialUGATITDiscriminator

# 32 px: the global discriminator gets n_layers 4 (needs >= 12 px), the local one 3 (>= 6 px).
BASE = ["--model", "ugatit", "--crop_size", "32", "--load_size", "32", "--ngf", "8", "--ndf", "8",
        "--n_blocks", "1", "--n_layers_global", "4", "--n_layers_local", "3", "--synthetic_size", "8",
        "--batch_size", "2", "--num_threads", "0", "--eval_size", "8", "--no_progress", "--n_epochs", "1",
        "--n_epochs_decay", "1", "--torch_threads", "1"]
TINY = [*BASE, "--light"]
QUIET = ["--print_freq", "1", "--display_freq", "100", "--eval_freq", "100", "--save_latest_freq", "100"]


class WithCAM(nn.Module):
    """Our generator with U-GAT-IT's forward: (image, cam_logit, heatmap)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x, with_cam=True)


def build_recipe(tmp_path, *args):
    return make_recipe(options.parse([*args, "--checkpoints_dir", str(tmp_path)]))


@pytest.mark.parametrize("light", [False, True])
def test_train_step_matches_ugatits_iteration(tmp_path, light):
    torch.manual_seed(0)
    recipe = build_recipe(tmp_path, *(TINY if light else BASE), "--crop_size", "16", "--load_size", "16")
    for net in recipe.networks().values():
        net.double()
    gens = {k: WithCAM(copy.deepcopy(g)) for k, g in recipe.generators.items()}
    discs = {}
    for name, net in recipe.discriminators.items():
        discs[name] = OfficialUGATITDiscriminator(3, ndf=8, n_layers=net.config["n_layers"]).double()
        discs[name].load_state_dict(net.state_dict(), strict=True)
    official = OfficialIteration(gens["AtoB"], gens["BtoA"], discs["GA"], discs["GB"], discs["LA"], discs["LB"])
    for _ in range(2):
        real_A, real_B = torch.rand(2, 2, 3, 16, 16, dtype=torch.float64) * 2 - 1
        expected = official(real_A, real_B)
        got = {k: v.item() for k, v in recipe.train_step(real_A, real_B).items()}
        assert set(got) == set(expected) == set(UGATIT.loss_names)
        for key, value in expected.items():
            # float64 throughout, the same operations; only the order of a few sums differs
            assert got[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
    # Adam's division by sqrt(v) + 1e-8 turns a float64 rounding of a gradient into at most
    # ~lr * 1e-8 in a parameter; 1e-9 leaves a factor of 10^4 above that.
    for k, gen in recipe.generators.items():
        for (name, p), q in zip(gen.named_parameters(), gens[k].net.parameters()):
            torch.testing.assert_close(p, q, rtol=1e-9, atol=1e-9, msg=f"{k} {name}")
    for k, net in recipe.discriminators.items():
        for key, value in discs[k].state_dict().items():
            torch.testing.assert_close(net.state_dict()[key], value, rtol=1e-9, atol=1e-9, msg=f"{k} {key}")
    assert recipe.opt.netG == ("ugatit_light" if light else "ugatit")


def test_defaults_are_ugatits():
    opt = options.parse(["--model", "ugatit"])
    assert (opt.lr, opt.ngf, opt.ndf, opt.n_blocks, opt.crop_size, opt.load_size) == (1e-4, 64, 64, 4, 256, 286)
    assert (opt.n_layers_global, opt.n_layers_local, opt.weight_decay) == (7, 5, 1e-4)
    assert (opt.adv_weight, opt.cycle_weight, opt.identity_weight, opt.cam_weight) == (1, 10, 10, 1000)
    assert opt.beta1 == 0.5 and not opt.light and opt.init_from is None


@pytest.fixture(scope="module")
def ugatit_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ugatit")
    assert run_train("--name", "u", "--checkpoints_dir", root, *TINY, *QUIET, "--display_freq", "2",
                     "--eval_freq", "2", "--max_steps", "4") == 0
    return root / "u"


def test_run_logs_every_loss_and_shows_cam_heatmaps(ugatit_run):
    recs = read_jsonl(ugatit_run / "metrics.jsonl")
    train = [r for r in recs if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for r in train:
        assert set(UGATIT.loss_names) <= set(r)
        assert r["Generator_loss"] == pytest.approx(r["G_loss_A"] + r["G_loss_B"], rel=1e-5)
    # 4 steps per epoch, n_epochs 1, n_epochs_decay 1: steps 1-4 at the full lr
    assert [r["lr"] for r in train] == [1e-4] * 4
    assert [r["step"] for r in recs if r["type"] == "eval"] == [2, 4]
    grid = Image.open(ugatit_run / "samples" / "step_0000004.png")
    # 14 rows (7 per domain: real, heatmap, identity, heatmap, translation, heatmap, cycle) of
    # 8 images of 32 px, each with a 1 px border on both sides, scaled x4
    assert grid.size == (8 * 34 * 4, 14 * 34 * 4)
    for name in ("losses.png", "eval.png", "index.html", "opt.json"):
        assert (ugatit_run / name).exists(), name
    assert json.loads((ugatit_run / "opt.json").read_text())["netG"] == "ugatit_light"


def test_heatmap_image_is_ugatits_cam_picture():
    """U-GAT-IT's cam(): x - min, / max, resized, jet colours; jet(0) is dark blue (0, 0, 0.5)
    and jet(1) dark red (0.5, 0, 0); images are in [-1, 1]."""
    heat = torch.tensor([[0.0, 1.0], [2.0, 3.0]]).reshape(1, 1, 2, 2)
    picture = heatmap_image(torch.cat([heat, heat * 5 + 3, torch.ones_like(heat)]), (8, 8))
    assert picture.shape == (3, 3, 8, 8)
    torch.testing.assert_close(picture[0], picture[1])  # each map scaled by its own min and max
    corner_low, corner_high = picture[0, :, 0, 0], picture[0, :, -1, -1]
    torch.testing.assert_close(corner_low, torch.tensor([-1.0, -1.0, 0.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(corner_high, torch.tensor([0.0, -1.0, -1.0]), atol=0.02, rtol=0)
    torch.testing.assert_close(picture[2], torch.tensor([-1.0, -1.0, 0.0]).reshape(3, 1, 1).expand(3, 8, 8),
                               atol=0.02, rtol=0)  # a flat map is all jet(0), no division by zero


def test_checkpoint_loads_with_load_generator_and_exports(ugatit_run, tmp_path):
    from models.ugatit_params import load_ugatit_params
    from train.export import main as export_main
    state = torch.load(ugatit_run / "latest.pt", weights_only=True)
    assert sorted(state["discriminators"]) == ["GA", "GB", "LA", "LB"]
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    g = models.load_generator(ugatit_run / "latest.pt", direction="BtoA")
    assert export_main(["--checkpoint", str(ugatit_run / "latest.pt"), "--ugatit_params", str(tmp_path / "p.pt")]) == 0
    nets = load_ugatit_params(tmp_path / "p.pt")
    with torch.no_grad():
        torch.testing.assert_close(nets["genB2A"].eval()(x), g(x), rtol=0, atol=0)
        torch.testing.assert_close(models.load_generator(tmp_path / "p.pt", direction="BtoA")(x), g(x), rtol=0, atol=0)


def _losses(recs):
    return [(r["step"], r["epoch"], r["lr"], *[r[k] for k in UGATIT.loss_names]) for r in recs]


def test_exact_resume_matches_uninterrupted_run(tmp_path):
    # 4 steps per epoch: stopping at 3 and resuming crosses an epoch boundary and the start of
    # the lr decay (steps 5-6 run at 3/4 and 1/2 of the lr).
    assert run_train("--name", "full", "--checkpoints_dir", tmp_path, *TINY, *QUIET, "--max_steps", "6") == 0
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, *TINY, *QUIET, "--max_steps", "3") == 0
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "6", "--no_progress") == 0
    full, resumed = train_records(tmp_path / "full"), train_records(tmp_path / "r")
    assert [r["step"] for r in resumed] == list(range(1, 7))
    assert _losses(resumed) == _losses(full)
    assert [r["lr"] for r in full][3:] == pytest.approx([1e-4, 0.75e-4, 0.5e-4], rel=1e-12)
    a, b = (torch.load(tmp_path / n / "latest.pt", weights_only=True) for n in ("full", "r"))
    for key, value in a["discriminators"]["LB"].items():
        assert torch.equal(value, b["discriminators"]["LB"][key]), key
    for key, value in a["generators"]["AtoB"]["state_dict"].items():
        assert torch.equal(value, b["generators"]["AtoB"]["state_dict"][key]), key


def test_init_from_starts_from_a_params_file(ugatit_run, tmp_path, capsys):
    from train.export import main as export_main
    params = tmp_path / "params.pt"
    assert export_main(["--checkpoint", str(ugatit_run / "latest.pt"), "--ugatit_params", str(params)]) == 0
    recipe = build_recipe(tmp_path, *TINY, "--init_from", str(params))
    exported = torch.load(params, weights_only=True)
    for ugatit, (group, ours) in {"genA2B": ("generators", "AtoB"), "genB2A": ("generators", "BtoA"),
                                  "disGA": ("discriminators", "GA"), "disGB": ("discriminators", "GB"),
                                  "disLA": ("discriminators", "LA"), "disLB": ("discriminators", "LB")}.items():
        state = getattr(recipe, group)[ours].state_dict()
        assert list(state) == list(exported[ugatit])
        assert all(torch.equal(state[k], v) for k, v in exported[ugatit].items()), ugatit
    # a run that does not match the file is refused in one line naming the file and the network
    code = run_train("--name", "bad", "--checkpoints_dir", tmp_path, *TINY, "--ngf", "4", "--init_from", params)
    assert code == 2
    err = capsys.readouterr().err
    assert "--init_from" in err and "params.pt" in err and "genA2B: shape mismatches" in err
    assert run_train("--name", "bad2", "--checkpoints_dir", tmp_path, *TINY, "--init_from", tmp_path / "no.pt") == 2
    assert "no.pt" in capsys.readouterr().err


def test_bad_options_are_refused_in_one_line(tmp_path, capsys):
    assert run_train("--name", "x", "--checkpoints_dir", tmp_path, *TINY, "--n_layers_global", "6") == 2
    assert "--n_layers_global 6 needs --crop_size >= 48" in capsys.readouterr().err
    assert run_train("--name", "y", "--checkpoints_dir", tmp_path, *TINY, "--netG", "adalin") == 2
    assert "--netG must be ugatit or ugatit_light" in capsys.readouterr().err
    assert run_train("--name", "z", "--checkpoints_dir", tmp_path, *TINY, "--cam_weight", "-1") == 2
    assert "--cam_weight must be a finite number >= 0, got -1.0" in capsys.readouterr().err
    assert run_train("--name", "c", "--checkpoints_dir", tmp_path, *TINY, "--compile") == 2
    assert "--compile does not work with --model ugatit" in capsys.readouterr().err


@pytest.mark.parametrize("crop, expected", [(64, (6, 5)), (16, (4, 4)), (256, (7, 5))])
def test_default_depths_too_deep_for_the_crop_become_the_deepest_that_fit(crop, expected, tmp_path, capsys):
    opt = options.parse(["--model", "ugatit", "--crop_size", str(crop), "--load_size", str(crop + 30),
                         "--checkpoints_dir", str(tmp_path)])
    assert (opt.n_layers_global, opt.n_layers_local) == expected
    for depth, default in zip(expected, (7, 5)):  # U-GAT-IT's rule written out: depth n needs 3 * 2^(n-2) px
        assert 3 * 2 ** (depth - 2) <= crop                          # it fits
        assert depth == default or 3 * 2 ** (depth - 1) > crop       # lowered only as far as needed
    err = capsys.readouterr().err
    if expected == (7, 5):
        assert err == ""
    else:
        assert len(err.strip().splitlines()) == 1 and f"using --n_layers_global {expected[0]}" in err
    models.UGATITDiscriminator(3, 4, opt.n_layers_global)(torch.zeros(1, 3, crop, crop))  # it runs


def test_a_given_depth_too_deep_for_the_crop_names_the_fix(tmp_path, capsys):
    args = ["--name", "x", "--checkpoints_dir", tmp_path, "--model", "ugatit", "--crop_size", "64"]
    assert run_train(*args, "--n_layers_global", "7") == 2
    err = capsys.readouterr().err
    assert "--n_layers_global 7 needs --crop_size >= 96" in err and "pass --n_layers_global 6" in err
    assert len(err.strip().splitlines()) == 1


def first_moments(path):
    """Adam's exp_avg after one step is (1 - beta1) * gradient, per parameter."""
    state = torch.load(path, weights_only=True)["optimizers"]
    return {name: [s["exp_avg"] for _, s in sorted(state[name]["state"].items())] for name in ("G", "D")}


@pytest.mark.slow
def test_ddp_two_gloo_processes_average_the_gradients(tmp_path):
    # Batch 1 on each of 2 ranks sees the samples of one batch-2 step in one process, and every
    # U-GAT-IT loss is a mean over the batch of per-sample terms (the norms are per sample), so
    # the averaged gradients equal the batch-2 gradients up to float32 rounding.
    ddp_args = list(TINY)
    ddp_args[ddp_args.index("--batch_size") + 1] = "1"
    torchrun("--name", "ddp", "--checkpoints_dir", tmp_path, *ddp_args, *QUIET, "--max_steps", "1")
    assert run_train("--name", "single", "--checkpoints_dir", tmp_path, *TINY, *QUIET, "--max_steps", "1") == 0
    state = torch.load(tmp_path / "ddp" / "latest.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    ddp, single = first_moments(tmp_path / "ddp" / "latest.pt"), first_moments(tmp_path / "single" / "latest.pt")
    for name in ("D", "G"):
        assert len(ddp[name]) == len(single[name])
        for i, (g_ddp, g_single) in enumerate(zip(ddp[name], single[name])):
            # Float32 gradients summed in another order differ by ~1e-6 of their scale. The G
            # step also sees the discriminators after their first Adam step, which moves each
            # weight by ~lr * sign(gradient): a rounding-level gradient (a sign either way) can
            # move one weight by 2 lr = 2e-4 differently, shifting G's gradients by far less
            # than 1e-3 of their scale.
            scale = g_single.abs().max().item()
            torch.testing.assert_close(g_ddp, g_single, rtol=1e-3, atol=1e-3 * scale, msg=f"{name} param {i}")


def test_demo_preset(tmp_path):
    opt = options.parse(["--demo", "--model", "ugatit", "--ngf", "16"])
    assert opt.ngf == 16 and opt.light and opt.crop_size == 32 and opt.dataset == "synthetic"
    assert (opt.n_layers_global, opt.n_layers_local) == (5, 3)  # 32 px fits depth 5 (>= 24 px), not 7
    assert run_train("--demo", "--model", "ugatit", "--name", "demo", "--checkpoints_dir", tmp_path,
                     "--max_steps", "2", "--eval_freq", "2", "--display_freq", "2", "--no_progress") == 0
    assert [r["step"] for r in train_records(tmp_path / "demo")] == [1]
    assert (tmp_path / "demo" / "samples" / "step_0000002.png").exists()


def test_channels_last_trains_the_same(tmp_path):
    for name, extra in (("nchw", []), ("cl", ["--channels_last"])):
        assert run_train("--name", name, "--checkpoints_dir", tmp_path, *TINY, *QUIET, "--max_steps", "2", *extra) == 0
    nchw, cl = train_records(tmp_path / "nchw"), train_records(tmp_path / "cl")
    # The same float32 maths with other memory orders (so other summation orders): ~1e-6
    # relative, amplified by one Adam step whose size is bounded by lr = 1e-4; 1e-3 is ample.
    for a, b in zip(nchw, cl):
        for key in UGATIT.loss_names:
            assert b[key] == pytest.approx(a[key], rel=1e-3, abs=1e-5), (a["step"], key)
