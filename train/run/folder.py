"""The run folder checkpoints_dir/name: the one home of its file names, whether a run may start
in it, and the options a resumed run keeps."""
import json
import os

from models.errors import UserError

from ..atomic import atomic_write
from ..options import options_dict, resume_may_change


class RunError(UserError):
    """The run cannot start (folder already holds a run, nothing to resume, bad options)."""


class RunFolder:
    """Paths of one run's files; nothing else spells their names."""

    CHECKPOINT, BEST_CHECKPOINT, OPTIONS, METRICS = "latest.pt", "best.pt", "opt.json", "metrics.jsonl"
    SAMPLES, INDEX_HTML, LOSS_PLOT, EVAL_PLOT, LOCK = "samples", "index.html", "losses.png", "eval.png", ".lock"
    TENSORBOARD_EVENTS = "events.out.tfevents."  # how every TensorBoard event file's name starts
    WANDB_RUN_ID = "wandb_run_id"  # the W&B run a resumed --wandb run continues (W&B's own files: wandb/)
    MARKERS = (CHECKPOINT, BEST_CHECKPOINT, OPTIONS, METRICS, SAMPLES)  # a folder holding any of them holds a run
    REPORT = (METRICS, LOSS_PLOT, EVAL_PLOT, INDEX_HTML)  # what a run that never saved leaves

    def __init__(self, checkpoints_dir, name):
        self.path = os.path.join(checkpoints_dir, name)
        self.checkpoint = self.file(self.CHECKPOINT)
        self.best_checkpoint = self.file(self.BEST_CHECKPOINT)  # lowest FID (folder data with testA/testB)
        self.options = self.file(self.OPTIONS)
        self.metrics = self.file(self.METRICS)
        self.samples = self.file(self.SAMPLES)
        self.index_html = self.file(self.INDEX_HTML)
        self.loss_plot = self.file(self.LOSS_PLOT)
        self.eval_plot = self.file(self.EVAL_PLOT)
        self.lock = self.file(self.LOCK)
        self.wandb_run_id = self.file(self.WANDB_RUN_ID)

    def file(self, name):
        return os.path.join(self.path, name)

    def present_markers(self):
        return [m for m in self.MARKERS if os.path.exists(self.file(m))]

    def sample_grids(self):
        """File names of the sample grids, oldest first."""
        if not os.path.isdir(self.samples):
            return []
        return sorted(f for f in os.listdir(self.samples) if f.startswith("step_") and f.endswith(".png"))

    def tensorboard_event_files(self):
        """Paths of the TensorBoard event files (--tensorboard), oldest first."""
        if not os.path.isdir(self.path):
            return []
        return sorted(self.file(f) for f in os.listdir(self.path) if f.startswith(self.TENSORBOARD_EVENTS))

    def plan_start(self, resume, log):
        """How a run may start here: "fresh", "resume" (from latest.pt) or "restart" (from
        step 0 with the options saved in opt.json: --resume of a run that never saved).
        Raises RunError where starting would clobber a run or there is nothing to resume."""
        if os.path.exists(self.checkpoint):
            if resume:
                return "resume"
            raise RunError(f"{self.path} already holds a run ({', '.join(self.present_markers())}). Use --resume "
                           f"(or --continue_train) to continue it, or choose another --name, or delete the folder.")
        found = self.present_markers()
        if not found:
            if resume:
                raise RunError(f"--resume: no checkpoint at {self.checkpoint} (nothing to resume)")
            return "fresh"
        if os.path.exists(self.best_checkpoint):
            raise RunError(f"{self.path} holds {self.BEST_CHECKPOINT} but no {self.CHECKPOINT} "
                           f"({', '.join(found)}): there is nothing to resume from, and starting again would replace "
                           f"{self.BEST_CHECKPOINT}; move the folder's files away (or choose another --name)")
        # A run that stopped before its first checkpoint: its logs cannot be continued.
        stopped = f"{self.path} holds a run that stopped before its first checkpoint{self._last_logged_step()}"
        if not resume:
            raise RunError(f"{stopped} ({', '.join(found)}). To start it again from step 0 with its saved options "
                           f"(its logs and sample grids are replaced), add --resume; or choose another --name, or "
                           f"delete the folder")
        self.clear_logs()
        log(f"{stopped}: nothing to resume, so --resume starts it again from step 0 with its saved options")
        return "restart" if os.path.exists(self.options) else "fresh"

    def _last_logged_step(self):
        from .report import read_jsonl
        records = read_jsonl(self.metrics) if os.path.exists(self.metrics) else []
        steps = [r.get("step", 0) for r in records]
        return f" (last logged step {max(steps)})" if steps else ""

    def clear_logs(self):
        """Remove what a run that never saved left: its metrics, sample grids, report, TensorBoard
        events and W&B run id (a new W&B run starts; W&B's own files in wandb/ are left)."""
        for name in (*self.REPORT, self.WANDB_RUN_ID):
            if os.path.exists(self.file(name)):
                os.unlink(self.file(name))
        for name in self.sample_grids():
            os.unlink(os.path.join(self.samples, name))
        for path in self.tensorboard_event_files():
            os.unlink(path)

    def saved_options(self):
        """The options in opt.json, or a RunError naming the file."""
        try:
            with open(self.options) as f:
                saved = json.load(f)
        except (OSError, ValueError) as e:
            raise RunError(f"cannot read the saved options {self.options}: {e}") from None
        if not isinstance(saved, dict):
            raise RunError(f"{self.options} does not hold a JSON object of options")
        return saved

    def sample_path(self, step):
        return os.path.join(self.samples, f"step_{step:07d}.png")

    def forget_options(self):
        """Undo write_options of a fresh start that failed before its first step (the run wrote
        nothing else), so the same --name can start again with corrected options."""
        os.unlink(self.options)
        if os.path.isdir(self.samples) and not os.listdir(self.samples):
            os.rmdir(self.samples)

    def write_options(self, opt):
        os.makedirs(self.samples, exist_ok=True)
        text = json.dumps(options_dict(opt), indent=2, sort_keys=True)
        atomic_write(self.options, lambda f: f.write(text.encode()), what="options file")


def merge_resumed_options(opt, saved):
    """A resumed run keeps its saved options; only resume_may_change() ones may be changed."""
    explicit, may_change = set(getattr(opt, "_explicit", ())), resume_may_change()
    conflicts = []
    for k, v in saved.items():
        if k in may_change and k in explicit:
            continue
        if k in explicit and getattr(opt, k, v) != v:
            conflicts.append(f"--{k} {getattr(opt, k)} (run has {v})")
        setattr(opt, k, v)
    if conflicts:
        raise RunError("a resumed run keeps its options; these differ from the saved ones: " + "; ".join(conflicts))
    return opt
