"""A live view of a run in the tools people watch runs with: TensorBoard event files in the run
folder (--tensorboard) and Weights & Biases (--wandb). Both are optional packages.

The run calls one LiveLog (rank 0 only; the others get the silent base class):
    log_options(options)            once at the start: TensorBoard text + hparams, W&B config
    log_scalars(step, {tag: value}) what metrics.jsonl gets (tags from scalars_of)
    log_image(step, tag, image)     a sample grid (H, W, 3 uint8)
    close(failed)

A resumed run continues the same curves: TensorBoard writes into the same folder, W&B resumes
the run whose id the run folder keeps. No step at or before the last one a backend already has
is logged again (a run killed after its last checkpoint replays those steps; resuming is exact,
so the values logged the first time are the ones it computes again).
"""
from __future__ import annotations

import importlib
import os
import secrets

from models.errors import UserError

from ..atomic import atomic_write
from ..cli import MissingDependencyError

OPTIONS_STEP = 0  # the options are logged at step 0, before the first training step
NOTHING_LOGGED = OPTIONS_STEP - 1  # the floor of a backend that has logged nothing


def scalars_of(record: dict, loss_networks: dict) -> dict:
    """The tags and values of one metrics.jsonl record: each loss under the network it trains
    ("D/D_A", "G/cycle_A"), the other numbers under the record's type ("train/lr",
    "eval/psnr_AtoB", "fid/fid"); the epoch once per step, from the train record."""
    kind, scalars = record["type"], {}
    for key, value in record.items():
        if key in ("type", "step") or value is None or isinstance(value, bool) or (key == "epoch" and kind != "train"):
            continue
        if isinstance(value, (int, float)):
            scalars[f"{loss_networks[key]}/{key}" if key in loss_networks else f"{kind}/{key}"] = value
    return scalars


def check_packages(opt) -> None:
    """MissingDependencyError (one line naming the package) for a --tensorboard / --wandb whose
    package is not installed, before the run builds anything."""
    if getattr(opt, "tensorboard", False):
        _import("tensorboard", "--tensorboard", "tensorboard")
    if getattr(opt, "wandb", False):
        _import("wandb", "--wandb", "wandb")


def _import(module, flag, package):
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise MissingDependencyError(f"{flag} needs the {package} package, which could not be imported "
                                     f"({error}): pip install {package}") from None


def open_live_log(opt, folder) -> "LiveLog":
    """The backends opt asks for, together; a silent LiveLog when none."""
    backends = []
    if getattr(opt, "tensorboard", False):
        backends.append(TensorBoardLog(folder))
    if getattr(opt, "wandb", False):
        backends.append(WandbLog(folder, opt.wandb_project, opt.name))
    return backends[0] if len(backends) == 1 else LiveLogs(backends) if backends else LiveLog()


class LiveLog:
    """The interface, logging nothing. A backend implements the _write_* methods; steps at or
    before its `floor` (the last step it already had when the run started) are skipped."""

    floor = NOTHING_LOGGED

    def log_options(self, options: dict) -> None:
        if OPTIONS_STEP > self.floor:
            self._write_options(options)

    def log_scalars(self, step: int, scalars: dict) -> None:
        if step > self.floor and scalars:
            self._write_scalars(step, scalars)

    def log_image(self, step: int, tag: str, image) -> None:
        if step > self.floor:
            self._write_image(step, tag, image)

    def close(self, failed: bool = False) -> None:
        """Flush and close; failed marks a run that ended on an error."""

    def _write_options(self, options):
        pass

    def _write_scalars(self, step, scalars):
        pass

    def _write_image(self, step, tag, image):
        pass


class LiveLogs(LiveLog):
    """Several backends as one (each keeps its own floor)."""

    def __init__(self, backends):
        self.backends = backends

    def log_options(self, options):
        for backend in self.backends:
            backend.log_options(options)

    def log_scalars(self, step, scalars):
        for backend in self.backends:
            backend.log_scalars(step, scalars)

    def log_image(self, step, tag, image):
        for backend in self.backends:
            backend.log_image(step, tag, image)

    def close(self, failed=False):
        for backend in self.backends:
            backend.close(failed)


class TensorBoardLog(LiveLog):
    """Event files in the run folder itself, so `tensorboard --logdir CHECKPOINTS_DIR` shows each
    run under its name."""

    def __init__(self, folder):
        writer_module = _import("torch.utils.tensorboard", "--tensorboard", "tensorboard")
        self.floor = last_event_step(folder.tensorboard_event_files())
        self.writer = writer_module.SummaryWriter(log_dir=folder.path)

    def _write_options(self, options):
        from torch.utils.tensorboard.summary import hparams
        rows = "\n".join(f"| {key} | {value} |" for key, value in sorted(options.items()))
        self.writer.add_text("options", "| option | value |\n|---|---|\n" + rows, OPTIONS_STEP)
        shown = {key: value if isinstance(value, (bool, int, float, str)) else str(value)
                 for key, value in options.items()}
        for summary in hparams(shown, {}):
            self.writer.file_writer.add_summary(summary)

    def _write_scalars(self, step, scalars):
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()  # a few times per --print_freq steps: a viewer sees the step now

    def _write_image(self, step, tag, image):
        self.writer.add_image(tag, image, step, dataformats="HWC")
        self.writer.flush()

    def close(self, failed=False):
        self.writer.close()


def last_event_step(paths) -> int:
    """The last step of any summary in these event files (NOTHING_LOGGED for none); a file cut
    short by a killed run is read up to its last complete event."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    steps = [event.step for path in paths for event in EventFileLoader(path).Load() if event.HasField("summary")]
    return max(steps, default=NOTHING_LOGGED)


class WandbLog(LiveLog):
    """One W&B run per run folder: its id is kept in the folder, and a resumed run resumes it
    (resume="allow"). Its files go to the run folder's wandb/ (WANDB_MODE=offline: nothing else
    is sent; `wandb sync` uploads them later)."""

    def __init__(self, folder, project, name):
        self.wandb = _import("wandb", "--wandb", "wandb")
        run_id = stored_wandb_id(folder.wandb_run_id)
        try:
            self.run = self.wandb.init(project=project, name=name, id=run_id, resume="allow", dir=folder.path,
                                       settings=self.wandb.Settings(console="off", x_disable_stats=True))
        except Exception as error:  # wandb raises its own kinds (no login, no network, a bad project)
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise UserError(f"--wandb: cannot start the W&B run ({first_line}); log in with `wandb login`, or "
                            f"set WANDB_MODE=offline to keep the run in {folder.path}/wandb for `wandb sync`") from None
        self.floor = self.run.starting_step - 1  # W&B's next step on a resumed run, 0 on a new one

    def _write_options(self, options):
        self.run.config.update(options, allow_val_change=True)

    def _write_scalars(self, step, scalars):
        self.run.log(scalars, step=step)

    def _write_image(self, step, tag, image):
        self.run.log({tag: self.wandb.Image(image)}, step=step)

    def close(self, failed=False):
        self.run.finish(exit_code=1 if failed else 0)


def stored_wandb_id(path) -> str:
    """The W&B run id kept at `path`; a new one is made and kept there the first time."""
    if os.path.exists(path):
        with open(path) as f:
            return f.read().strip()
    run_id = secrets.token_hex(4)  # W&B ids: up to 64 of [a-z0-9]
    atomic_write(path, lambda f: f.write(run_id.encode()), what="W&B run id")
    return run_id
