"""The training loop of a run: start (folder, resume, data, recipe), the epochs, and what is
written along the way (checkpoints, metrics, samples, evaluations, the report)."""
import os
import time
import warnings
from functools import partial

import numpy as np
import torch
from torch import nn

from models.registry import unwrap
from models.errors import CheckpointError
from models.training_checkpoint import (RunProgress, assemble, read_training_checkpoint, recipe_state_of,
                                        run_progress_of)

from .. import data
from ..atomic import cleanup_stale_temporaries
from ..data.workers import capped_workers
from ..evaluation.paired import evaluate_paired
from ..evaluation.tracking import FIDTracker
from ..options import OptionError, options_dict, validate
from ..recipes import RunContext, get_recipe
from . import checkpoint as ckpt
from . import compile as compiling
from . import distributed, live_log, report, resumed_data
from .input_size import too_small_crop_error
from .divergence import FiniteLosses, TrainingDiverged, diverged_message, non_finite
from .folder import RunError, RunFolder, merge_resumed_options
from .lock import RunFolderInUse, RunLock
from .precision import Precision
from .signals import GracefulStop, StopNow, ignore_sigint_in_worker

STOP_CHECK_INTERVAL = 10


def train(opt, log=print):
    """Train (or resume) the run described by opt. Returns a summary dict.

    Raises train.options.OptionError for bad options, RunError when the run cannot start in
    its folder, DataError for unreadable data, train.run.checkpoint.CheckpointWriteError when a
    checkpoint cannot be written (the previous one stays intact): all UserErrors."""
    validate(opt)
    dist = distributed.init_from_env(opt.device)
    try:
        return Run(opt, dist, log if dist.is_main else _quiet).execute()
    finally:
        dist.close()


def _quiet(*_args, **_kwargs):
    pass


def progress_postfix(values, shown):
    """The progress bar's losses: each of `shown` (names in values) with its value."""
    return " ".join(f"{name} {values[name]:.3f}" for name in shown)


def _init_worker(lock, worker_id):
    ignore_sigint_in_worker(worker_id)
    lock.close_in_child()


def resolve_device(opt, dist):
    dev = torch.device(opt.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if dev.type == "cuda" and dist.enabled:
        dev = torch.device("cuda", dist.local_rank)
    return dev


class Run:
    def __init__(self, opt, dist, log):
        self.opt, self.dist, self.log = opt, dist, log
        self.folder = RunFolder(opt.checkpoints_dir, opt.name)
        self.lock = RunLock(self.folder.path, self.folder.lock)
        self.step = self.epoch = self.batch_in_epoch = 0
        self.last_eval = None
        self.fid = None  # FIDTracker on rank 0 of a folder run with testA / testB and the weights
        self.finite = FiniteLosses()
        self.saved_step = None  # the step latest.pt holds
        self.live = live_log.LiveLog()  # TensorBoard / W&B on rank 0 (--tensorboard, --wandb)

    def execute(self):
        failed = True
        try:
            state = self.read_start_state()
            self.setup(state)
            with GracefulStop(self.log) as self.stop:
                try:
                    self.train_epochs()
                finally:
                    if self.bar is not None:
                        self.bar.close()
                summary = self.finish()
            failed = False
            return summary
        finally:
            self.live.close(failed)
            self.lock.release()

    # --- start ------------------------------------------------------------------------------

    def on_main(self, decide):
        """decide() on rank 0 (one filesystem view), its result shared with every rank; an
        exception there becomes the same RunError on every rank."""
        verdict = None
        if self.dist.is_main:
            try:
                verdict = ("ok", decide())
            except RunError as e:
                verdict = ("error", str(e))
        kind, value = self.dist.broadcast_object(verdict)
        if kind == "error":
            raise RunError(value)
        return value

    def read_start_state(self):
        """The checkpoint to resume from (None for a fresh start); merges the saved options
        into opt when resuming, or restarting a run that never saved."""
        kind, saved = self.on_main(self.open_folder)
        self.started_fresh = kind == "fresh"
        if kind in ("resume", "restart"):
            merge_resumed_options(self.opt, saved["progress"].opt if kind == "resume" else saved)
            resumed_data.check_dataroot_given(self.opt)
            resumed_data.check_dataroot_exists(self.opt)
            self.check_saved_options(self.folder.checkpoint if kind == "resume" else self.folder.options)
        return saved if kind == "resume" else None

    def check_saved_options(self, source):
        try:
            validate(self.opt)
        except OptionError as error:
            raise RunError(f"{source} cannot be resumed: its saved options do not work ({error}); it was edited "
                           "or damaged") from None

    def open_folder(self):
        """Lock the run folder, clear what killed saves left, decide how to start. Every
        problem with the folder is a one-line RunError, before data or networks are built."""
        path = self.folder.path
        try:
            self.lock.acquire(self.log)
            for temporary in cleanup_stale_temporaries(path):
                self.log(f"removed {temporary}, left by a save that was killed")
            kind = self.folder.plan_start(self.opt.resume, self.log)
        except RunFolderInUse as e:
            raise RunError(str(e)) from None
        except OSError as e:
            raise RunError(f"cannot use the run folder {path}: {e.strerror or e}") from None
        if kind == "resume":
            return kind, self.read_checkpoint()
        if kind == "restart":
            return kind, self.folder.saved_options()
        return kind, None

    def read_checkpoint(self):
        """{"recipe": RecipeState, "progress": RunProgress} of latest.pt."""
        path = self.folder.checkpoint
        try:
            checkpoint = read_training_checkpoint(path)
            return {"recipe": recipe_state_of(checkpoint, path), "progress": run_progress_of(checkpoint, path)}
        except (CheckpointError, OSError) as e:
            raise RunError(str(e)) from None

    def setup(self, state):
        opt, dist = self.opt, self.dist
        self.device = resolve_device(opt, dist)
        if opt.torch_threads > 0:
            torch.set_num_threads(opt.torch_threads)
        context = RunContext(self.device, Precision(opt.amp, self.device), self.setup_data(), dist.rank,
                             dist.world_size)
        torch.manual_seed(opt.seed)  # same initial weights on every rank
        self.recipe = get_recipe(opt.model)(opt, context)
        self.metrics_log = report.MetricsLog(self.folder.metrics)
        if state is not None:
            self.restore(state)
        elif dist.is_main:
            self.folder.write_options(opt)
        if dist.is_main:
            os.makedirs(self.folder.samples, exist_ok=True)
            self.live = live_log.open_live_log(opt, self.folder)
            self.live.log_options(options_dict(opt))
        self.wrap_networks()
        self.bar = self.progress_bar()
        self.log(f"run {self.folder.path}: --model {opt.model}, netG={opt.netG}, {opt.dataset} data "
                 f"({len(self.dataset)} per epoch), {self.steps_per_epoch} steps/epoch x {self.total_epochs} "
                 f"epochs, device {self.device}" + (f", {dist.world_size} processes" if dist.enabled else ""))

    def setup_data(self):
        """Data first: a missing / empty folder fails here, before any network is built.
        Returns the steps per epoch."""
        opt, dist = self.opt, self.dist
        self.dataset = data.training_dataset(opt)
        self.dataset_identity = self.dataset.identity() if opt.dataset == "folder" else None
        self.sampler = data.RunSampler(self.dataset.len_A, self.dataset.len_B, opt.batch_size, opt.seed,
                                       opt.serial_batches, dist.world_size, dist.rank)
        self.steps_per_epoch = len(self.sampler)
        self.total_epochs = opt.n_epochs + opt.n_epochs_decay
        self.total_steps = self.total_epochs * self.steps_per_epoch
        if opt.max_steps is not None:
            self.total_steps = min(self.total_steps, opt.max_steps)
        self.evaluates = opt.dataset == "synthetic"  # the synthetic data has a paired test split
        self.data_workers, capped = capped_workers(opt.num_threads)
        if capped:
            self.log(capped)
        n_fixed = max(opt.eval_size, 8) if self.evaluates else 8
        self.fixed_A, self.fixed_B = data.fixed_test_images(opt, n_fixed) if dist.is_main else (None, None)
        self.fid = FIDTracker.for_run(opt, self.device, self.log) if dist.is_main else None
        return self.steps_per_epoch

    def restore(self, state):
        dist, recipe, progress = self.dist, self.recipe, state["progress"]
        try:
            recipe.load_checkpoint_state(state["recipe"])
        except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
            first = (str(error).strip().splitlines() or [type(error).__name__])[-1].strip().rstrip(".")
            raise RunError(f"{self.folder.checkpoint} cannot be resumed: its weights or optimiser states do not fit "
                           f"the networks its saved options describe ({first}); it was edited or damaged") from None
        if dist.is_main:
            resumed_data.compare_identity(progress.dataset, self.dataset_identity, self.opt,
                                          progress.opt.get("dataroot"), self.log)
        recipe.precision.scaler.load_state_dict(progress.scaler)
        self.step, self.epoch, self.batch_in_epoch = progress.step, progress.epoch, progress.batch_in_epoch
        self.saved_step = progress.step
        if self.fid is not None and progress.best_fid is not None:
            self.fid.best = progress.best_fid
        ranks = progress.rank_states
        if len(ranks) == dist.world_size:
            mine = ranks[dist.rank]
            recipe.load_rank_state(mine, self.device)
            ckpt.set_rng_state(mine[ckpt.RNG_KEY])
        else:
            warnings.warn(f"checkpoint was written by {len(ranks)} processes, this run has "
                          f"{dist.world_size}: per-process state (image pools) and RNG states start afresh "
                          f"and training continues at the next epoch (not an exact resume)")
            if self.batch_in_epoch > 0:
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
                recipe.end_epoch()
        if dist.is_main:
            self.metrics_log.truncate_after(self.step)
            self.log(f"resuming {self.folder.path} at step {self.step} "
                     f"(epoch {self.epoch + 1}, batch {self.batch_in_epoch})")

    def wrap_networks(self):
        """torch.compile (--compile) inside, DDP outside: the recipe can call a network
        without DDP (unwrap(net, parallel_only=True)) and still run it compiled."""
        self.mark_step = None
        if self.opt.compile:
            self.mark_step = compiling.compile_recipe(self.recipe, self.opt.compile_mode, self.device)
        if self.dist.enabled:
            self.recipe.wrap_networks(self.wrap_ddp)

    def wrap_ddp(self, net):
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(net, device_ids=device_ids)

    def progress_bar(self):
        if not self.dist.is_main or self.opt.no_progress:
            return None
        from tqdm import tqdm
        return tqdm(total=self.total_steps, initial=self.step, unit="it", dynamic_ncols=True, desc=self.opt.name)

    # --- training ---------------------------------------------------------------------------

    def train_epochs(self):
        self.loader_rng = torch.Generator()  # the DataLoader must not consume the global RNG
        self.t_last = time.perf_counter()
        self.stopping = False
        self.first_step_index = self.step
        while self.epoch < self.total_epochs and self.step < self.total_steps and not self.stopping:
            self.train_epoch()
            if self.batch_in_epoch >= self.steps_per_epoch:
                self.end_epoch()

    def train_epoch(self):
        loader = data.make_loader(self.dataset, self.sampler.epoch_batches(self.epoch, self.batch_in_epoch),
                                  self.data_workers, pin_memory=self.device.type == "cuda",
                                  generator=self.loader_rng, worker_init_fn=partial(_init_worker, self.lock))
        batches = iter(loader)
        while self.step < self.total_steps and not self.all_ranks_stopping():
            batch = self.next_batch(batches)
            if batch is None:
                break
            if self.mark_step is not None:
                self.mark_step()
            losses = self.first_step(batch) if self.step == self.first_step_index else self.train_step(batch)
            self.after_step(losses)

    def train_step(self, batch):
        return self.recipe.train_step(self.to_device(batch["A"]), self.to_device(batch["B"]))

    def first_step(self, batch):
        """The first step of this process; a failure there that a larger --crop_size avoids
        becomes one line naming the size to use."""
        try:
            return self.train_step(batch)
        except (RuntimeError, ValueError):
            sized = self.opt.preprocess != "none"  # else the inputs have their images' own sizes
            error = too_small_crop_error(self.recipe.networks(), self.opt.crop_size, self.opt) if sized else None
            if error is None:
                raise
            if self.started_fresh and self.dist.is_main:
                self.folder.forget_options()
            raise error from None

    def end_epoch(self):
        self.epoch += 1
        self.batch_in_epoch = 0
        with warnings.catch_warnings():  # a run resumed at an epoch end steps before any opt.step()
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            self.recipe.end_epoch()

    def all_ranks_stopping(self):
        """True when any rank got a signal; every rank then stops at the same step. Under DDP
        the ranks agree every STOP_CHECK_INTERVAL steps only: agreeing is an all-reduce whose
        result the host must wait for."""
        if self.dist.enabled and self.step % STOP_CHECK_INTERVAL:
            return False
        if self.dist.all_min(0 if self.stop.signal is not None else 1) == 0:
            self.stop.signal = self.stop.signal or GracefulStop.SIGNALS[1]
            self.stopping = True
        return self.stopping

    def next_batch(self, batches):
        try:
            return next(batches)
        except StopIteration:
            return None
        except RuntimeError:
            if self.stop.signal is not None:  # a worker died of the same Ctrl-C
                return None
            raise

    def to_device(self, images):
        images = images.to(self.device, non_blocking=True)
        if self.opt.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        return images

    def after_step(self, losses):
        """Count the step; log, sample, evaluate and save at their frequencies. The losses stay
        on the device until a logging step reads them."""
        opt = self.opt
        self.finite.update(losses)
        self.step += 1
        self.batch_in_epoch += 1
        now = time.perf_counter()
        seconds, self.t_last = now - self.t_last, now
        if self.bar is not None:
            self.bar.update(1)
        if self.dist.is_main:
            if self.step % opt.print_freq == 0 or self.step == 1:
                self.log_losses(losses, seconds)
            if self.step % opt.display_freq == 0:
                self.save_samples()
            if self.evaluates and self.step % opt.eval_freq == 0:
                self.evaluate()
            if self.fid is not None and self.step % opt.eval_freq == 0:
                self.evaluate_fid()
        if self.step % opt.save_latest_freq == 0:
            self.save()
            if self.dist.is_main:
                self.refresh_report()

    def log_losses(self, losses, seconds):
        values = {k: v.item() for k, v in losses.items()}
        self.record({"type": "train", "step": self.step, "epoch": self.epoch + 1, **values,
                     "lr": self.recipe.learning_rate(), "sec_per_step": seconds})
        if self.bar is not None:
            shown = progress_postfix(values, self.recipe.progress_losses or self.recipe.loss_names)
            self.bar.set_postfix_str(f"ep {self.epoch + 1}/{self.total_epochs} {shown}", refresh=False)
        if non_finite(values):
            self.diverged(non_finite(values))

    def record(self, record):
        """One line of metrics.jsonl, and the same numbers to TensorBoard / W&B."""
        self.metrics_log.append(record)
        self.live.log_scalars(record["step"], live_log.scalars_of(record, self.recipe.loss_networks()))

    def diverged(self, found=None):
        raise TrainingDiverged(diverged_message(self.step, found, self.saved_step, self.folder.checkpoint,
                                                self.opt.lr))

    # --- outputs ----------------------------------------------------------------------------

    def save(self):
        """Gather every rank's own state and RNG states; rank 0 writes latest.pt atomically.
        Every rank refuses when some rank's losses were not finite since it started."""
        if self.dist.all_min(1 if self.finite.all_finite() else 0) == 0:
            self.diverged()
        ranks = self.dist.gather_to_main(self.own_rank_state())
        if self.dist.is_main:
            ckpt.atomic_save(self.checkpoint_payload(ranks), self.folder.checkpoint)
        self.saved_step = self.step

    def own_rank_state(self):
        return {**self.recipe.rank_state(), ckpt.RNG_KEY: ckpt.rng_state()}

    def checkpoint_payload(self, ranks):
        progress = RunProgress(step=self.step, epoch=self.epoch, batch_in_epoch=self.batch_in_epoch,
                               world_size=self.dist.world_size, rank_states=ranks, opt=options_dict(self.opt),
                               scaler=self.recipe.precision.scaler.state_dict(),
                               best_fid=None if self.fid is None else self.fid.best, dataset=self.dataset_identity)
        return assemble(self.recipe.checkpoint_state(), progress)

    def save_samples(self):
        rows = self.recipe.sample_rows(self.fixed_A[:8], self.fixed_B[:8])
        grid = report.save_grid(rows, self.folder.sample_path(self.step))
        self.live.log_image(self.step, "samples", np.asarray(grid))

    def evaluate(self):
        generators = self.recipe.generators
        self.last_eval = evaluate_paired(unwrap(generators["AtoB"]), unwrap(generators.get("BtoA")), self.fixed_A,
                                         self.fixed_B, self.device, self.opt.channels_last)
        self.record({"type": "eval", "step": self.step, "epoch": self.epoch + 1, **self.last_eval})

    def evaluate_fid(self):
        """FID / KID of both directions on testA / testB; best.pt follows the lowest mean FID.
        best.pt holds this process's state only: it is for translating and evaluating (a
        multi-process run resumes from latest.pt)."""
        generators = self.recipe.generators
        result = self.fid.measure(unwrap(generators["AtoB"]), unwrap(generators.get("BtoA")))
        self.record({"type": "fid", "step": self.step, "epoch": self.epoch + 1, **result})
        if self.fid.is_best(result["fid"]):
            ckpt.atomic_save(self.checkpoint_payload([self.own_rank_state()]), self.folder.best_checkpoint)
            self.log(f"step {self.step}: FID {result['fid']:.2f}, the lowest so far: saved {self.folder.best_checkpoint}")

    def refresh_report(self):
        report.plot_curves(self.folder, self.recipe.plot_panels())
        report.write_index(self.folder, options_dict(self.opt), self.recipe.sample_caption)

    def finish(self):
        """Final checkpoint, samples, evaluation and report; the summary train() returns. A
        signal once the checkpoint is written skips the rest (the run counts as interrupted)."""
        self.save()
        self.stop.saved = True
        folder = self.folder
        summary = {"run_dir": folder.path, "step": self.step, "epoch": self.epoch, "interrupted": self.stopping,
                   "checkpoint": folder.checkpoint}
        if not self.dist.is_main:
            return summary
        try:
            self.final_outputs()
        except StopNow:
            return {**summary, "interrupted": True}
        plots = (folder.loss_plot, folder.eval_plot)
        summary.update(eval=self.last_eval, samples_dir=folder.samples, index_html=folder.index_html,
                       plots=[p for p in plots if os.path.exists(p)])
        return summary

    def final_outputs(self):
        if self.step > 0 and not os.path.exists(self.folder.sample_path(self.step)):
            self.save_samples()
        if self.evaluates and self.step > 0 and (self.last_eval is None or self.step % self.opt.eval_freq != 0):
            self.evaluate()
        self.refresh_report()
