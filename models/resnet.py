"""CycleGAN's ResNet generator (resnet_9blocks / resnet_6blocks) on our norm layers.

The module tree is the official one (junyanz/pytorch-CycleGAN-and-pix2pix, norm='instance',
padding_type='reflect'), so the state_dict has exactly the official keys and shapes
(`model.1.weight`, `model.10.conv_block.1.weight`, ...) and an official `latest_net_G_A.pth`
loads with strict=True. The ReLU after each instance norm is fused into the norm; its slot
in the Sequential is an nn.Identity so the indices do not move. save_memory=True recomputes
each norm+ReLU(+pad) output in the backward instead of keeping it (models.save_memory).
"""
from __future__ import annotations

from torch import nn

from . import norms
from .save_memory import SavesMemory, set_save_memory

N_DOWNSAMPLING = 2


class ResnetBlock(SavesMemory, nn.Module):
    checkpoint_segment = True  # grad_checkpoint keeps only its input and reruns it in the backward

    """x + [pad, conv3x3, norm+ReLU, (dropout), pad, conv3x3, norm](x), as in CycleGAN."""

    def __init__(self, dim: int, norm_impl: str = "fused", use_bias: bool = True, use_dropout: bool = False):
        super().__init__()
        layers = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias)]
        layers += norms.instance_norm(dim, norm_impl, activation="relu")
        if use_dropout:
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias)]
        layers += norms.instance_norm(dim, norm_impl)
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.run(self.conv_block, x)


class ResnetGenerator(SavesMemory, nn.Module):
    """CycleGAN's generator: 7x7 stem, two stride-2 downs, n_blocks residual blocks, two
    transposed-convolution ups, 7x7 head and tanh. Input height and width divisible by 4."""

    fixed_input_size = None  # any size divisible by 4

    def __init__(self, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, n_blocks: int = 9,
                 use_dropout: bool = False, norm_impl: str = "fused", save_memory: bool = False,
                 grad_checkpoint: bool = False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.config = dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks,
                           use_dropout=use_dropout)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True)]
        layers += norms.instance_norm(ngf, norm_impl, activation="relu")
        for i in range(N_DOWNSAMPLING):
            channels = ngf * 2 ** i
            layers += [nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=True)]
            layers += norms.instance_norm(channels * 2, norm_impl, activation="relu")
        bottleneck = ngf * 2 ** N_DOWNSAMPLING
        layers += [ResnetBlock(bottleneck, norm_impl, use_bias=True, use_dropout=use_dropout)
                   for _ in range(n_blocks)]
        for i in range(N_DOWNSAMPLING):
            channels = ngf * 2 ** (N_DOWNSAMPLING - i)
            layers += [nn.ConvTranspose2d(channels, channels // 2, kernel_size=3, stride=2, padding=1,
                                          output_padding=1, bias=True)]
            layers += norms.instance_norm(channels // 2, norm_impl, activation="relu")
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        set_save_memory(self, save_memory, grad_checkpoint)

    def forward(self, x):
        return self.run(self.model, x)
