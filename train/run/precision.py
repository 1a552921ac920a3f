"""Mixed precision for a training step: autocast and the gradient scaler, or neither."""
import contextlib
import warnings

import torch

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """--amp on CUDA: autocast to bf16 / fp16 (fp16 with a gradient scaler); float32 elsewhere.

    Recipes write their step as
        with precision.autocast(): loss = ...
        precision.backward(loss); precision.step(optimizer)
    and call precision.update() once at the end of the step.
    """

    def __init__(self, amp: str, device: torch.device):
        self.dtype = AMP_DTYPES.get(amp)
        if self.dtype is not None and device.type != "cuda":
            warnings.warn(f"--amp {amp} needs CUDA; training in float32 on {device}")
            self.dtype = None
        self.device_type = device.type
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def autocast(self):
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.dtype)

    def backward(self, loss):
        self.scaler.scale(loss).backward()

    def step(self, optimizer):
        """optimizer.step(), skipped by the fp16 scaler when gradients overflowed (that check
        reads a flag from the GPU: fp16 steps synchronise once per optimiser)."""
        self.scaler.step(optimizer)

    def update(self):
        self.scaler.update()
