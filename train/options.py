"""Command-line options. Names follow the official pytorch-CycleGAN-and-pix2pix train.py
wherever the option exists there, so existing commands carry over."""
import argparse
import sys
import time

from models.registry import GENERATOR_ARCHS as ARCHS

from .option_checks import OptionError, validate  # noqa: F401 (train(opt) calls options.validate)
from .recipes import DEFAULT_RECIPE, RECIPES, add_recipe_options, get_recipe

# `--demo`: a run that learns visibly on a laptop CPU in a few minutes. Applied only to the
# options not given explicitly on the command line.
DEMO_DEFAULTS = {
    "dataset": "synthetic", "crop_size": 32, "load_size": 32, "ngf": 32, "ndf": 16, "n_layers_D": 3,
    "n_blocks": 3, "batch_size": 4, "synthetic_size": 200, "n_epochs": 6, "n_epochs_decay": 6,
    "print_freq": 10, "display_freq": 100, "eval_freq": 100, "save_latest_freq": 100,
    "num_threads": 1, "eval_size": 64, "lr": 2e-4,
}  # torch_threads stays torch's default (all cores): 2 threads ran the demo in 4.4 min, 1 in 6.3


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m train",
        description="Train a CycleGAN (generators G: A->B, F: B->A and two PatchGAN discriminators) on "
                    "unpaired image folders (--dataroot with trainA/trainB), or on the embedded synthetic "
                    "dataset when --dataroot is not given. Option names follow the official "
                    "pytorch-CycleGAN-and-pix2pix train.py. `--demo` runs a small CPU demo.")
    a = p.add_argument
    # data
    a("--dataroot", default=None, help="folder with trainA, trainB (testA, testB optional)")
    a("--dataset", choices=("folder", "synthetic"), default=None,
      help="'folder' when --dataroot is given, else 'synthetic' (the embedded seeded dataset)")
    a("--synthetic_size", type=int, default=1000, help="training scenes per domain (synthetic)")
    a("--synthetic_seed", type=int, default=0, help="seed of the synthetic scenes (and test split)")
    a("--max_dataset_size", type=int, default=None, help="use at most this many images per domain (default: all)")
    a("--preprocess", default="resize_and_crop", choices=("resize_and_crop", "crop", "resize", "none"))
    a("--load_size", type=int, default=286)
    a("--crop_size", type=int, default=256)
    a("--no_flip", action="store_true")
    a("--serial_batches", action="store_true", help="take images in order (B not random)")
    a("--batch_size", type=int, default=1)
    a("--num_threads", type=int, default=4, help="data-loading worker processes")
    # run
    a("--name", default=None, help="run name (default: experiment_name; demo_<time> with --demo)")
    a("--checkpoints_dir", default="./checkpoints")
    a("--resume", "--continue_train", dest="resume", action="store_true",
      help="continue the run in checkpoints_dir/name exactly where it stopped")
    a("--seed", type=int, default=0)
    a("--max_steps", type=int, default=None, help="stop (and save) after this many iterations")
    a("--demo", action="store_true", help="small synthetic run that learns in a few minutes on a CPU")
    # model
    a("--model", choices=tuple(RECIPES), default=DEFAULT_RECIPE,
      help="training recipe: networks, losses and optimisers (train/recipes/)")
    a("--netG", choices=ARCHS, default="adalin")
    a("--ngf", type=int, default=64)
    a("--ndf", type=int, default=64)
    a("--n_layers_D", type=int, default=3)
    a("--n_blocks", type=int, default=None, help="residual blocks of adalin/ugatit (arch default)")
    a("--input_nc", type=int, default=3)
    a("--output_nc", type=int, default=3)
    a("--norm_impl", choices=("fused", "eager"), default="fused",
      help="normalization layers: our fused kernels or the pure-PyTorch reference")
    a("--init_gain", type=float, default=0.02)
    # losses and optimisation
    a("--gan_mode", choices=("lsgan", "vanilla"), default="lsgan")
    a("--lambda_A", type=float, default=10.0)
    a("--lambda_B", type=float, default=10.0)
    a("--lambda_identity", type=float, default=0.5)
    a("--pool_size", type=int, default=50)
    a("--lr", type=float, default=2e-4)
    a("--beta1", type=float, default=0.5)
    a("--n_epochs", type=int, default=100)
    a("--n_epochs_decay", type=int, default=100)
    # speed
    a("--device", default=None, help="cuda when available, else cpu")
    a("--amp", choices=("none", "bf16", "fp16"), default="none", help="autocast on CUDA (fp16 with a grad scaler)")
    a("--channels_last", action="store_true")
    a("--compile", action="store_true",
      help="torch.compile the generators and discriminators (fullgraph; the first steps compile)")
    a("--compile_mode", choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
      default=None, help="torch.compile mode (default: reduce-overhead on CUDA, i.e. CUDA graphs; default on CPU)")
    a("--torch_threads", type=int, default=0,
      help="intra-op CPU threads (0: torch's default). Small models on a busy CPU run faster with 1")
    # output
    a("--print_freq", type=int, default=100, help="log losses to metrics.jsonl every N iterations")
    a("--display_freq", type=int, default=400, help="save a sample grid every N iterations")
    a("--save_latest_freq", type=int, default=1000, help="checkpoint every N iterations")
    a("--eval_freq", type=int, default=1000,
      help="every N iterations: PSNR/SSIM on the paired synthetic test split, or FID/KID on testA/testB of "
           "--dataroot (with the Inception weights; keeps best.pt, the lowest FID)")
    a("--inception_weights", default=None,
      help="InceptionV3 weights file for FID/KID during training (default: torch-fidelity's cache, if there)")
    a("--eval_size", type=int, default=64, help="paired test scenes for evaluation")
    a("--no_progress", action="store_true", help="no progress bar")
    add_recipe_options(p)
    return p


def explicit_dests(parser, argv):
    given = {tok.split("=", 1)[0] for tok in argv if tok.startswith("-")}
    return {act.dest for act in parser._actions if given.intersection(act.option_strings)}


def parse(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    opt = parser.parse_args(argv)
    given = explicit_dests(parser, argv)
    for k, v in get_recipe(opt.model).option_defaults.items():
        if k not in given:
            setattr(opt, k, v)
    if opt.demo:
        for k, v in {**DEMO_DEFAULTS, **getattr(get_recipe(opt.model), "demo_defaults", {})}.items():
            if k not in given:
                setattr(opt, k, v)
        if opt.name is None:
            opt.name = time.strftime("demo_%Y%m%d_%H%M%S")
    if opt.dataset is None:
        opt.dataset = "folder" if opt.dataroot else "synthetic"
    if opt.name is None:
        opt.name = "experiment_name"
    try:
        validate(opt)
    except OptionError as error:  # one line, exit status 2, as argparse's own errors
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        sys.exit(2)
    return opt
