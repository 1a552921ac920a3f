"""CUT's patch sampler netF (PatchSampleF in taesungp/contrastive-unpaired-translation,
models/networks.py): from each feature map, the same randomly chosen positions for every image of
the batch, each position's feature vector through a 2-layer MLP of its own layer (mlp_sample) or
as it is (sample), then scaled to unit length.

The MLPs' input widths are the feature maps' channel counts, so they are built from the first
features seen (build), as CUT does on its first batch; their attributes are CUT's (`mlp_0`,
`mlp_1`, ...), so the state_dict keys are those of CUT's latest_net_F.pth.
"""
from __future__ import annotations

import torch
from torch import nn

L2_EPS = 1e-7  # CUT's Normalize: x / (||x|| + 1e-7)


def unit_length(x: torch.Tensor) -> torch.Tensor:
    """Rows of x divided by their Euclidean norm (+ L2_EPS), computed in float32 at least: under
    fp16 autocast the sum of squares of a 256-wide feature could overflow."""
    x = x.float() if x.dtype in (torch.float16, torch.bfloat16) else x
    return x / (x.pow(2).sum(1, keepdim=True).sqrt() + L2_EPS)


class PatchSampler(nn.Module):
    def __init__(self, use_mlp: bool = True, nc: int = 256):
        super().__init__()
        self.use_mlp, self.nc = use_mlp, nc
        self.n_mlps = 0

    @property
    def built(self) -> bool:
        """Whether forward can run: the MLPs exist (or none are used)."""
        return not self.use_mlp or self.n_mlps > 0

    def build(self, channels) -> None:
        """One MLP (Linear, ReLU, Linear) per feature map, from its channel count; PyTorch's
        default initialisation (the recipe re-initialises them as CUT does)."""
        if not self.use_mlp:
            return
        if self.built:
            raise RuntimeError("the patch sampler's MLPs are built already")
        for i, width in enumerate(channels):
            setattr(self, f"mlp_{i}", nn.Sequential(nn.Linear(width, self.nc), nn.ReLU(), nn.Linear(self.nc, self.nc)))
        self.n_mlps = len(channels)

    def build_from_state_dict(self, state_dict: dict) -> None:
        """Build the MLPs a saved state_dict holds (mlp_i.0.weight is (nc, channels of layer i))."""
        channels = []
        while f"mlp_{len(channels)}.0.weight" in state_dict:
            channels.append(state_dict[f"mlp_{len(channels)}.0.weight"].shape[1])
        self.build(channels)

    def forward(self, features, num_patches: int, patch_ids=None):
        """(samples, patch_ids): for each (N, C, H, W) feature map, an (N * P, width) tensor of
        unit rows, P = min(num_patches, H * W) positions, image by image; the positions are drawn
        (torch.randperm on the features' device) unless patch_ids gives them."""
        samples, ids = [], []
        for i, feature in enumerate(features):
            rows = feature.permute(0, 2, 3, 1).flatten(1, 2)  # (N, H * W, C)
            if patch_ids is None:
                chosen = torch.randperm(rows.shape[1], device=feature.device)[:min(num_patches, rows.shape[1])]
            else:
                chosen = patch_ids[i]
            x = rows.index_select(1, chosen).flatten(0, 1)
            if self.use_mlp:
                x = getattr(self, f"mlp_{i}")(x)
            samples.append(unit_length(x))
            ids.append(chosen)
        return samples, ids
