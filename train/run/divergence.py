"""Divergence: a run whose losses stop being finite never writes a checkpoint after it.

The losses stay on the device between logging steps (a step never waits for the device), so the
check is a device-side flag: every step folds "some loss was not finite" into it, and a save
reads it (a save waits for the device anyway). A logging step also checks the values it read.
Either way the run stops with TrainingDiverged, and latest.pt keeps the last finite state."""
import math

import torch

from models.errors import UserError


class TrainingDiverged(UserError):
    """A loss became NaN or infinite; nothing was saved after it."""

    exit_status = 1  # training ran; its latest state is not worth keeping


class FiniteLosses:
    """Whether every loss since the run (re)started was finite, kept on the device."""

    def __init__(self):
        self.bad = None

    def update(self, losses: dict) -> None:
        bad = ~torch.isfinite(torch.stack(list(losses.values()))).all()
        self.bad = bad if self.bad is None else self.bad | bad

    def all_finite(self) -> bool:
        """Reads the flag: waits for the device."""
        return self.bad is None or not bool(self.bad)


def non_finite(values: dict) -> dict:
    return {k: v for k, v in values.items() if isinstance(v, float) and not math.isfinite(v)}


def diverged_message(step, found, saved_step, checkpoint, lr) -> str:
    where = (f"{checkpoint} keeps step {saved_step}, the last finite state" if saved_step
             else "no checkpoint was written")
    losses = f" ({', '.join(f'{k} {v}' for k, v in found.items())})" if found else ""
    return (f"training diverged: a loss was not finite at or before step {step}{losses}; nothing was saved "
            f"after it: {where}. Start again with a lower --lr (this run used {lr:g}) or other options")
