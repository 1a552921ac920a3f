"""U-GAT-IT's losses (znxlwm/UGATIT-pytorch, UGATIT.train), named as its authors name them.

Adversarial terms are least squares (MSE against 1 / 0) on both the discriminators' patch
logits and their CAM logits; the generators' CAM logits say whether the input came from the
source domain (BCE with logits); cycle and identity terms are L1.

    genA2B: A -> B, genB2A: B -> A. disGA / disLA (global / local) judge domain A, disGB / disLB
    domain B; every network returns (output, cam_logit, heatmap).

    D_loss_A = adv * (D_ad_loss_GA + D_ad_cam_loss_GA + D_ad_loss_LA + D_ad_cam_loss_LA)
    G_loss_A = adv * (G_ad_loss_GA + G_ad_cam_loss_GA + G_ad_loss_LA + G_ad_cam_loss_LA)
               + cycle * G_recon_loss_A + identity * G_identity_loss_A + cam * G_cam_loss_A
    and the same with A and B swapped; Discriminator_loss / Generator_loss are the A + B sums.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

DOMAINS = ("A", "B")
SCALES = ("G", "L")  # global (n_layers 7) and local (n_layers 5) discriminators
DISCRIMINATORS = tuple(scale + domain for domain in DOMAINS for scale in SCALES)  # GA, LA, GB, LB


@dataclass(frozen=True)
class LossWeights:
    """U-GAT-IT's defaults: --adv_weight 1, --cycle_weight 10, --identity_weight 10, --cam_weight 1000."""
    adv: float = 1.0
    cycle: float = 10.0
    identity: float = 10.0
    cam: float = 1000.0


def _mse_to(prediction, target: float):
    return F.mse_loss(prediction, torch.full_like(prediction, target))


def _bce_to(logit, target: float):
    return F.binary_cross_entropy_with_logits(logit, torch.full_like(logit, target))


def translate_all(genA2B, genB2A, real_A, real_B) -> dict:
    """Every generator output the losses need; gen*(x) must return (image, cam_logit, heatmap)."""
    out = {}
    out["fake_A2B"], out["fake_A2B_cam_logit"], _ = genA2B(real_A)
    out["fake_B2A"], out["fake_B2A_cam_logit"], _ = genB2A(real_B)
    out["fake_A2B2A"], _, _ = genB2A(out["fake_A2B"])
    out["fake_B2A2B"], _, _ = genA2B(out["fake_B2A"])
    out["fake_A2A"], out["fake_A2A_cam_logit"], _ = genB2A(real_A)
    out["fake_B2B"], out["fake_B2B_cam_logit"], _ = genA2B(real_B)
    return out


def discriminator_losses(discriminators, real_A, real_B, fake_A2B, fake_B2A, adv_weight: float) -> dict:
    """Every named discriminator term and `Discriminator_loss`. discriminators maps "GA", "LA",
    "GB", "LB" to the networks; each judges the real images of its domain and the fakes
    translated into it (pass the fakes detached)."""
    fakes = {"A": fake_B2A, "B": fake_A2B}
    reals = {"A": real_A, "B": real_B}
    losses = {}
    for domain in DOMAINS:
        for scale in SCALES:
            name = scale + domain
            real_logit, real_cam_logit, _ = discriminators[name](reals[domain])
            fake_logit, fake_cam_logit, _ = discriminators[name](fakes[domain])
            losses[f"D_ad_loss_{name}"] = _mse_to(real_logit, 1.0) + _mse_to(fake_logit, 0.0)
            losses[f"D_ad_cam_loss_{name}"] = _mse_to(real_cam_logit, 1.0) + _mse_to(fake_cam_logit, 0.0)
        losses[f"D_loss_{domain}"] = adv_weight * sum(
            losses[f"D_ad{kind}_loss_{scale}{domain}"] for scale in SCALES for kind in ("", "_cam"))
    losses["Discriminator_loss"] = losses["D_loss_A"] + losses["D_loss_B"]
    return losses


def generator_losses(discriminators, real_A, real_B, outputs: dict, weights: LossWeights) -> dict:
    """Every named generator term and `Generator_loss`, from translate_all's outputs."""
    reals = {"A": real_A, "B": real_B}
    other = {"A": "B", "B": "A"}
    losses = {}
    for domain in DOMAINS:
        src = other[domain]
        fake = outputs[f"fake_{src}2{domain}"]  # translated into this domain
        for scale in SCALES:
            name = scale + domain
            fake_logit, fake_cam_logit, _ = discriminators[name](fake)
            losses[f"G_ad_loss_{name}"] = _mse_to(fake_logit, 1.0)
            losses[f"G_ad_cam_loss_{name}"] = _mse_to(fake_cam_logit, 1.0)
        real = reals[domain]
        losses[f"G_recon_loss_{domain}"] = F.l1_loss(outputs[f"fake_{domain}2{src}2{domain}"], real)
        losses[f"G_identity_loss_{domain}"] = F.l1_loss(outputs[f"fake_{domain}2{domain}"], real)
        # The generator into `domain` learns to tell its source domain (1) from its target (0).
        losses[f"G_cam_loss_{domain}"] = (_bce_to(outputs[f"fake_{src}2{domain}_cam_logit"], 1.0)
                                          + _bce_to(outputs[f"fake_{domain}2{domain}_cam_logit"], 0.0))
        adversarial = sum(losses[f"G_ad{kind}_loss_{scale}{domain}"] for scale in SCALES for kind in ("", "_cam"))
        losses[f"G_loss_{domain}"] = (weights.adv * adversarial
                                      + weights.cycle * losses[f"G_recon_loss_{domain}"]
                                      + weights.identity * losses[f"G_identity_loss_{domain}"]
                                      + weights.cam * losses[f"G_cam_loss_{domain}"])
    losses["Generator_loss"] = losses["G_loss_A"] + losses["G_loss_B"]
    return losses
