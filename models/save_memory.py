"""save_memory: exact recompute in the norm-activation-conv units of a network.

In a chain  ... -> conv_k -> norm(+act) -> [pad / upsample] -> conv_{k+1}  autograd keeps two
activations: the norm's input z (for the norm's backward) and conv_{k+1}'s input u (for its
weight gradient). u is a cheap, memory-bound function of z, so a unit keeps z only and rebuilds u
in the backward: the same layers run again on the same z (the fused norm recomputes the same
statistics and the same output, bit for bit), then conv_{k+1}'s backward runs on the rebuilt u
(aten.convolution_backward: input and weight gradients, no second forward of the convolution),
then the prefix's backward through autograd. Same kernels, same order of operations: the
outputs and every gradient equal those of the plain network.

`run_sequential(seq, x)` runs an nn.Sequential that way: each maximal run of cheap modules
(norm layers, activations, pads, upsampling, identity slots, modules marked `rerun_cheaply` such
as the fixed blurs of models.antialias, and a convolution reading an image, at most
IMAGE_CHANNELS channels) followed by a convolution becomes one unit that saves only the
run's input. The module tree and state_dict are untouched. Under autocast or torch.compile it
runs the Sequential as usual (torch.compile plans its own memory).

grad_checkpoint: a module marked `checkpoint_segment` (a residual block) keeps only its input
and runs again in the backward (with the random state it had, so dropout draws the same mask).
It is written as an autograd Function like the units, rather than with torch.utils.checkpoint,
so that the input it keeps is a saved tensor that saved_tensors_hooks (and so the benchmarks'
accounting) see.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .norms import is_norm_layer

IMAGE_CHANNELS = 4  # a convolution reading at most this many channels is cheap to run again
CHEAP = (nn.ReflectionPad2d, nn.ZeroPad2d, nn.ReplicationPad2d, nn.Upsample, nn.Identity, nn.ReLU, nn.LeakyReLU)
CONSUMERS = (nn.Conv2d, nn.ConvTranspose2d)


def _is_consumer(module) -> bool:
    """A convolution whose backward can run on a rebuilt input (no spectral norm, zero padding)."""
    return (isinstance(module, CONSUMERS) and getattr(module, "padding_mode", "zeros") == "zeros"
            and not hasattr(module, "weight_orig") and isinstance(module.padding, tuple))


def _is_cheap(module, first: bool) -> bool:
    if first and getattr(module, "inplace", False):
        return False  # an in-place activation would overwrite the unit's own saved input
    if isinstance(module, nn.Conv2d):
        return _is_consumer(module) and module.in_channels <= IMAGE_CHANNELS
    return is_norm_layer(module) or isinstance(module, CHEAP) or getattr(module, "rerun_cheaply", False)


AUTOCAST_DEVICES = ("cuda", "cpu")


def active(x: torch.Tensor) -> bool:
    """Whether a forward on x would use the units: gradients on, no autocast, not compiling."""
    autocast = x.device.type in AUTOCAST_DEVICES and torch.is_autocast_enabled(x.device.type)
    return torch.is_grad_enabled() and not autocast and not torch.compiler.is_compiling()


def run_sequential(seq: nn.Sequential, x: torch.Tensor, units: bool = True, checkpoint: bool = False):
    """seq(x), with every cheap run followed by a convolution as one recomputing unit (units)
    and every checkpoint_segment module checkpointed (checkpoint)."""
    if not torch.is_grad_enabled() or torch.compiler.is_compiling():
        return seq(x)
    units = units and active(x)
    modules = list(seq)
    i = 0
    while i < len(modules):
        j = i
        while units and j < len(modules) and _is_cheap(modules[j], first=j == i):
            j += 1
        if j < len(modules) and j > i and _is_consumer(modules[j]):
            x = recompute_unit(modules[i:j], modules[j], x)
            i = j + 1
            continue
        for module in modules[i:max(j, i + 1)]:
            x = _checkpointed(module, x) if checkpoint and getattr(module, "checkpoint_segment", False) else module(x)
        i = max(j, i + 1)
    return x


def _checkpointed(module, x):
    params = list(module.parameters())
    return _RecomputedBlock.apply(module, len(params), x, *params)


def recompute_unit(prefix, conv, x):
    """conv(prefix(x)), saving x only (see the module docstring)."""
    prefix = tuple(prefix)
    params = [p for m in prefix for p in m.parameters()]
    return _RecomputedInput.apply(prefix, conv, len(params), x, *params, conv.weight, conv.bias)


def _run(prefix, x):
    for module in prefix:
        x = module(x)
    return x


def _grads(output, inputs, needs, grad_output):
    """d output / d input (vector-Jacobian with grad_output) for each input that needs one;
    None for the others."""
    wanted = [t for t, need in zip(inputs, needs) if need and t.requires_grad]
    found = iter(torch.autograd.grad(output, wanted, grad_output, allow_unused=True) if wanted else ())
    return [next(found) if need and t.requires_grad else None for t, need in zip(inputs, needs)]


class _RecomputedInput(torch.autograd.Function):
    @staticmethod
    def forward(ctx, prefix, conv, n_prefix_params, x, *params):
        ctx.prefix, ctx.conv, ctx.n_prefix_params = prefix, conv, n_prefix_params
        ctx.save_for_backward(x)
        return conv(_run(prefix, x))

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        prefix, conv, n = ctx.prefix, ctx.conv, ctx.n_prefix_params
        needs = ctx.needs_input_grad[3:]  # x, prefix params..., conv weight, conv bias
        prefix_params = [p for m in prefix for p in m.parameters()]
        with torch.enable_grad():
            leaf = x.detach().requires_grad_(needs[0])
            u = _run(prefix, leaf)
        grad_u, grad_weight, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, u.detach(), conv.weight, [conv.out_channels] if conv.bias is not None else None,
            conv.stride, conv.padding, conv.dilation, isinstance(conv, nn.ConvTranspose2d),
            getattr(conv, "output_padding", (0, 0)), conv.groups,
            [any(needs[:n + 1]), needs[n + 1], conv.bias is not None and needs[n + 2]])
        prefix_grads = _grads(u, [leaf, *prefix_params], needs[:n + 1], grad_u)
        return (None, None, None, *prefix_grads, grad_weight if needs[n + 1] else None,
                grad_bias if conv.bias is not None and needs[n + 2] else None)


class SavesMemory:
    """Mixin of the networks (and blocks) that can run their Sequentials as recomputing units
    (save_memory) and checkpoint their residual blocks (grad_checkpoint: each block keeps only
    its input, torch.utils.checkpoint non-reentrant, and runs again in the backward). Both are
    switches, not architecture: not in `config`, no state_dict entry."""

    save_memory = False
    grad_checkpoint = False

    def run(self, seq: nn.Sequential, x: torch.Tensor) -> torch.Tensor:
        if not (self.save_memory or self.grad_checkpoint):
            return seq(x)
        return run_sequential(seq, x, units=self.save_memory, checkpoint=self.grad_checkpoint)


def set_save_memory(net: nn.Module, save_memory: bool = True, grad_checkpoint: bool = False) -> nn.Module:
    """Set save_memory and grad_checkpoint in net and every block inside it that offers them."""
    for module in net.modules():
        if isinstance(module, SavesMemory):
            module.save_memory, module.grad_checkpoint = bool(save_memory), bool(grad_checkpoint)
    return net


class _RecomputedBlock(torch.autograd.Function):
    @staticmethod
    def forward(ctx, module, n_params, x, *params):
        ctx.module = module
        ctx.rng = (torch.get_rng_state(), torch.cuda.get_rng_state(x.device) if x.is_cuda else None)
        ctx.save_for_backward(x)
        return module(x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out):
        (x,) = ctx.saved_tensors
        needs = ctx.needs_input_grad[2:]  # x, params...
        params = list(ctx.module.parameters())
        cpu_state, cuda_state = ctx.rng
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []), torch.enable_grad():
            torch.set_rng_state(cpu_state)
            if cuda_state is not None:
                torch.cuda.set_rng_state(cuda_state, x.device)
            leaf = x.detach().requires_grad_(needs[0])
            y = ctx.module(leaf)
        return (None, None, *_grads(y, [leaf, *params], needs, grad_out))
