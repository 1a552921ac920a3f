"""The run folder checkpoints_dir/name: what it holds, whether a run may start in it, and the
options a resumed run keeps."""
import json
import os

from . import report
from .atomic import atomic_write

# Options a resumed run may change; every other option is taken from the saved run.
RESUME_OVERRIDABLE = {"resume", "max_steps", "num_threads", "torch_threads", "device", "no_progress", "print_freq",
                      "display_freq", "save_latest_freq", "eval_freq", "checkpoints_dir", "name", "demo",
                      "compile", "compile_mode", "inception_weights"}


class RunError(RuntimeError):
    """The run cannot start (folder already holds a run, nothing to resume, bad options)."""


class RunFolder:
    """Paths of one run's files."""

    MARKERS = ("latest.pt", "opt.json", "metrics.jsonl", "samples")

    def __init__(self, checkpoints_dir, name):
        self.path = os.path.join(checkpoints_dir, name)
        self.checkpoint = os.path.join(self.path, "latest.pt")
        self.best_checkpoint = os.path.join(self.path, "best.pt")  # lowest FID (folder data with testA/testB)
        self.options = os.path.join(self.path, "opt.json")
        self.metrics = os.path.join(self.path, "metrics.jsonl")
        self.samples = os.path.join(self.path, "samples")
        self.index_html = os.path.join(self.path, "index.html")

    def present_markers(self):
        return [m for m in self.MARKERS if os.path.exists(os.path.join(self.path, m))]

    def plan_start(self, resume, log):
        """How a run may start here: "fresh", "resume" (from latest.pt) or "restart" (from
        step 0 with the options saved in opt.json: --resume of a run that never saved).
        Raises RunError where starting would clobber a run or there is nothing to resume."""
        if os.path.exists(self.checkpoint):
            if resume:
                return "resume"
            raise RunError(f"{self.path} already holds a run ({', '.join(self.present_markers())}). Use --resume "
                           f"(or --continue_train) to continue it, or choose another --name, or delete the folder.")
        if not self.present_markers():
            if resume:
                raise RunError(f"--resume: no checkpoint at {self.checkpoint} (nothing to resume)")
            return "fresh"
        # A run that stopped before its first checkpoint: its logs cannot be continued.
        stopped = f"{self.path} holds a run that stopped before its first checkpoint{self._last_logged_step()}"
        self.clear_logs()
        if resume:
            log(f"{stopped}: nothing to resume, so --resume starts it again from step 0 with its saved options")
            return "restart" if os.path.exists(self.options) else "fresh"
        log(f"{stopped} (nothing was saved to lose): starting afresh in its place")
        return "fresh"

    def _last_logged_step(self):
        records = report.read_jsonl(self.metrics) if os.path.exists(self.metrics) else []
        steps = [r.get("step", 0) for r in records]
        return f" (last logged step {max(steps)})" if steps else ""

    def clear_logs(self):
        """Remove what a run that never saved left: its metrics, sample grids and report."""
        for name in ("metrics.jsonl", "losses.png", "eval.png", "index.html"):
            if os.path.exists(os.path.join(self.path, name)):
                os.unlink(os.path.join(self.path, name))
        if os.path.isdir(self.samples):
            for name in os.listdir(self.samples):
                if name.startswith("step_") and name.endswith(".png"):
                    os.unlink(os.path.join(self.samples, name))

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

    def write_options(self, opt):
        os.makedirs(self.samples, exist_ok=True)
        text = json.dumps(options_dict(opt), indent=2, sort_keys=True)
        atomic_write(self.options, lambda f: f.write(text.encode()), what="options file")


def options_dict(opt):
    return {k: v for k, v in vars(opt).items() if not k.startswith("_")}


def merge_resumed_options(opt, saved):
    """A resumed run keeps its saved options; only RESUME_OVERRIDABLE ones may be changed."""
    explicit = set(getattr(opt, "_explicit", ()))
    conflicts = []
    for k, v in saved.items():
        if k in RESUME_OVERRIDABLE and k in explicit:
            continue
        if k in explicit and getattr(opt, k, v) != v:
            conflicts.append(f"--{k} {getattr(opt, k)} (run has {v})")
        setattr(opt, k, v)
    if conflicts:
        raise RunError("a resumed run keeps its options; these differ from the saved ones: " + "; ".join(conflicts))
    return opt
