"""U-GAT-IT's discriminator (znxlwm/UGATIT-pytorch, networks.Discriminator).

Same module tree and state_dict keys as U-GAT-IT (`model.*`, `gap_fc`, `gmp_fc`, `conv1x1`,
`conv`, spectral-norm `weight_orig` / `weight_u` / `weight_v`), so its `disGA` / `disLA` /
`disGB` / `disLB` state_dicts load with strict=True. U-GAT-IT trains a global one
(n_layers=7) and a local one (n_layers=5) per domain. There is no normalization layer here,
so the network is the same for every norm_impl.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .norms import check_norm_impl

GLOBAL_N_LAYERS = 7
LOCAL_N_LAYERS = 5
MIN_N_LAYERS = 3  # the first and the stride-1 convolution, with room for the CAM head


def min_input_size(n_layers: int) -> int:
    """Smallest input side: the n_layers - 2 halvings must leave 3 pixels, as the stride-1
    convolution (pad 1, kernel 4) takes one off and the last one's reflection pad needs 2."""
    return 3 * 2 ** (n_layers - 2)


def deepest_fitting(size: int) -> int | None:
    """The largest n_layers whose min_input_size is at most `size`; None when even
    MIN_N_LAYERS needs more."""
    if size < min_input_size(MIN_N_LAYERS):
        return None
    n_layers = MIN_N_LAYERS
    while min_input_size(n_layers + 1) <= size:
        n_layers += 1
    return n_layers


def _down(in_channels: int, out_channels: int, stride: int) -> list:
    return [nn.ReflectionPad2d(1),
            spectral_norm(nn.Conv2d(in_channels, out_channels, kernel_size=4, stride=stride, padding=0, bias=True)),
            nn.LeakyReLU(0.2, True)]


class UGATITDiscriminator(nn.Module):
    """forward(x) returns (logit map (N, 1, h, w), cam_logit (N, 2), heatmap (N, 1, h', w')),
    as U-GAT-IT's forward does.

    Inputs must be at least min_input_size(n_layers) pixels on each side (96 for the global
    n_layers=7, 24 for the local n_layers=5); U-GAT-IT trains on 256 x 256 images.
    """

    def __init__(self, input_nc: int = 3, ndf: int = 64, n_layers: int = LOCAL_N_LAYERS, norm_impl: str = "fused"):
        super().__init__()
        check_norm_impl(norm_impl)
        if n_layers < MIN_N_LAYERS:
            raise ValueError(f"n_layers must be >= {MIN_N_LAYERS}, got {n_layers}")
        self.config = dict(input_nc=input_nc, ndf=ndf, n_layers=n_layers)

        model = _down(input_nc, ndf, stride=2)
        for i in range(1, n_layers - 2):
            mult = 2 ** (i - 1)
            model += _down(ndf * mult, ndf * mult * 2, stride=2)
        mult = 2 ** (n_layers - 2 - 1)
        model += _down(ndf * mult, ndf * mult * 2, stride=1)

        # Class activation map
        dim = ndf * 2 ** (n_layers - 2)
        self.gap_fc = spectral_norm(nn.Linear(dim, 1, bias=False))
        self.gmp_fc = spectral_norm(nn.Linear(dim, 1, bias=False))
        self.conv1x1 = nn.Conv2d(dim * 2, dim, kernel_size=1, stride=1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2, True)

        self.pad = nn.ReflectionPad2d(1)
        self.conv = spectral_norm(nn.Conv2d(dim, 1, kernel_size=4, stride=1, padding=0, bias=False))

        # Assigned last, as in U-GAT-IT, so the state_dict keys come in the same order.
        self.model = nn.Sequential(*model)

    def forward(self, x):
        self._check_input_size(x)
        x = self.model(x)

        gap_logit = self.gap_fc(F.adaptive_avg_pool2d(x, 1).flatten(1))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))
        # U-GAT-IT weights the feature maps with list(fc.parameters())[0], which under spectral
        # norm is the raw `weight_orig`, not the normalised weight the logits use.
        gap = x * self.gap_fc.weight_orig[:, :, None, None]
        gmp = x * self.gmp_fc.weight_orig[:, :, None, None]
        cam_logit = torch.cat([gap_logit, gmp_logit], 1)
        x = self.leaky_relu(self.conv1x1(torch.cat([gap, gmp], 1)))
        heatmap = torch.sum(x, dim=1, keepdim=True)

        out = self.conv(self.pad(x))
        return out, cam_logit, heatmap

    def _check_input_size(self, x):
        if x.dim() != 4:
            raise ValueError(f"{type(self).__name__}: expected input of shape (N, C, H, W), got {tuple(x.shape)}")
        smallest = min_input_size(self.config["n_layers"])
        if min(x.shape[-2:]) < smallest:
            raise ValueError(f"{type(self).__name__} (n_layers={self.config['n_layers']}) needs inputs of at "
                             f"least {smallest}x{smallest}, got {x.shape[-2]}x{x.shape[-1]}")
