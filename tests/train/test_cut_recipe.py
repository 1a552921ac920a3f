"""python -m train --model cut / fastcut: CUT's PatchNCE loss, patch sampler and training step
against tests/official/cut.py's transcription of CUT's code given the same weights, inputs, patch
ids and coin tosses; the options and presets; netF built on the first batch, saved and resumed
exactly; DDP."""
import copy
import types

import numpy as np
import pytest
import torch

import models
from helpers import make_recipe, read_jsonl, run_train, torchrun, train_records
from official import cut as official
from train import options
from train.recipes.cut import CUT
from train.recipes.cut.losses import patch_nce_loss
from train.recipes.cut.patch_sampler import PatchSampler

# 32 px: the anti-aliased 70x70 PatchGAN needs more than 16. Default --nce_layers, 6 blocks.
BASE = ["--crop_size", "32", "--load_size", "32", "--netG", "resnet_6blocks", "--ngf", "8", "--ndf", "8",
        "--synthetic_size", "8", "--batch_size", "2", "--num_threads", "0", "--eval_size", "8", "--no_progress",
        "--n_epochs", "1", "--n_epochs_decay", "1", "--torch_threads", "1", "--netF_nc", "16"]
QUIET = ["--print_freq", "1", "--display_freq", "100", "--eval_freq", "100", "--save_latest_freq", "100"]
# Float64 comparisons: the same operations with sums in other orders (batched convolutions, a
# dot product instead of bmm) differ by ~1e-16 relative; 1e-9 leaves 1e7 for the norms to
# amplify that, and any wrong or missing term moves a loss by far more.
REL = 1e-9


@pytest.fixture
def float64():
    """Every tensor and parameter created in the test (netF's lazily built MLPs too) in float64."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(default)


def build_recipe(tmp_path, model, *args):
    return make_recipe(options.parse(["--model", model, *BASE, *args, "--checkpoints_dir", str(tmp_path)]))


class Coins:
    """Scripted values of random(): the coin tosses of --flip_equivariance."""

    def __init__(self, values):
        self.values = list(values)

    def random(self):
        return self.values.pop(0)

    __call__ = random


def cut_options(opt):
    """The CUT options the transcription reads, from ours."""
    names = ("nce_idt", "lambda_GAN", "lambda_NCE", "nce_layers", "flip_equivariance", "num_patches", "nce_T",
             "batch_size", "netF", "lr", "beta1", "gan_mode", "nce_includes_all_negatives_from_minibatch")
    return types.SimpleNamespace(**{n: getattr(opt, n) for n in names}, beta2=0.999)


def cut_networks(recipe):
    """CUT's netG and netD holding copies of our generator's and discriminator's weights."""
    opt = recipe.opt
    G = official.ResnetGenerator(3, 3, ngf=opt.ngf, n_blocks=6, no_antialias=opt.no_antialias,
                                 no_antialias_up=opt.no_antialias_up)
    D = official.NLayerDiscriminator(3, ndf=opt.ndf, n_layers=opt.n_layers_D, no_antialias=opt.no_antialias)
    G.load_state_dict(recipe.generators["AtoB"].state_dict(), strict=True)
    D.load_state_dict(recipe.discriminators["D"].state_dict(), strict=True)
    return G, D


@pytest.mark.parametrize("model, extra", [("cut", []), ("fastcut", []),
                                          ("cut", ["--nce_includes_all_negatives_from_minibatch"]),
                                          ("cut", ["--no_antialias", "--no_antialias_up", "--gan_mode", "vanilla"])])
def test_train_step_matches_cuts_iteration(tmp_path, monkeypatch, float64, model, extra):
    torch.manual_seed(0)
    # normal(0, 0.1) weights: CUT's xavier(0.02) keeps the discriminator's outputs near 0, where
    # a wrong target or sign would hardly show.
    recipe = build_recipe(tmp_path, model, "--init_type", "normal", "--init_gain", "0.1", *extra)
    G, D = cut_networks(recipe)
    adopted = []  # netF's weights as built on our first batch, before any step
    adopt = CUT.adopt_patch_sampler
    monkeypatch.setattr(CUT, "adopt_patch_sampler",
                        lambda self: (adopted.append(copy.deepcopy(self.patch_sampler.state_dict())), adopt(self)))
    drawn, randperm = [], torch.randperm

    def recording_randperm(n, **kwargs):
        drawn.append(randperm(n, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(torch, "randperm", recording_randperm)
    recipe.flips = Coins([0.3, 0.8])  # step 1 flipped (with --flip_equivariance), step 2 not
    batches = [tuple(torch.rand(2, 2, 3, 32, 32) * 2 - 1) for _ in range(2)]
    ours = [{k: v.item() for k, v in recipe.train_step(a, b).items()} for a, b in batches]

    # CUT: data_dependent_initialize on the first batch (its own patches and coin; it changes no
    # weight), netF then takes our netF's first weights, then the two iterations on our patches.
    monkeypatch.setattr(torch, "randperm", randperm)
    monkeypatch.setattr(np.random, "random", Coins([0.9, 0.3, 0.8]))
    F = official.PatchSampleF(use_mlp=True, nc=recipe.opt.netF_nc)
    cut = official.CUTModel(cut_options(recipe.opt), G, D, F)
    cut.data_dependent_initialize(*batches[0])
    F.load_state_dict(adopted[0], strict=True)
    replay = iter(drawn)

    def replaying_randperm(n, **kwargs):
        ids = next(replay)
        assert len(ids) == n
        return ids

    monkeypatch.setattr(torch, "randperm", replaying_randperm)
    expected = [cut.optimize_parameters(a, b) for a, b in batches]
    assert next(replay, None) is None  # CUT drew exactly the patches we drew
    for got, want in zip(ours, expected):
        assert set(got) == set(CUT.loss_names) and set(want) <= set(got)
        for key, value in want.items():
            assert got[key] == pytest.approx(value, rel=REL, abs=1e-12), key
        if not recipe.opt.nce_idt:
            assert got["NCE_Y"] == 0
    assert len(adopted) == 1 and sorted(recipe.optimizers) == ["D", "F", "G"]
    # After two Adam steps: a float64 rounding delta of a gradient moves a weight by at most
    # lr * delta / eps (Adam divides by sqrt(v) + 1e-8), ~2e-4 * 1e-16 / 1e-8 = 2e-12.
    for ours_net, cut_net, name in ((recipe.generators["AtoB"], G, "G"), (recipe.discriminators["D"], D, "D"),
                                    (recipe.patch_sampler, F, "F")):
        theirs = cut_net.state_dict()
        for key, value in ours_net.state_dict().items():
            torch.testing.assert_close(value, theirs[key], rtol=REL, atol=REL, msg=f"{name} {key}")


@pytest.mark.parametrize("from_batch", [False, True])
def test_patch_nce_loss_is_cuts(float64, from_batch):
    opt = types.SimpleNamespace(nce_includes_all_negatives_from_minibatch=from_batch, batch_size=3, nce_T=0.07)
    query, key = (torch.nn.functional.normalize(torch.randn(3 * 5, 4), dim=1) for _ in range(2))
    key.requires_grad_(True)
    query.requires_grad_(True)
    ours = patch_nce_loss(query, key, images=3, temperature=0.07, negatives_from_batch=from_batch)
    theirs = official.PatchNCELoss(opt)(query, key)
    torch.testing.assert_close(ours, theirs, rtol=REL, atol=0)
    ours.sum().backward()
    assert key.grad is None  # the keys are constants, as in CUT
    expected = torch.autograd.grad(official.PatchNCELoss(opt)(query, key).sum(), query)[0]
    torch.testing.assert_close(query.grad, expected, rtol=REL, atol=1e-12)


@pytest.mark.parametrize("use_mlp", [True, False])
def test_patch_sampler_is_cuts(float64, use_mlp):
    features = [torch.randn(2, 6, 5, 5), torch.randn(2, 4, 3, 3)]  # 25 and 9 positions
    ours = PatchSampler(use_mlp=use_mlp, nc=8)
    ours.build([6, 4])
    theirs = official.PatchSampleF(use_mlp=use_mlp, nc=8)
    if use_mlp:
        theirs.create_mlp(features)
        theirs.load_state_dict(ours.state_dict(), strict=True)  # CUT's keys: mlp_0.0.weight, ...
    samples, ids = ours(features, num_patches=16)
    assert [len(i) for i in ids] == [16, 9] and [s.shape[0] for s in samples] == [32, 18]
    expected, _ = theirs(features, 16, ids)
    for got, want in zip(samples, expected):
        torch.testing.assert_close(got, want, rtol=REL, atol=1e-12)
    rebuilt = PatchSampler(use_mlp=use_mlp, nc=8)
    rebuilt.build_from_state_dict(ours.state_dict())
    rebuilt.load_state_dict(ours.state_dict(), strict=True)


def test_generator_features_come_from_one_pass_and_are_cuts(float64):
    ours = models.ResnetGenerator(ngf=4, n_blocks=6, antialias=True, antialias_up=True, norm_impl="fused")
    theirs = official.ResnetGenerator(3, 3, ngf=4, n_blocks=6)
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x, layers = torch.rand(2, 3, 32, 32), (0, 4, 8, 12, 16)
    fake, features = ours(x, layers=layers)
    encoded = ours(x, layers=layers, encode_only=True)
    with torch.no_grad():
        expected = theirs(x, list(layers), encode_only=True)
        torch.testing.assert_close(fake, theirs(x), rtol=REL, atol=REL)
    assert len(features) == len(encoded) == len(expected) == 5
    for got, again, want in zip(features, encoded, expected):
        torch.testing.assert_close(got, want, rtol=REL, atol=REL)
        torch.testing.assert_close(again, want, rtol=REL, atol=REL)
    with pytest.raises(ValueError, match=r"layers must be increasing indices in \[0, 28\]"):
        ours(x, layers=(4, 0))


def test_defaults_are_cuts_and_fastcuts():
    cut = options.parse(["--model", "cut"])
    assert (cut.netG, cut.lr, cut.beta1, cut.n_epochs, cut.n_epochs_decay, cut.gan_mode) == \
        ("resnet_9blocks", 2e-4, 0.5, 200, 200, "lsgan")
    assert (cut.lambda_GAN, cut.lambda_NCE, cut.nce_idt, cut.nce_layers, cut.netF, cut.netF_nc, cut.nce_T,
            cut.num_patches, cut.flip_equivariance, cut.nce_includes_all_negatives_from_minibatch) == \
        (1.0, 1.0, True, "0,4,8,12,16", "mlp_sample", 256, 0.07, 256, False, False)
    assert (cut.init_type, cut.init_gain, cut.no_antialias, cut.no_antialias_up) == ("xavier", 0.02, False, False)
    fast = options.parse(["--model", "fastcut"])
    assert (fast.nce_idt, fast.lambda_NCE, fast.flip_equivariance, fast.n_epochs, fast.n_epochs_decay) == \
        (False, 10.0, True, 150, 50)
    # CUT's boolean forms, and an option of FastCUT's preset given explicitly
    assert options.parse(["--model", "fastcut", "--nce_idt", "--flip_equivariance", "False"]).nce_idt is True
    assert options.parse(["--model", "cut", "--nce_idt", "false"]).nce_idt is False


@pytest.mark.parametrize("args, message", [
    (["--model", "cut", "--nce_layers", "0,4,99"], "--nce_layers must be increasing layer indices in [0, 31]"),
    (["--model", "cut", "--nce_layers", "4,0"], "--nce_layers must be increasing"),
    (["--model", "cut", "--nce_layers", "a,b"], "--nce_layers must be a comma list of layer indices"),
    (["--model", "fastcut", "--netG", "adalin"], "--netG must be resnet_9blocks or resnet_6blocks"),
    (["--model", "cut", "--nce_T", "0"], "--nce_T must be a finite number > 0"),
    (["--model", "cut", "--lambda_NCE", "-1"], "--lambda_NCE must be a finite number >= 0"),
    (["--model", "cut", "--num_patches", "0"], "--num_patches must be an integer >= 1"),
    (["--model", "cut", "--nce_idt", "maybe"], "expected a boolean"),
    (["--model", "cycle_gan", "--lambda_NCE", "2"], "--lambda_NCE: an option of --model cut"),
    (["--model", "cut", "--light"], "--light: an option of --model ugatit"),
])
def test_bad_options_are_refused_in_one_line(tmp_path, capsys, args, message):
    assert run_train(*args, "--name", "x", "--checkpoints_dir", tmp_path) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1] and "Traceback" not in "".join(err)


@pytest.fixture(scope="module")
def cut_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cut")
    assert run_train("--name", "c", "--checkpoints_dir", root, "--model", "cut", *BASE, *QUIET, "--display_freq", "2",
                     "--eval_freq", "2", "--max_steps", "4") == 0
    return root / "c"


def test_run_logs_cuts_losses_samples_and_one_sided_evaluation(cut_run):
    records = read_jsonl(cut_run / "metrics.jsonl")
    train = [r for r in records if r["type"] == "train"]
    assert [r["step"] for r in train] == [1, 2, 3, 4]
    for r in train:
        assert set(CUT.loss_names) <= set(r)
        assert r["G"] == pytest.approx(r["G_GAN"] + (r["NCE"] + r["NCE_Y"]) / 2, rel=1e-5)
    evals = [r for r in records if r["type"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4]
    assert {"psnr_AtoB", "ssim_AtoB", "psnr_identity_AtoB"} <= set(evals[0]) and "psnr_BtoA" not in evals[0]
    from PIL import Image
    # 4 rows (real A, G(A), real B, G(B)) of 8 images of 32 px with 1 px borders, scaled x4
    assert Image.open(cut_run / "samples" / "step_0000004.png").size == (8 * 34 * 4, 4 * 34 * 4)
    assert (cut_run / "index.html").exists() and (cut_run / "eval.png").exists()


def test_checkpoint_holds_netF_and_loads_as_one_generator(cut_run):
    state = torch.load(cut_run / "latest.pt", weights_only=True)
    assert sorted(state["generators"]) == ["AtoB"] and sorted(state["discriminators"]) == ["D"]
    assert sorted(state["optimizers"]) == sorted(state["schedulers"]) == ["D", "F", "G"]
    assert sorted(state["netF"]) == [f"mlp_{i}.{j}.{p}" for i in range(5) for j in (0, 2) for p in ("bias", "weight")]
    payload = state["generators"]["AtoB"]
    assert payload["arch"] == "resnet_6blocks" and payload["config"]["antialias"] and payload["config"]["antialias_up"]
    net = models.load_generator(cut_run / "latest.pt")
    with torch.no_grad():
        x = torch.rand(1, 3, 32, 32) * 2 - 1
        assert net(x).shape == x.shape


def netF_and_its_adam(path):
    state = torch.load(path, weights_only=True)
    return state["netF"], state["optimizers"]["F"]["state"]


@pytest.mark.parametrize("model", ["cut", "fastcut"])
def test_resume_restores_netF_its_adam_and_the_coin_exactly(tmp_path, model):
    # 4 steps per epoch: stopping at 3 and resuming crosses an epoch end.
    args = ["--model", model, *BASE, *QUIET]
    assert run_train("--name", "full", "--checkpoints_dir", tmp_path, *args, "--max_steps", "6") == 0
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, *args, "--max_steps", "3") == 0
    assert run_train("--name", "r", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", "6",
                     "--no_progress") == 0
    full, resumed = (train_records(tmp_path / n) for n in ("full", "r"))
    assert [[r[k] for k in CUT.loss_names] for r in resumed] == [[r[k] for k in CUT.loss_names] for r in full]
    (net_a, adam_a), (net_b, adam_b) = (netF_and_its_adam(tmp_path / n / "latest.pt") for n in ("full", "r"))
    for key, value in net_a.items():
        assert torch.equal(value, net_b[key]), key
    for index, moments in adam_a.items():
        for name, value in moments.items():
            assert torch.equal(value, adam_b[index][name]), (index, name)


def test_netF_sample_and_no_nce_train_without_netF_parameters(tmp_path):
    for name, extra in (("sample", ["--netF", "sample"]), ("nonce", ["--lambda_NCE", "0"])):
        assert run_train("--name", name, "--checkpoints_dir", tmp_path, "--model", "cut", *BASE, *QUIET,
                         "--max_steps", "2", *extra) == 0
        state = torch.load(tmp_path / name / "latest.pt", weights_only=True)
        assert sorted(state["optimizers"]) == ["D", "G"] and "netF" not in state
    nonce = train_records(tmp_path / "nonce")
    assert all(r["NCE"] == r["NCE_Y"] == 0 and r["G"] == r["G_GAN"] for r in nonce)


def first_moments(path):
    """Adam's exp_avg after one step is (1 - beta1) * gradient, per parameter."""
    state = torch.load(path, weights_only=True)["optimizers"]
    return {name: [s["exp_avg"] for _, s in sorted(state[name]["state"].items())] for name in ("G", "D", "F")}


@pytest.mark.slow
@pytest.mark.parametrize("model", ["cut", "fastcut"])
def test_ddp_two_gloo_processes_average_the_gradients(tmp_path, model):
    # Batch 1 on each of 2 ranks sees the samples of one batch-2 step in one process. Every CUT
    # loss is a mean over the batch of per-image terms: the norms work per image, the negatives
    # of a patch come from its own image, and every process draws the same patch positions and
    # coin (the same seeds); so the averaged gradients equal the batch-2 gradients up to float32
    # rounding.
    args = ["--model", model, *BASE, *QUIET, "--max_steps", "1"]
    ddp_args = list(args)
    ddp_args[ddp_args.index("--batch_size") + 1] = "1"
    torchrun("--name", "ddp", "--checkpoints_dir", tmp_path, *ddp_args)
    assert run_train("--name", "single", "--checkpoints_dir", tmp_path, *args) == 0
    state = torch.load(tmp_path / "ddp" / "latest.pt", weights_only=True)
    assert state["world_size"] == 2 and len(state["rank_states"]) == 2
    ddp, single = first_moments(tmp_path / "ddp" / "latest.pt"), first_moments(tmp_path / "single" / "latest.pt")
    for name in ("D", "G", "F"):
        assert len(ddp[name]) == len(single[name])
        # The scale of the network's gradients: a convolution's bias before an instance norm has
        # a zero gradient in exact arithmetic, so its values are rounding noise of that scale.
        scale = max(g.abs().max().item() for g in single[name])
        for i, (g_ddp, g_single) in enumerate(zip(ddp[name], single[name])):
            # Float32 sums in another order differ by ~1e-6 of the scale; G and netF also see D
            # after its first Adam step, which moves a weight by ~lr * sign(gradient): a
            # rounding-level gradient of either sign can move one weight by 2 lr = 4e-4
            # differently, shifting G's gradients by far less than 1e-3 of their scale.
            torch.testing.assert_close(g_ddp, g_single, rtol=1e-3, atol=1e-3 * scale, msg=f"{name} param {i}")
