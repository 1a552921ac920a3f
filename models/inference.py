"""Running a generator for its outputs, not for training."""
import torch
from torch import nn


@torch.no_grad()
def translate_batches(net: nn.Module, x: torch.Tensor, device, batch: int = 16, channels_last: bool = False,
                      call=None):
    """net(x) in eval mode without gradients, `batch` images at a time on `device` (net's mode is
    restored afterwards); a float32 CPU tensor. `call(net, xb)` replaces net(xb) for a network
    with more outputs (a tuple of tensors: each comes back concatenated, in a tuple)."""
    was_training = net.training
    net.eval()
    chunks = []
    try:
        for i in range(0, len(x), batch):
            xb = x[i:i + batch].to(device)
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            out = net(xb) if call is None else call(net, xb)
            chunks.append(tuple(t.float().cpu() for t in out) if isinstance(out, tuple) else out.float().cpu())
    finally:
        net.train(was_training)
    if chunks and isinstance(chunks[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*chunks))
    return torch.cat(chunks)
