"""A training run, whatever the recipe: `train(opt)`. The run owns the run folder (folder.py, the
one home of its file names) and its lock, resume and checkpoint assembly (checkpoint.py), DDP
(distributed.py), precision, torch.compile, signals, data, progress, metrics.jsonl, sample
grids and the report (report.py); the recipe (train/recipes/, chosen by --model) owns the
networks and what one training step does."""
from .folder import RunError
from .run import train

__all__ = ["train", "RunError"]
