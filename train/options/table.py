"""Every option of `python -m train`, in one table: its flags, type, default and help (argparse),
the rule its value must keep (checked right after parsing) and whether a resumed run may change
it. Names follow the official pytorch-CycleGAN-and-pix2pix train.py wherever the option exists
there, so existing commands carry over."""
from __future__ import annotations

import argparse
import functools
import math

from models.registry import GENERATOR_ARCHS

from ..data.workers import default_workers
from .help import DefaultsFormatter, ShortErrorParser, note_recipe_defaults

# Rules on one value: (test, what is expected), named in the table below.
POSITIVE = (lambda v: v >= 1, "an integer >= 1")
NON_NEGATIVE = (lambda v: v >= 0, "an integer >= 0")
POSITIVE_OR_NONE = (lambda v: v is None or v >= 1, "an integer >= 1 (or not given)")
FINITE_NON_NEGATIVE = (lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0")
FINITE_POSITIVE = (lambda v: math.isfinite(v) and v > 0, "a finite number > 0")
UNIT_INTERVAL = (lambda v: 0 <= v < 1, "a number in [0, 1)")
SEED = (lambda v: 0 <= v < 2 ** 63, "an integer in [0, 2**63) (numpy's and torch's generators take no other)")


class OptionTable:
    """An argparse parser that also records, per option dest, its value rule and whether a
    resumed run may change it (`resume=True`; every other option is taken from the saved run)."""

    def __init__(self, parser: argparse.ArgumentParser):
        self.parser = parser
        self.rules: dict[str, tuple] = {}
        self.resume_may_change: set[str] = set()
        self.recipe_options: dict[str, frozenset] = {}  # --model name -> the dests its own group adds

    def add(self, *flags, rule=None, resume=False, **argparse_kwargs):
        action = self.parser.add_argument(*flags, **argparse_kwargs)
        if rule is not None:
            self.rules[action.dest] = rule
        if resume:
            self.resume_may_change.add(action.dest)
        return action


def build_table(recipes, default_recipe) -> OptionTable:
    """The whole table; `recipes` ({name: Recipe class}) add their own groups at the end."""
    parser = ShortErrorParser(
        prog="python -m train", allow_abbrev=False, formatter_class=DefaultsFormatter,
        description="Train a CycleGAN (generators G: A->B, F: B->A and two PatchGAN discriminators) or another "
                    "--model on unpaired image folders (--dataroot with trainA/trainB), or on the embedded "
                    "synthetic dataset when --dataroot is not given. Option names follow the official "
                    "pytorch-CycleGAN-and-pix2pix train.py. `--demo` runs a small CPU demo.")
    t = OptionTable(parser)
    a = t.add
    # data
    a("--dataroot", default=None, resume=True, help="folder with trainA, trainB (testA, testB optional)")
    a("--dataset", choices=("folder", "synthetic"), default=None,
      help="'folder' when --dataroot is given, else 'synthetic' (the embedded seeded dataset)")
    a("--synthetic_size", type=int, default=1000, rule=POSITIVE, help="training scenes per domain (synthetic)")
    a("--synthetic_seed", type=int, default=0, rule=SEED, help="seed of the synthetic scenes (and test split)")
    a("--max_dataset_size", type=int, default=None, rule=POSITIVE_OR_NONE,
      help="use at most this many images per domain (default: all)")
    a("--preprocess", default="resize_and_crop", choices=("resize_and_crop", "crop", "resize", "none"),
      help="how training images are brought to --crop_size")
    a("--load_size", type=int, default=286, rule=POSITIVE, help="resize to this size first (resize*)")
    a("--crop_size", type=int, default=256, help="then crop this size: what the networks see")
    a("--no_flip", action="store_true", help="no random horizontal flips")
    a("--serial_batches", action="store_true", help="take images in order (B not random)")
    a("--batch_size", type=int, default=1, rule=POSITIVE, help="images of each domain per iteration")
    a("--num_threads", type=int, default=default_workers(), rule=NON_NEGATIVE, resume=True,
      help="data-loading worker processes (0: none, load in the training process); capped at the CPUs this "
           "process may use, and by default min(4, CPUs)")
    # run
    a("--name", default=None, resume=True, help="run name (default: experiment_name; demo_<time> with --demo)")
    a("--checkpoints_dir", default="./checkpoints", resume=True, help="runs are written to CHECKPOINTS_DIR/NAME")
    a("--resume", "--continue_train", dest="resume", action="store_true", resume=True,
      help="continue the run in checkpoints_dir/name exactly where it stopped")
    a("--seed", type=int, default=0, rule=SEED, help="seed of the weights, the data order and the image pools")
    a("--max_steps", type=int, default=None, rule=POSITIVE_OR_NONE, resume=True,
      help="stop (and save) after this many iterations")
    a("--demo", action="store_true", resume=True, help="small synthetic run that learns in a few minutes on a CPU")
    # model
    a("--model", choices=tuple(recipes), default=default_recipe,
      help="training recipe: networks, losses and optimisers (train/recipes/)")
    a("--netG", choices=GENERATOR_ARCHS, default="adalin", help="generator architecture")
    a("--ngf", type=int, default=64, rule=POSITIVE, help="generator filters in the first layer")
    a("--ndf", type=int, default=64, rule=POSITIVE, help="discriminator filters in the first layer")
    a("--n_layers_D", type=int, default=3, rule=POSITIVE, help="PatchGAN depth (3: the 70x70 PatchGAN)")
    a("--n_blocks", type=int, default=None, rule=POSITIVE_OR_NONE, help="residual blocks of adalin/ugatit (arch default)")
    a("--input_nc", type=int, default=3, help="channels of domain A images (RGB: 3)")
    a("--output_nc", type=int, default=3, help="channels of domain B images (RGB: 3)")
    a("--norm_impl", choices=("fused", "eager"), default="fused",
      help="normalization layers: our fused kernels or the pure-PyTorch reference")
    a("--init_gain", type=float, default=0.02, rule=FINITE_NON_NEGATIVE, help="std of the normal initialisation")
    # losses and optimisation
    a("--gan_mode", choices=("lsgan", "vanilla"), default="lsgan", help="adversarial loss")
    a("--lambda_A", type=float, default=10.0, rule=FINITE_NON_NEGATIVE, help="weight of the cycle loss A->B->A")
    a("--lambda_B", type=float, default=10.0, rule=FINITE_NON_NEGATIVE, help="weight of the cycle loss B->A->B")
    a("--lambda_identity", type=float, default=0.5, rule=FINITE_NON_NEGATIVE,
      help="identity loss weight, relative to the cycle weights")
    a("--pool_size", type=int, default=50, rule=NON_NEGATIVE, help="generated images kept for the discriminators")
    a("--lr", type=float, default=2e-4, rule=FINITE_POSITIVE, help="Adam learning rate")
    a("--beta1", type=float, default=0.5, rule=UNIT_INTERVAL, help="Adam beta1")
    a("--n_epochs", type=int, default=100, rule=NON_NEGATIVE, help="epochs at the initial learning rate")
    a("--n_epochs_decay", type=int, default=100, rule=NON_NEGATIVE, help="epochs of linear decay to 0")
    # speed
    a("--device", default=None, resume=True, help="cuda when available, else cpu")
    a("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast on CUDA (fp16 with a grad scaler)")
    a("--channels_last", action="store_true", help="channels_last memory format for images and networks")
    a("--save_memory", action="store_true", resume=True,
      help="keep less for the backward: each norm+activation(+pad) output is rebuilt from the norm's input "
           "instead of kept (same results; not with --amp or --compile)")
    a("--grad_checkpoint", action="store_true", resume=True,
      help="keep only each residual block's input and run the block again in the backward (same results)")
    a("--compile", action="store_true", resume=True,
      help="torch.compile the generators and discriminators (fullgraph; the first steps compile)")
    a("--compile_mode", choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
      default=None, resume=True,
      help="torch.compile mode (default: reduce-overhead on CUDA, i.e. CUDA graphs; default on CPU)")
    a("--torch_threads", type=int, default=0, rule=NON_NEGATIVE, resume=True,
      help="intra-op CPU threads (0: torch's default). Small models on a busy CPU run faster with 1")
    # output
    a("--print_freq", type=int, default=100, rule=POSITIVE, resume=True,
      help="log losses to metrics.jsonl every N iterations")
    a("--display_freq", type=int, default=400, rule=POSITIVE, resume=True, help="save a sample grid every N iterations")
    a("--save_latest_freq", type=int, default=1000, rule=POSITIVE, resume=True, help="checkpoint every N iterations")
    a("--eval_freq", type=int, default=1000, rule=POSITIVE, resume=True,
      help="every N iterations: PSNR/SSIM on the paired synthetic test split, or FID/KID on testA/testB of "
           "--dataroot (with the Inception weights; keeps best.pt, the lowest FID)")
    a("--inception_weights", default=None, resume=True,
      help="InceptionV3 weights file for FID/KID during training (default: torch-fidelity's cache, if there)")
    a("--eval_size", type=int, default=64, rule=POSITIVE, help="paired test scenes for evaluation")
    a("--no_progress", action="store_true", resume=True, help="no progress bar")
    a("--tensorboard", action="store_true", resume=True,
      help="also log losses, lr, evaluations, sample grids and the options as TensorBoard event files in the "
           "run folder (tensorboard --logdir CHECKPOINTS_DIR; needs the tensorboard package)")
    a("--wandb", "--use_wandb", dest="wandb", action="store_true", resume=True,
      help="also log them to Weights & Biases (needs the wandb package; WANDB_MODE=offline logs into the "
           "run folder's wandb/ for a later `wandb sync`)")
    a("--wandb_project", default="cyclegan-ext", resume=True, help="the W&B project of --wandb")
    for name, recipe in recipes.items():
        if recipe.options_of:  # a preset of a recipe registered before it: that recipe's options
            t.recipe_options[name] = t.recipe_options[recipe.options_of]
            continue
        group = parser.add_argument_group(f"--model {name}")
        recipe.add_options(group)
        t.recipe_options[name] = frozenset(action.dest for action in group._group_actions)
    note_recipe_defaults(parser, recipes)
    return t


def recipe_table() -> OptionTable:
    """The table with every registered recipe's options."""
    from ..recipes import DEFAULT_RECIPE, RECIPES, get_recipe
    return build_table({name: get_recipe(name) for name in RECIPES}, DEFAULT_RECIPE)


@functools.lru_cache(maxsize=None)
def option_facts() -> tuple:
    """(rules by dest, dests a resume may change, each recipe's own dests), read off the table
    once per process."""
    table = recipe_table()
    return table.rules, frozenset(table.resume_may_change), table.recipe_options
