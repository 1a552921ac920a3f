"""The run folder checkpoints_dir/name: what it holds, whether a run may start in it, and the
options a resumed run keeps."""
import json
import os

# Options a resumed run may change; every other option is taken from the saved run.
RESUME_OVERRIDABLE = {"resume", "max_steps", "num_threads", "torch_threads", "device", "no_progress", "print_freq",
                      "display_freq", "save_latest_freq", "eval_freq", "checkpoints_dir", "name", "demo"}


class RunError(RuntimeError):
    """The run cannot start (folder already holds a run, nothing to resume, bad options)."""


class RunFolder:
    """Paths of one run's files."""

    MARKERS = ("latest.pt", "opt.json", "metrics.jsonl", "samples")

    def __init__(self, checkpoints_dir, name):
        self.path = os.path.join(checkpoints_dir, name)
        self.checkpoint = os.path.join(self.path, "latest.pt")
        self.options = os.path.join(self.path, "opt.json")
        self.metrics = os.path.join(self.path, "metrics.jsonl")
        self.samples = os.path.join(self.path, "samples")
        self.index_html = os.path.join(self.path, "index.html")

    def present_markers(self):
        return [m for m in self.MARKERS if os.path.exists(os.path.join(self.path, m))]

    def check_start(self, resume):
        """Refuse to clobber a run; on --resume check there is one to continue."""
        if resume:
            if not os.path.exists(self.checkpoint):
                raise RunError(f"--resume: no checkpoint at {self.checkpoint} (nothing to resume)")
            return
        present = self.present_markers()
        if present:
            raise RunError(f"{self.path} already holds a run ({', '.join(present)}). Use --resume (or "
                           f"--continue_train) to continue it, or choose another --name, or delete the folder.")

    def sample_path(self, step):
        return os.path.join(self.samples, f"step_{step:07d}.png")

    def write_options(self, opt):
        os.makedirs(self.samples, exist_ok=True)
        tmp = self.options + ".tmp"
        with open(tmp, "w") as f:
            json.dump(options_dict(opt), f, indent=2, sort_keys=True)
        os.replace(tmp, self.options)


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
