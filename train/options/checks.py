"""Checks of the training options, run right after parsing (and by train(opt)), so a value that
cannot work is refused in one line naming the option, before any data or network is built."""
import os
import tempfile

import torch

from models.errors import UserError

GENERATOR_MULTIPLE = 4  # two stride-2 downsamplings
DATA_CHANNELS = 3  # the loaders produce RGB images


class OptionError(UserError, ValueError):
    """An option value that cannot work; the message names the option and what is expected."""


def validate(opt):
    """Raise OptionError for the first option that cannot work. Checks each value against its
    rule in the option table, then the options together, the recipe's own checks
    (Recipe.validate_options), then the folders: --dataroot must hold trainA/trainB (folder
    dataset), and --checkpoints_dir is created if needed and must accept a file; last, the
    packages of --tensorboard / --wandb (train.cli.MissingDependencyError)."""
    for check in (_check_rules, _check_choices, _check_epochs, _check_sizes, _check_channels, _check_device, _check_name,
                  _check_memory, _check_fits_memory, _check_recipe, _check_dataroot, _check_checkpoints_dir, _check_live_log):
        check(opt)
    return opt


def _check_rules(opt):
    from .table import option_facts
    rules = option_facts()[0]
    for name, (ok, expected) in rules.items():
        if hasattr(opt, name) and not _keeps(ok, getattr(opt, name)):
            raise OptionError(f"--{name} must be {expected}, got {getattr(opt, name)!r}")


def _keeps(rule, value):
    """rule(value), False for a value of the wrong type (possible in saved options: opt.json or
    latest.pt edited by hand)."""
    try:
        return bool(rule(value))
    except (TypeError, ValueError):
        return False


def _check_choices(opt):
    from . import build_parser
    for action in build_parser()._actions:
        value = getattr(opt, action.dest, None)
        if action.choices is not None and value is not None and value not in action.choices:
            raise OptionError(f"--{action.dest} must be one of {', '.join(map(str, action.choices))}, got {value!r}")


def _check_live_log(opt):
    """--tensorboard / --wandb need their package (train.cli.MissingDependencyError names it)."""
    if getattr(opt, "tensorboard", False) or getattr(opt, "wandb", False):
        from ..run.live_log import check_packages
        check_packages(opt)


def _check_memory(opt):
    if getattr(opt, "save_memory", False):
        if getattr(opt, "compile", False):
            raise OptionError("--save_memory does not work with --compile (torch.compile plans the memory of "
                              "the graphs it builds); use one or the other")
        if getattr(opt, "amp", "none") != "none":
            raise OptionError(f"--save_memory does not work with --amp {opt.amp} yet (its units run in float32); "
                              "use --grad_checkpoint with --amp")


def _check_fits_memory(opt):
    from .fits import GIB, device_memory_bytes, least_bytes
    need = least_bytes(opt)
    if need is None:
        return
    have = device_memory_bytes(opt.device)
    bytes_needed, option, what = need
    if bytes_needed > have:
        raise OptionError(f"{option} {getattr(opt, option[2:])} is too large for memory: one training step needs "
                          f"at least {bytes_needed / GIB:.1f} GiB for {what}, and the device has "
                          f"{have / GIB:.1f} GiB")


def _check_recipe(opt):
    """The recipe's own checks, and no option of another recipe given (it would be ignored)."""
    from ..recipes import get_recipe
    from .table import option_facts
    recipe_options = option_facts()[2]
    mine = recipe_options[opt.model]
    for name, theirs in recipe_options.items():
        foreign = (theirs - mine) & set(getattr(opt, "_explicit", ()))
        if foreign:
            flags = ", ".join(f"--{dest}" for dest in sorted(foreign))
            raise OptionError(f"{flags}: an option of --model {name}, not of --model {opt.model}; "
                              f"drop it or train --model {name}")
    get_recipe(opt.model).validate_options(opt)


def _check_epochs(opt):
    if opt.n_epochs + opt.n_epochs_decay == 0:
        raise OptionError("--n_epochs + --n_epochs_decay is 0: nothing to train; give at least one epoch")


def _check_sizes(opt):
    if opt.crop_size < GENERATOR_MULTIPLE or opt.crop_size % GENERATOR_MULTIPLE:
        raise OptionError(f"--crop_size must be a multiple of {GENERATOR_MULTIPLE} (the generators "
                          f"downsample twice), got {opt.crop_size}")
    if opt.dataset != "folder":
        return  # the synthetic data are drawn at crop_size; load_size and preprocess are unused
    if opt.preprocess == "resize_and_crop" and opt.crop_size > opt.load_size:
        raise OptionError(f"--crop_size {opt.crop_size} is larger than --load_size {opt.load_size}: "
                          "--preprocess resize_and_crop resizes to load_size, then crops crop_size out of it")
    if opt.preprocess == "resize" and opt.load_size % GENERATOR_MULTIPLE:
        raise OptionError(f"--load_size must be a multiple of {GENERATOR_MULTIPLE} with --preprocess resize "
                          f"(the networks see load_size x load_size images), got {opt.load_size}")


def _check_channels(opt):
    for name in ("input_nc", "output_nc"):
        if getattr(opt, name, None) not in (None, DATA_CHANNELS):
            raise OptionError(f"--{name} must be {DATA_CHANNELS}: the data loaders produce RGB images, "
                              f"got {getattr(opt, name)}")


def _check_device(opt):
    if opt.device:
        check_device(opt.device)


def device_or_default(name, option="--device"):
    """The device `name` names (checked), or cuda when visible, else cpu, for no name."""
    if name:
        return check_device(name, option)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def check_device(name, option="--device"):
    """OptionError unless `name` is cpu, or a CUDA device that is visible."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise OptionError(f"{option} {name!r} is not a device; expected cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise OptionError(f"{option} {name}: no CUDA GPU is visible (torch.cuda.is_available() is "
                              f"False); use {option} cpu, or check the driver and CUDA_VISIBLE_DEVICES")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise OptionError(f"{option} {name}: only {torch.cuda.device_count()} CUDA GPU(s) are visible")
    elif device.type != "cpu":
        raise OptionError(f"{option} {name}: only cpu and cuda are supported")
    return device


def _check_name(opt):
    name = opt.name
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if (not name or name in (".", "..") or os.path.isabs(name) or "\0" in name
            or any(sep in name for sep in separators)):
        raise OptionError(f"--name {name!r} must be one plain folder name (not empty, '.' or '..', no "
                          "'/'): the run is written to --checkpoints_dir/NAME")


def _check_dataroot(opt):
    if opt.dataset != "folder":
        return
    root = opt.dataroot
    if not root:
        raise OptionError("--dataset folder needs --dataroot")
    if not os.path.isdir(root):
        raise OptionError(f"--dataroot {root}: no such folder")
    missing = [sub for sub in ("trainA", "trainB") if not os.path.isdir(os.path.join(root, sub))]
    if missing:
        raise OptionError(f"--dataroot {root} has no {' or '.join(missing)} folder; expected the CycleGAN "
                          f"layout {os.path.join(root, 'trainA')}, {os.path.join(root, 'trainB')}")


def _check_checkpoints_dir(opt):
    folder = opt.checkpoints_dir
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise OptionError(f"--checkpoints_dir {folder} is a file, not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write_test.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as error:
        raise OptionError(f"--checkpoints_dir {folder}: cannot create it or write into it "
                          f"({error.strerror or error})") from None
