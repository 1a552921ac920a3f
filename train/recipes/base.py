"""What a training recipe is: the part of a run that knows the model.

The run (train/run/) owns everything every recipe shares: the run folder and its lock,
resume, checkpoint files, DDP, precision, data, signals, progress, metrics.jsonl, sample
and report files. A recipe owns its networks, optimisers, schedulers, losses, per-step
hooks, per-process state (e.g. image pools), sample rows and checkpoint extras. A recipe never
imports the run: what it needs from it comes in a RunContext.

To add a recipe: a package train/recipes/<name>/ whose Recipe subclass is registered with one
line in RECIPES (train/recipes/__init__.py); `python -m train --model <name>` then trains it, and
tests/train/test_recipe_contract.py checks it keeps the contract below.

Lifecycle, as the run calls it:

    Recipe.derive_options(opt), validate_options(opt)  # at parse time, before any data is read
    recipe = Recipe(opt, context)                   # networks built and initialised
    recipe.load_checkpoint_state(state)             # on --resume (a RecipeState)
    recipe.load_rank_state(rank_state, device)      # on --resume with the same process count
    recipe.wrap_networks(fn)                        # torch.compile, then DDP (fn per network)
    for each batch:  losses = recipe.train_step(real_A, real_B)
    at each epoch end:  recipe.end_epoch()
    on save:  recipe.checkpoint_state(), recipe.rank_state()
    for samples and evaluation:  recipe.sample_rows(a, b), recipe.generators
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import nn

from models.inference import translate_batches
from models.registry import generator_payload, unwrap
from models.training_checkpoint import RecipeState


IMPLEMENTATION_FLAGS = ("fused", "foreach")  # how an optimiser computes its step, not what it computes


def adam_implementation(params) -> dict:
    """{"fused": True} when torch's fused Adam takes every parameter (device and floating dtype),
    else {"foreach": True}."""
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices
    fused_ok = all(p.device.type in _get_fused_kernels_supported_devices() and p.is_floating_point()
                   for p in params)
    return {"fused": True} if fused_ok else {"foreach": True}


def with_implementation_of(optimizer, saved: dict) -> dict:
    """The saved optimiser state with this optimiser's implementation flags: a checkpoint keeps
    the state (moments, steps, lr), this run keeps its choice of kernels (an older checkpoint
    written by the per-parameter Adam resumes on the fused one)."""
    groups = [{**group, **{k: mine[k] for k in IMPLEMENTATION_FLAGS if k in mine}}
              for group, mine in zip(saved["param_groups"], optimizer.param_groups)]
    return {**saved, "param_groups": groups}


class LossPanel(NamedTuple):
    """One panel of the loss plot: its title and the losses drawn in it (on one y axis)."""
    title: str
    names: tuple


@dataclass(frozen=True)
class RunContext:
    """What the run knows before it builds the recipe.

    device          where the networks live.
    precision       train.run.precision.Precision: autocast(), backward(loss), step(optimizer),
                    update() and the gradient scaler.
    steps_per_epoch iterations of one epoch on each process.
    rank, world_size  this process among the DDP processes (seed per-process state with rank).
    """
    device: torch.device
    precision: object
    steps_per_epoch: int
    rank: int = 0
    world_size: int = 1


class Recipe:
    """Base class of a recipe. Subclasses set the class attributes and, in __init__, fill
    the four dicts below, then implement train_step and sample_rows.

    Class attributes:
        name            the --model value.
        loss_names      keys of the dict train_step returns, in the order they are logged
                        to metrics.jsonl. Names starting with "D_" or "Discriminator" are the
                        discriminators' (TensorBoard / W&B tag "D/<name>"), the others the
                        generators' ("G/<name>").
        loss_panels     the loss plot's panels (LossPanel), each loss in one; by default
                        the adversarial losses ("D_*", "G_*") and the others.
        progress_losses the losses the progress bar shows (default: all).
        option_defaults option values this recipe prefers over the parser's defaults
                        (e.g. {"lr": 1e-4, "crop_size": 256}); applied to every option the
                        user did not give explicitly, before --demo's preset.
        demo_defaults   option values --demo uses with this recipe, over the run's demo preset.
        sample_caption  what the rows of sample_rows show, for index.html.
        sample_rows_per_domain  how many rows sample_rows returns for each domain.
        options_of      "" for a recipe with its own options (add_options); for a preset of
                        another recipe (FastCUT of CUT) that recipe's --model name: it takes
                        that recipe's options, registered after it, and differs in its defaults.

    Instance attributes (set by __init__; the run reads and saves them):
        generators      {"AtoB": net, "BtoA": net} ("AtoB" alone for a one-sided recipe such as
                        CUT): saved as generator payloads (so that models.load_generator reads
                        the checkpoint), used for evaluation.
        discriminators  {name: net}, any number; saved as state_dicts.
        optimizers      {name: torch.optim.Optimizer}; saved.
        schedulers      {name: lr scheduler}; saved, stepped once per epoch by end_epoch.
    The same name in a dict is the same key in the checkpoint, so keep names stable.
    """

    name = ""
    loss_names: tuple = ()
    loss_panels: tuple = ()
    progress_losses: tuple = ()
    option_defaults: dict = {}
    demo_defaults: dict = {}
    sample_caption = ""
    sample_rows_per_domain = 3
    options_of = ""

    def __init__(self, opt, context: RunContext):
        """Build and initialise the networks, optimisers and schedulers on context.device.

        The run has seeded torch's RNG with opt.seed, identically on every process, so
        the initial weights agree across DDP processes.
        """
        self.opt, self.context = opt, context
        self.device, self.precision, self.rank = context.device, context.precision, context.rank
        self.generators: dict[str, nn.Module] = {}
        self.discriminators: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}
        self.schedulers: dict = {}

    @classmethod
    def plot_panels(cls) -> tuple:
        """loss_panels, or the default two: adversarial ("D_*", "G_*") and the other losses."""
        if cls.loss_panels:
            return cls.loss_panels
        adversarial = tuple(name for name in cls.loss_names if name.startswith(("D_", "G_")))
        others = tuple(name for name in cls.loss_names if name not in adversarial)
        return tuple(panel for panel in (LossPanel("adversarial losses", adversarial),
                                         LossPanel("reconstruction losses", others)) if panel.names)

    @classmethod
    def loss_networks(cls) -> dict:
        """{loss name: "D" (the discriminators') or "G" (the generators')}."""
        return {name: "D" if name.startswith(("D_", "Discriminator")) else "G" for name in cls.loss_names}

    @classmethod
    def add_options(cls, parser) -> None:
        """Add this recipe's own command-line options to `parser` (an argument group)."""

    @classmethod
    def derive_options(cls, opt) -> None:
        """Set options that follow from others (e.g. U-GAT-IT's --light picks --netG
        ugatit_light); runs at parse time, after the defaults, before validate_options."""

    @classmethod
    def validate_options(cls, opt) -> None:
        """Refuse option values this recipe cannot train with: raise train.options.OptionError
        naming the option. Runs with the run's own option checks, before any data is read."""

    # --- shared helpers ---------------------------------------------------------------------

    def place(self, net: nn.Module) -> nn.Module:
        """net on the device, channels_last with --channels_last."""
        net.to(self.device)
        if self.opt.channels_last:
            net.to(memory_format=torch.channels_last)
        return net

    def set_discriminators_trainable(self, trainable: bool) -> None:
        """Freeze (False) the discriminators while the generators step: no gradient reaches them."""
        for net in self.discriminators.values():
            net.requires_grad_(trainable)

    @staticmethod
    def adam(nets, lr: float, betas: tuple, weight_decay: float = 0.0) -> torch.optim.Adam:
        """One Adam over the parameters of `nets`, in the order given: torch's fused
        implementation (the whole update in a few kernels, where the per-parameter loop
        dispatches 9 ops per parameter) wherever torch has it for the parameters' device and
        dtype, else foreach. The same update as the per-parameter loop, to rounding."""
        params = list(itertools.chain.from_iterable(net.parameters() for net in nets))
        return torch.optim.Adam(params, lr=lr, betas=betas, weight_decay=weight_decay, **adam_implementation(params))

    def translate(self, net: nn.Module, x: torch.Tensor, call=None):
        """net(x) for samples: eval mode, no gradients, batches on the device, CPU float32 out
        (models.inference.translate_batches; `call(net, xb)` for networks with more outputs)."""
        return translate_batches(unwrap(net), x, self.device, channels_last=self.opt.channels_last, call=call)

    # --- one training iteration -----------------------------------------------------------
    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict:
        """One optimisation step on a batch of each domain. Returns {loss name: detached
        0-d tensor} with the keys of `loss_names`.

        Must not synchronise the host with the device (no .item(), bool(tensor), .cpu(),
        .tolist(), data-dependent indexing): the run reads the losses only when it logs them.
        Per-step hooks (clipping, weight averaging, ...) belong here, after their step.
        """
        raise NotImplementedError

    def end_epoch(self) -> None:
        """Called by the run after each epoch (also when a resume skips to the next epoch)."""
        for scheduler in self.schedulers.values():
            scheduler.step()

    def learning_rate(self) -> float:
        """The learning rate logged with the losses (the first optimiser's first group)."""
        optimizer = next(iter(self.optimizers.values()))
        return optimizer.param_groups[0]["lr"]

    # --- samples ----------------------------------------------------------------------------

    def sample_rows(self, real_A: torch.Tensor, real_B: torch.Tensor) -> list:
        """Rows of the sample grid for fixed CPU images real_A, real_B (N, C, H, W in [-1, 1]):
        a list of 2 * sample_rows_per_domain CPU tensors of the same shape (heatmaps included,
        expanded to 3 channels), the rows for A first. Use self.translate to run a generator."""
        raise NotImplementedError

    # --- networks -----------------------------------------------------------------------------

    def networks(self) -> dict:
        """Every network, by a name unique across generators and discriminators."""
        return {**{f"G_{k}": v for k, v in self.generators.items()},
                **{f"D_{k}": v for k, v in self.discriminators.items()}}

    def wrap_networks(self, fn) -> None:
        """Replace each network by fn(network): the run compiles (--compile) and then wraps
        for DDP with it. To call a network whose parameters take no gradient in this pass
        (D in the generator step) without DDP, use models.registry.unwrap(net,
        parallel_only=True): DDP would wait for gradients that never come."""
        self.generators = {k: fn(v) for k, v in self.generators.items()}
        self.discriminators = {k: fn(v) for k, v in self.discriminators.items()}

    # --- checkpoints --------------------------------------------------------------------------

    def checkpoint_state(self) -> RecipeState:
        """This recipe's part of latest.pt (weights_only-safe: tensors and plain containers)."""
        return RecipeState(
            generators={k: generator_payload(unwrap(net), self.opt.netG) for k, net in self.generators.items()},
            discriminators={k: unwrap(net).state_dict() for k, net in self.discriminators.items()},
            optimizers={k: o.state_dict() for k, o in self.optimizers.items()},
            schedulers={k: s.state_dict() for k, s in self.schedulers.items()},
            extras=self.checkpoint_extras())

    def load_checkpoint_state(self, state: RecipeState) -> None:
        for k, net in self.generators.items():
            unwrap(net).load_state_dict(state.generators[k]["state_dict"])
        for k, net in self.discriminators.items():
            unwrap(net).load_state_dict(state.discriminators[k])
        for k, o in self.optimizers.items():
            o.load_state_dict(with_implementation_of(o, state.optimizers[k]))
        for k, s in self.schedulers.items():
            s.load_state_dict(state.schedulers[k])
        self.load_checkpoint_extras(state.extras)

    def checkpoint_extras(self) -> dict:
        """Extra top-level entries for latest.pt (not per process); none by default."""
        return {}

    def load_checkpoint_extras(self, extras: dict) -> None:
        """Read back what checkpoint_extras saved."""

    def rank_state(self) -> dict:
        """This process's own state (e.g. image pools), saved for each DDP process. The key
        "rng" is the run's (it adds the RNG states)."""
        return {}

    def load_rank_state(self, state: dict, device: torch.device) -> None:
        """Restore rank_state(); called only when the process count did not change."""
