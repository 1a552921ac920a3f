"""U-GAT-IT's generator (znxlwm/UGATIT-pytorch, networks.ResnetGenerator) on our norm layers.

Same module tree, registration order and state_dict keys as U-GAT-IT (`DownBlock.*`,
`gap_fc`, `gmp_fc`, `conv1x1`, `FC.*`, `gamma`, `beta`, `UpBlock1_k.*`, `UpBlock2.*`), so
its `genA2B` / `genB2A` state_dicts load with strict=True. Instance norms (DownBlock),
adaILN (UpBlock1_k) and ILN (UpBlock2) are our layers with the following ReLU fused in;
the ReLU slots hold nn.Identity so indices and keys do not move.

U-GAT-IT's adaILN/ILN are those of its current master (statistics over dims [2, 3] and
[1, 2, 3], unbiased variance); its first commits computed a variance of variances instead.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import norms
from .resnet import ResnetBlock
from .save_memory import SavesMemory, set_save_memory

N_DOWNSAMPLING = 2


class ResnetAdaLINBlock(nn.Module):
    """U-GAT-IT's ResnetAdaILNBlock: x + [pad, conv, adaILN+ReLU, pad, conv, adaILN](x)."""

    def __init__(self, dim: int, norm_impl: str = "fused"):
        super().__init__()
        self.pad1 = nn.ReflectionPad2d(1)
        self.conv1 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=False)
        self.norm1, self.relu1 = norms.adalin(dim, norm_impl, activation="relu")
        self.pad2 = nn.ReflectionPad2d(1)
        self.conv2 = nn.Conv2d(dim, dim, kernel_size=3, stride=1, padding=0, bias=False)
        (self.norm2,) = norms.adalin(dim, norm_impl)

    def forward(self, x, gamma, beta):
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return out + x


class UGATITGenerator(SavesMemory, nn.Module):
    """U-GAT-IT's generator. forward(x) returns the image; forward(x, with_cam=True) (or
    forward_with_cam(x)) returns (image, cam_logit, heatmap) as U-GAT-IT's forward does. The
    keyword goes through DistributedDataParallel's forward, so training uses it.

    light=False feeds the whole bottleneck map to the gamma/beta MLP, so the input must be
    img_size x img_size; light=True pools it first and takes any size divisible by 4.
    """

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 4,
                 img_size: int = 256, light: bool = False, norm_impl: str = "fused", save_memory: bool = False,
                 grad_checkpoint: bool = False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        if not light and img_size % 4:
            raise ValueError(f"img_size must be divisible by 4, got {img_size}")
        self.config = dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks,
                           img_size=img_size, light=light)
        self.n_blocks = n_blocks
        self.img_size = img_size
        self.light = light
        dim = ngf * 2 ** N_DOWNSAMPLING

        down_block = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, stride=1, padding=0, bias=False)]
        down_block += norms.instance_norm(ngf, norm_impl, activation="relu")
        for i in range(N_DOWNSAMPLING):
            channels = ngf * 2 ** i
            down_block += [nn.ReflectionPad2d(1),
                           nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=0, bias=False)]
            down_block += norms.instance_norm(channels * 2, norm_impl, activation="relu")
        down_block += [ResnetBlock(dim, norm_impl, use_bias=False) for _ in range(n_blocks)]

        # Class activation map
        self.gap_fc = nn.Linear(dim, 1, bias=False)
        self.gmp_fc = nn.Linear(dim, 1, bias=False)
        self.conv1x1 = nn.Conv2d(dim * 2, dim, kernel_size=1, stride=1, bias=True)
        self.relu = nn.ReLU(True)

        # gamma, beta MLP
        mlp_in = dim if light else (img_size // 4) * (img_size // 4) * dim
        fc = [nn.Linear(mlp_in, dim, bias=False), nn.ReLU(True), nn.Linear(dim, dim, bias=False), nn.ReLU(True)]
        self.gamma = nn.Linear(dim, dim, bias=False)
        self.beta = nn.Linear(dim, dim, bias=False)

        for i in range(n_blocks):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaLINBlock(dim, norm_impl))

        up_block = []
        for i in range(N_DOWNSAMPLING):
            channels = ngf * 2 ** (N_DOWNSAMPLING - i)
            up_block += [nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1),
                         nn.Conv2d(channels, channels // 2, kernel_size=3, stride=1, padding=0, bias=False)]
            up_block += norms.lin(channels // 2, norm_impl, activation="relu")
        up_block += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, stride=1, padding=0, bias=False),
                     nn.Tanh()]

        # Assigned last, as in U-GAT-IT, so the state_dict keys come in the same order.
        self.DownBlock = nn.Sequential(*down_block)
        self.FC = nn.Sequential(*fc)
        self.UpBlock2 = nn.Sequential(*up_block)
        set_save_memory(self, save_memory, grad_checkpoint)

    @property
    def fixed_input_size(self):
        """img_size for the full generator (its MLP reads the whole bottleneck map), else None."""
        return None if self.light else self.img_size

    def forward(self, x, with_cam: bool = False):
        image, cam_logit, heatmap = self.forward_with_cam(x)
        return (image, cam_logit, heatmap) if with_cam else image

    def forward_with_cam(self, x):
        """(image, cam_logit (N, 2), heatmap (N, 1, H/4, W/4)), as U-GAT-IT's forward."""
        self._check_input_size(x)
        x = self.run(self.DownBlock, x)

        gap_logit = self.gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gap = x * self.gap_fc.weight[:, :, None, None]
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
        gmp = x * self.gmp_fc.weight[:, :, None, None]
        cam_logit = torch.cat([gap_logit, gmp_logit], 1)
        x = self.relu(self.conv1x1(torch.cat([gap, gmp], 1)))
        heatmap = torch.sum(x, dim=1, keepdim=True)

        # flatten(1) reads in (C, H, W) order whatever the memory format (U-GAT-IT's .view).
        pooled = F.adaptive_avg_pool2d(x, 1).flatten(1) if self.light else x.flatten(1)
        hidden = self.FC(pooled)
        gamma, beta = self.gamma(hidden), self.beta(hidden)

        for i in range(self.n_blocks):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        return self.run(self.UpBlock2, x), cam_logit, heatmap

    def _check_input_size(self, x):
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if not self.light and (h, w) != (self.img_size, self.img_size):
            raise ValueError(f"{type(self).__name__} (light=False, img_size={self.img_size}) expects "
                             f"{self.img_size}x{self.img_size} inputs, got {h}x{w}; use light=True for "
                             "other sizes")
        if h % 4 or w % 4:
            raise ValueError(f"{type(self).__name__}: input height and width must be divisible by 4, got {h}x{w}")
