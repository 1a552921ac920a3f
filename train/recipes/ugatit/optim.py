"""U-GAT-IT's optimisation (znxlwm/UGATIT-pytorch, UGATIT.build_model / train): one Adam for
both generators and one for the four discriminators, in U-GAT-IT's order (Recipe.adam; betas
(0.5, 0.999), weight decay 1e-4),
a learning rate that falls linearly to 0 per iteration over the decay phase, and rho of every
AdaLIN / LIN clipped to [0, 1] after each generator step.
"""
from __future__ import annotations

import torch
from torch import nn

BETA1, BETA2 = 0.5, 0.999
RHO_RANGE = (0.0, 1.0)


def lr_multiplier(steps_done: int, decay_start: int, decay_steps: int) -> float:
    """The factor on the base lr for the step after `steps_done` steps.

    U-GAT-IT lowers lr by lr / (iteration // 2) at the start of every step numbered (from 1)
    above iteration // 2, so step s runs at lr * (1 - (s - half) / half); here half is
    split into decay_start (steps at full lr) and decay_steps (steps to reach 0), which are both
    iteration // 2 when the two phases are equally long, as in U-GAT-IT.
    """
    if decay_steps <= 0:
        return 1.0
    step_number = steps_done + 1
    return max(0.0, 1.0 - max(0, step_number - decay_start) / decay_steps)


def make_step_scheduler(optimizer, decay_start: int, decay_steps: int):
    """LambdaLR applying lr_multiplier; call .step() once after every training step."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lr_lambda=lambda steps_done: lr_multiplier(steps_done, decay_start, decay_steps))


@torch.no_grad()
def clip_rho_(net: nn.Module, low: float = RHO_RANGE[0], high: float = RHO_RANGE[1]) -> None:
    """Clamp, in place, the `rho` of every submodule that has one (AdaLIN, LIN), as U-GAT-IT's
    RhoClipper does after each generator update."""
    for module in net.modules():
        rho = getattr(module, "rho", None)
        if isinstance(rho, torch.Tensor):
            rho.clamp_(low, high)
