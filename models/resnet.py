"""CycleGAN's ResNet generator (resnet_9blocks / resnet_6blocks) on our norm layers.

The module tree is the official one (junyanz/pytorch-CycleGAN-and-pix2pix, norm='instance',
padding_type='reflect'), so the state_dict has exactly the official keys and shapes
(`model.1.weight`, `model.10.conv_block.1.weight`, ...) and an official `latest_net_G_A.pth`
loads with strict=True. The ReLU after each instance norm is fused into the norm; its slot
in the Sequential is an nn.Identity so the indices do not move. save_memory=True recomputes
each norm+ReLU(+pad) output in the backward instead of keeping it (models.save_memory).

antialias / antialias_up give CUT's variant (taesungp/contrastive-unpaired-translation,
ResnetGenerator without --no_antialias / --no_antialias_up): each stride-2 convolution becomes a
stride-1 convolution, norm+ReLU and a BlurDownsample; each transposed convolution becomes a
BlurUpsample then a stride-1 convolution, norm+ReLU. The module tree, and so the state_dict keys
(`model.7.filt`, ...), are CUT's. forward(x, layers) also returns the outputs of the listed
Sequential indices (CUT's NCE features) from the same pass.
"""
from __future__ import annotations

from torch import nn

from . import norms
from .antialias import BlurDownsample, BlurUpsample
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
                 use_dropout: bool = False, antialias: bool = False, antialias_up: bool = False,
                 norm_impl: str = "fused", save_memory: bool = False, grad_checkpoint: bool = False):
        super().__init__()
        if n_blocks < 0:
            raise ValueError(f"n_blocks must be >= 0, got {n_blocks}")
        self.config = dict(input_nc=input_nc, output_nc=output_nc, ngf=ngf, n_blocks=n_blocks,
                           use_dropout=use_dropout, antialias=antialias, antialias_up=antialias_up)
        layers = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=True)]
        layers += norms.instance_norm(ngf, norm_impl, activation="relu")
        for i in range(N_DOWNSAMPLING):
            layers += _down(ngf * 2 ** i, norm_impl, antialias)
        bottleneck = ngf * 2 ** N_DOWNSAMPLING
        layers += [ResnetBlock(bottleneck, norm_impl, use_bias=True, use_dropout=use_dropout)
                   for _ in range(n_blocks)]
        for i in range(N_DOWNSAMPLING):
            layers += _up(ngf * 2 ** (N_DOWNSAMPLING - i), norm_impl, antialias_up)
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        set_save_memory(self, save_memory, grad_checkpoint)

    def forward(self, x, layers=(), encode_only=False):
        """The translation; with `layers` (increasing indices into self.model) also the output of
        each listed layer, in order: (translation, features), or the features alone with
        encode_only (the layers after the last listed one do not run)."""
        if not layers:
            return self.run(self.model, x)
        self._check_layers(layers)
        features, start = [], 0
        for end in layers:
            x = self._run_layers(start, end + 1, x)
            features.append(x)
            start = end + 1
        if encode_only:
            return features
        return self._run_layers(start, len(self.model), x), features

    def _run_layers(self, start, stop, x):
        """self.model[start:stop](x). With grad_checkpoint, a residual block right after a feature
        runs unchecked: its input then has two consumers, and checkpointed it would return its
        input's gradient as one sum where autograd adds the skip's and the branch's separately:
        the same gradient, rounded otherwise than the plain network's."""
        first = self.model[start] if start < stop else None
        if start > 0 and self.grad_checkpoint and getattr(first, "checkpoint_segment", False):
            x, start = first(x), start + 1
        return self.run(self.model[start:stop], x) if start < stop else x

    def _check_layers(self, layers):
        indices = list(layers)
        if (any(not isinstance(i, int) or isinstance(i, bool) for i in indices) or indices != sorted(set(indices))
                or indices[0] < 0 or indices[-1] >= len(self.model)):
            raise ValueError(f"layers must be increasing indices in [0, {len(self.model) - 1}] (this generator "
                             f"has {len(self.model)} layers), got {list(layers)}")


def _down(channels, norm_impl, antialias):
    """channels -> 2 * channels at half the size: a stride-2 convolution, or CUT's stride-1
    convolution followed by a blurred subsampling."""
    if not antialias:
        return [nn.Conv2d(channels, channels * 2, kernel_size=3, stride=2, padding=1, bias=True),
                *norms.instance_norm(channels * 2, norm_impl, activation="relu")]
    return [nn.Conv2d(channels, channels * 2, kernel_size=3, stride=1, padding=1, bias=True),
            *norms.instance_norm(channels * 2, norm_impl, activation="relu"), BlurDownsample(channels * 2)]


def _up(channels, norm_impl, antialias_up):
    """channels -> channels / 2 at twice the size: a transposed convolution, or CUT's blurred
    upsampling followed by a stride-1 convolution."""
    if not antialias_up:
        return [nn.ConvTranspose2d(channels, channels // 2, kernel_size=3, stride=2, padding=1, output_padding=1,
                                   bias=True),
                *norms.instance_norm(channels // 2, norm_impl, activation="relu")]
    return [BlurUpsample(channels), nn.Conv2d(channels, channels // 2, kernel_size=3, stride=1, padding=1, bias=True),
            *norms.instance_norm(channels // 2, norm_impl, activation="relu")]
