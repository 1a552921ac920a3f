"""CUT's PatchNCE loss (taesungp/contrastive-unpaired-translation, models/patchnce.py and
CUTModel.calculate_NCE_loss).

For each query patch q (a feature of the translated image) the positive is the key k at the same
position of the source image, the negatives are the keys at the other sampled positions of the
same image (or of every image of the batch, --nce_includes_all_negatives_from_minibatch):

    loss(q) = cross_entropy([q.k+, q.k-_1, ..., q.k-_P] / T, class 0)

with a query's similarity to its own key among the negatives replaced by -10 (that entry is
the positive). The keys are constants: no gradient reaches the source side.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

MASKED_LOGIT = -10.0  # CUT fills the meaningless self-similarity with -10 (exp(-10 / T) ~ 0)


def patch_nce_loss(query, key, images: int, temperature: float, negatives_from_batch: bool):
    """Per-patch loss, shape (N * P,), for query and key of shape (N * P, width), image by image."""
    key = key.detach()
    width = query.shape[1]
    positive = (query * key).sum(dim=1, keepdim=True)
    groups = 1 if negatives_from_batch else images
    q, k = query.reshape(groups, -1, width), key.reshape(groups, -1, width)
    patches = q.shape[1]
    negative = torch.bmm(q, k.transpose(2, 1))
    own = torch.eye(patches, device=query.device, dtype=torch.bool)[None]
    negative = negative.masked_fill(own, MASKED_LOGIT).reshape(-1, patches)
    # under autocast bmm answers in half precision; the logits stay in the queries' dtype
    logits = torch.cat([positive, negative.to(positive.dtype)], dim=1) / temperature
    target = torch.zeros(logits.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target, reduction="none")


def nce_over_layers(queries, keys, images: int, temperature: float, negatives_from_batch: bool, weight: float):
    """CUT's calculate_NCE_loss: the mean over the layers of weight * mean patch loss."""
    total = sum(patch_nce_loss(q, k, images, temperature, negatives_from_batch).mean() * weight
                for q, k in zip(queries, keys))
    return total / len(queries)
