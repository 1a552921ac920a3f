"""The contract every registered recipe keeps (train/recipes/base.py), checked for each entry of
RECIPES: a new recipe gets these tests by being registered.

- train_step returns exactly `loss_names`, as detached 0-d tensors, and never makes the host wait
  for the device: on the CPU the device is the host, so the test counts the Python calls that
  would synchronise on a GPU (tests/helpers.py SyncCounter); the run reads the losses (one
  .item() each) only on logging steps. On CUDA torch itself is asked to raise on a sync.
- latest.pt holds the format's keys, the recipe's networks, optimisers and schedulers under
  their names (those it has after a step: CUT's netF joins on the first batch), and generators
  that models.load_generator reads, in each direction the recipe trains;
- a run stopped and resumed continues exactly: the same losses and the same final weights as a
  run that never stopped;
- sample_rows gives 2 * sample_rows_per_domain rows shaped like the input images.

Each recipe runs its own --demo preset, made tiny by the same overrides."""
import os

import pytest
import torch

import models
from helpers import SyncCounter, make_recipe, run_train, train_records
from models.training_checkpoint import FORMAT_KEYS, RecipeState, RunProgress
from train import options
from train.recipes import RECIPES, get_recipe
from train.run.run import Run

SMALL = ["--ngf", "8", "--ndf", "8", "--n_blocks", "1", "--synthetic_size", "8", "--batch_size", "2",
         "--num_threads", "0", "--eval_size", "8", "--no_progress", "--torch_threads", "1",
         "--n_epochs", "1", "--n_epochs_decay", "2", "--pool_size", "1"]
QUIET = ["--display_freq", "1000", "--eval_freq", "1000", "--save_latest_freq", "1000"]
STEPS = 7  # 8 scenes, batch 2: 4 steps per epoch, so the run crosses an epoch end


def tiny(model):
    return ["--model", model, "--demo", *SMALL]


@pytest.fixture(params=sorted(RECIPES))
def model(request):
    return request.param


def images(opt, seed):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(2, 3, opt.crop_size, opt.crop_size, generator=generator) * 2 - 1 for _ in range(2))


def test_train_step_returns_its_loss_names_and_never_synchronises(model, tmp_path, monkeypatch):
    recipe_class = get_recipe(model)
    counter = SyncCounter(monkeypatch)
    per_step = []  # (sync calls inside train_step, sync calls in the run's bookkeeping after it)
    original_step, original_after = recipe_class.train_step, Run.after_step

    def train_step(recipe, real_A, real_B):
        counter.watch(recipe.optimizers.values())
        counter.calls, counter.active = [], True
        try:
            losses = original_step(recipe, real_A, real_B)
        finally:
            counter.active = False
        per_step.append([list(counter.calls)])
        assert tuple(losses) == recipe_class.loss_names
        assert all(not v.requires_grad and v.dim() == 0 for v in losses.values())
        return losses

    def after_step(run, losses):
        counter.watch(run.recipe.optimizers.values())
        counter.calls, counter.active = [], True
        try:
            original_after(run, losses)
        finally:
            counter.active = False
        per_step[-1].append(list(counter.calls))

    monkeypatch.setattr(recipe_class, "train_step", train_step)
    monkeypatch.setattr(Run, "after_step", after_step)
    assert run_train("--name", "sync", "--checkpoints_dir", tmp_path, *tiny(model), "--max_steps", STEPS,
                     "--print_freq", "3", *QUIET) == 0
    assert len(per_step) == STEPS
    logged = {1, 3, 6}  # step 1 and every --print_freq
    for step, (inside, after) in enumerate(per_step, start=1):
        assert inside == [], (step, inside)
        assert after == (["item"] * len(recipe_class.loss_names) if step in logged else []), (step, after)
    assert [r["step"] for r in train_records(tmp_path / "sync")] == sorted(logged)


def test_checkpoint_holds_the_format_and_the_recipes_parts(model, tmp_path):
    assert run_train("--name", "c", "--checkpoints_dir", tmp_path, *tiny(model), "--max_steps", 2, *QUIET) == 0
    path = tmp_path / "c" / "latest.pt"
    checkpoint = torch.load(path, weights_only=True)
    opt = options.parse(tiny(model))
    recipe = make_recipe(opt)
    recipe.train_step(*images(opt, seed=0))
    expected = {"generators": set(recipe.generators), "discriminators": set(recipe.discriminators),
                "optimizers": set(recipe.optimizers), "schedulers": set(recipe.schedulers)}
    assert {name: set(checkpoint[name]) for name in expected} == expected
    fields = {f for cls in (RecipeState, RunProgress) for f in cls.__dataclass_fields__} - {"extras"}
    assert set(FORMAT_KEYS) | fields <= set(checkpoint)
    assert checkpoint["step"] == 2 and checkpoint["opt"]["model"] == model
    assert "AtoB" in recipe.generators and set(recipe.generators) <= {"AtoB", "BtoA"}
    for direction in recipe.generators:
        net = models.load_generator(str(path), direction=direction)
        assert set(net.state_dict()) == set(recipe.generators[direction].state_dict())


def test_a_stopped_and_resumed_run_continues_exactly(model, tmp_path):
    args = [*tiny(model), "--print_freq", "1", *QUIET]
    assert run_train("--name", "straight", "--checkpoints_dir", tmp_path, *args, "--max_steps", STEPS) == 0
    assert run_train("--name", "resumed", "--checkpoints_dir", tmp_path, *args, "--max_steps", 3) == 0
    assert run_train("--name", "resumed", "--checkpoints_dir", tmp_path, "--resume", "--max_steps", STEPS) == 0
    straight, resumed = (train_records(tmp_path / name) for name in ("straight", "resumed"))
    names = get_recipe(model).loss_names
    # The same operations on the same values in the same order: equal, not merely close.
    assert [[r[k] for k in names] for r in resumed] == [[r[k] for k in names] for r in straight]
    assert [r["lr"] for r in resumed] == [r["lr"] for r in straight]
    final = [torch.load(tmp_path / name / "latest.pt", weights_only=True) for name in ("straight", "resumed")]
    for part in ("generators", "discriminators"):
        for key, value in final[0][part].items():
            state = value["state_dict"] if part == "generators" else value
            other = final[1][part][key]["state_dict"] if part == "generators" else final[1][part][key]
            for name, tensor in state.items():
                assert torch.equal(tensor, other[name]), (part, key, name)


def test_save_memory_and_grad_checkpoint_change_no_result_and_checkpoints_stay_interchangeable(model, tmp_path):
    args = [*tiny(model), "--print_freq", "1", *QUIET]
    memory = ["--save_memory", "--grad_checkpoint"]
    assert run_train("--name", "plain", "--checkpoints_dir", tmp_path, *args, "--max_steps", STEPS) == 0
    assert run_train("--name", "saving", "--checkpoints_dir", tmp_path, *args, "--max_steps", 3) == 0
    assert run_train("--name", "saving", "--checkpoints_dir", tmp_path, "--resume", *memory, "--max_steps", STEPS) == 0
    assert torch.load(tmp_path / "saving" / "latest.pt", weights_only=True)["opt"]["save_memory"] is True
    names = get_recipe(model).loss_names
    plain, saving = (train_records(tmp_path / name) for name in ("plain", "saving"))
    # The units and the checkpointed blocks run the same kernels on the same values in the same
    # order as the plain networks (tests/models/test_save_memory.py): the losses are equal.
    assert [[r[k] for k in names] for r in saving] == [[r[k] for k in names] for r in plain]


def test_sample_rows_have_the_documented_shape(model):
    opt = options.parse(tiny(model))
    recipe = make_recipe(opt)
    real_A, real_B = images(opt, seed=1)
    rows = recipe.sample_rows(real_A, real_B)
    assert len(rows) == 2 * get_recipe(model).sample_rows_per_domain
    assert rows[0] is real_A
    for row in rows:
        assert row.shape == real_A.shape and row.device.type == "cpu" and row.dtype == torch.float32
        assert torch.isfinite(row).all()


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_train_step_raises_on_no_synchronisation(model):
    opt = options.parse([*tiny(model), "--device", "cuda"])
    recipe = make_recipe(opt, "cuda")
    a, b = (x.cuda() for x in images(opt, seed=2))
    recipe.train_step(a, b)  # the first step creates the optimiser states
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            recipe.train_step(a, b)
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_every_recipe_is_in_the_registry_and_declares_its_interface():
    for name in RECIPES:
        recipe = get_recipe(name)
        assert recipe.name == name and recipe.loss_names and recipe.sample_caption
        assert isinstance(recipe.option_defaults, dict) and isinstance(recipe.demo_defaults, dict)
        # one package per recipe, or presets of a recipe in its package (fastcut in cut)
        package = name if not recipe.options_of else recipe.options_of
        assert RECIPES[name].startswith(f"train.recipes.{package}:")
        assert os.path.isdir(os.path.join(os.path.dirname(__file__), "..", "..", "train", "recipes", package))
