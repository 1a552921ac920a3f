"""CycleGAN's PatchGAN discriminator (NLayerDiscriminator; n_layers=3 is the 70x70 PatchGAN).

Official module tree and state_dict keys (`model.0.weight`, `model.2.weight`, ...) with
norm='instance'. The LeakyReLU(0.2) after each instance norm is fused into the norm; its
slot holds an nn.Identity so the indices do not move.

antialias=True gives CUT's variant (taesungp/contrastive-unpaired-translation, NLayerDiscriminator
without --no_antialias): every stride-2 convolution becomes a stride-1 convolution, its
activation and a BlurDownsample (buffer `filt`), with CUT's module tree and keys.
"""
from __future__ import annotations

from torch import nn

from . import norms
from .antialias import BlurDownsample
from .save_memory import SavesMemory, set_save_memory

KERNEL_SIZE = 4
PADDING = 1
LEAKY_SLOPE = 0.2
MAX_CHANNEL_MULTIPLIER = 8


class NLayerDiscriminator(SavesMemory, nn.Module):
    """Maps an image to an (N, 1, H', W') map of real/fake logits, one per receptive patch."""

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = 3, norm_impl: str = "fused",
                 save_memory: bool = False, antialias: bool = False):
        super().__init__()
        if n_layers < 1:
            raise ValueError(f"n_layers must be >= 1, got {n_layers}")
        self.config = dict(input_nc=input_nc, ndf=ndf, n_layers=n_layers, antialias=antialias)
        stride = 1 if antialias else 2
        layers = [nn.Conv2d(input_nc, ndf, KERNEL_SIZE, stride=stride, padding=PADDING),
                  nn.LeakyReLU(LEAKY_SLOPE, inplace=True), *([BlurDownsample(ndf)] if antialias else [])]
        channels = ndf
        for n in range(1, n_layers + 1):
            out_channels = ndf * min(2 ** n, MAX_CHANNEL_MULTIPLIER)
            halves = n < n_layers
            layers += [nn.Conv2d(channels, out_channels, KERNEL_SIZE, stride=2 if halves and not antialias else 1,
                                 padding=PADDING, bias=True)]
            layers += norms.instance_norm(out_channels, norm_impl, activation="leaky_relu",
                                          negative_slope=LEAKY_SLOPE)
            if halves and antialias:
                layers.append(BlurDownsample(out_channels))
            channels = out_channels
        layers += [nn.Conv2d(channels, 1, KERNEL_SIZE, stride=1, padding=PADDING)]
        self.model = nn.Sequential(*layers)
        set_save_memory(self, save_memory)

    def forward(self, x):
        return self.run(self.model, x)
