"""Anti-aliased resampling as CUT builds it (taesungp/contrastive-unpaired-translation,
models/networks.py: Downsample, Upsample, get_filter; after Zhang, "Making convolutional networks
shift-invariant again", 2019): a fixed binomial blur on each channel around every stride.

    BlurDownsample(C)  reflect-pad 1, 3x3 blur ([1, 2, 1] outer product / 16), stride 2
    BlurUpsample(C)    replicate-pad 1, 4x4 blur ([1, 3, 3, 1] outer product / 64, times 4)
                       as a stride-2 transposed convolution, cropped to exactly twice the size

The filter is a buffer named `filt` of shape (C, 1, k, k), so a network holding these layers has
CUT's state_dict keys (`model.7.filt`, ...). It has no parameters and is never trained.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

DOWN_FILTER_SIZE = 3
UP_FILTER_SIZE = 4
STRIDE = 2


def binomial_filter(size: int) -> torch.Tensor:
    """The (size, size) outer product of row `size - 1` of Pascal's triangle, summing to 1."""
    if size < 1:
        raise ValueError(f"filter size must be >= 1, got {size}")
    row = torch.tensor([float(math.comb(size - 1, k)) for k in range(size)])
    square = row[:, None] * row[None, :]
    return square / square.sum()


def replicate_pad1(x: torch.Tensor) -> torch.Tensor:
    """F.pad(x, (1, 1, 1, 1), mode="replicate") written with slices: torch.compile's inductor
    (torch 2.14) mis-strides replication_pad2d's backward under it."""
    x = torch.cat([x[:, :, :1], x, x[:, :, -1:]], dim=2)
    return torch.cat([x[:, :, :, :1], x, x[:, :, :, -1:]], dim=3)


class BlurDownsample(nn.Module):
    """Halves height and width (ceil): blur, then keep every second pixel."""

    rerun_cheaply = True  # save_memory may rebuild its output in the backward instead of keeping it

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        kernel = binomial_filter(DOWN_FILTER_SIZE)
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        pad = (DOWN_FILTER_SIZE - 1) // 2
        padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
        return F.conv2d(padded, self.filt, stride=STRIDE, groups=x.shape[1])


class BlurUpsample(nn.Module):
    """Doubles height and width: zero-stuff by the stride, then blur (one transposed convolution)."""

    rerun_cheaply = True

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        kernel = binomial_filter(UP_FILTER_SIZE) * STRIDE ** 2  # keeps the mean of the stuffed image
        self.register_buffer("filt", kernel[None, None].repeat(channels, 1, 1, 1))

    def forward(self, x):
        padded = replicate_pad1(x)
        padding = 1 + (UP_FILTER_SIZE - 1) // 2
        out = F.conv_transpose2d(padded, self.filt, stride=STRIDE, padding=padding, groups=x.shape[1])
        # (H + 2 - 1) * 2 - 2 * padding + 4 = 2H + 2 rows: CUT drops the first and, for an even
        # filter, the last one.
        return out[:, :, 1:-1, 1:-1]
