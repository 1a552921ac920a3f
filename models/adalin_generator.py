"""This project's generator: a CycleGAN-style encoder / residual transformer with an AdaLIN
U-Net decoder.

    stem     reflect-pad 3, 7x7 conv -> ngf, instance norm + ReLU            (H, W)
    down1    reflect-pad 1, 3x3 stride-2 conv -> 2 ngf, instance norm + ReLU  (H/2, W/2)
    down2    reflect-pad 1, 3x3 stride-2 conv -> 4 ngf, instance norm + ReLU  (H/4, W/4)
    blocks   n_blocks CycleGAN residual blocks (instance norm) at 4 ngf
    style    MLP on the globally average-pooled bottleneck -> (gamma, beta) per decoder stage
    up1      nearest x2, concat down1's map, reflect-pad 1, 3x3 conv -> 2 ngf, AdaLIN + ReLU
    up2      nearest x2, concat stem's map,  reflect-pad 1, 3x3 conv -> ngf,   AdaLIN + ReLU
    head     reflect-pad 3, 7x7 conv -> output_nc, tanh

Every normalization is a fused layer with its ReLU fused in. Input height and width must be
divisible by 4 and at least 8.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import norms
from .resnet import ResnetBlock
from .save_memory import SavesMemory, set_save_memory

MIN_SIZE = 8


def _conv_norm_relu(in_channels, out_channels, kernel_size, stride, norm_impl):
    return nn.Sequential(nn.ReflectionPad2d(kernel_size // 2),
                         nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, bias=False),
                         *norms.instance_norm(out_channels, norm_impl, activation="relu"))


class StyleMLP(nn.Module):
    """gamma, beta for each decoder stage from globally average-pooled features.

    gamma is predicted as 1 + head(h), so a freshly initialised network starts near plain
    layer-instance normalization instead of near zero output.
    """

    def __init__(self, in_features: int, stage_channels):
        super().__init__()
        self.shared = nn.Sequential(nn.Linear(in_features, in_features), nn.ReLU(inplace=True),
                                    nn.Linear(in_features, in_features), nn.ReLU(inplace=True))
        self.gamma_heads = nn.ModuleList(nn.Linear(in_features, c) for c in stage_channels)
        self.beta_heads = nn.ModuleList(nn.Linear(in_features, c) for c in stage_channels)

    def forward(self, features):
        hidden = self.shared(F.adaptive_avg_pool2d(features, 1).flatten(1))
        return [(1 + gamma_head(hidden), beta_head(hidden))
                for gamma_head, beta_head in zip(self.gamma_heads, self.beta_heads)]


class UpStage(nn.Module):
    """Nearest x2 up-sampling, concatenation of the encoder map of that size, 3x3 conv, AdaLIN + ReLU."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm_impl: str):
        super().__init__()
        self.pad = nn.ReflectionPad2d(1)
        self.conv = nn.Conv2d(in_channels + skip_channels, out_channels, kernel_size=3, bias=False)
        self.norm, self.relu = norms.adalin(out_channels, norm_impl, activation="relu")

    def forward(self, x, skip, gamma, beta):
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        x = self.conv(self.pad(torch.cat([x, skip], dim=1)))
        return self.relu(self.norm(x, gamma, beta))


class AdaLINGenerator(SavesMemory, nn.Module):
    fixed_input_size = None  # any size divisible by 4, at least MIN_SIZE

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 6,
                 norm_impl: str = "fused", save_memory: bool = False, grad_checkpoint: bool = False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.config = dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks)
        self.stem = _conv_norm_relu(input_nc, ngf, 7, 1, norm_impl)
        self.down1 = _conv_norm_relu(ngf, 2 * ngf, 3, 2, norm_impl)
        self.down2 = _conv_norm_relu(2 * ngf, 4 * ngf, 3, 2, norm_impl)
        self.blocks = nn.Sequential(*[ResnetBlock(4 * ngf, norm_impl, use_bias=False) for _ in range(n_blocks)])
        self.style = StyleMLP(4 * ngf, stage_channels=(2 * ngf, ngf))
        self.up1 = UpStage(4 * ngf, 2 * ngf, 2 * ngf, norm_impl)
        self.up2 = UpStage(2 * ngf, ngf, ngf, norm_impl)
        self.head = nn.Sequential(nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7), nn.Tanh())
        set_save_memory(self, save_memory, grad_checkpoint)

    def forward(self, x):
        self._check_input_size(x)
        full = self.stem(x)
        half = self.down1(full)
        bottleneck = self.run(self.blocks, self.down2(half))
        (gamma1, beta1), (gamma2, beta2) = self.style(bottleneck)
        y = self.up1(bottleneck, half, gamma1, beta1)
        y = self.up2(y, full, gamma2, beta2)
        return self.head(y)

    def _check_input_size(self, x):
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % 4 or w % 4 or h < MIN_SIZE or w < MIN_SIZE:
            raise ValueError(f"{type(self).__name__}: input height and width must be divisible by 4 and "
                             f"at least {MIN_SIZE}, got {h}x{w}")
