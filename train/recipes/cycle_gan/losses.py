"""CycleGAN losses, as the official code defines them."""
import torch
from torch import nn


class GANLoss(nn.Module):
    """Adversarial loss against a constant target: MSE for 'lsgan', BCE-with-logits for 'vanilla'.

    The discriminator's output (any shape: a PatchGAN map) is compared with a tensor of the
    same shape full of 1.0 (real) or 0.0 (fake); the mean over all elements is returned.
    """

    def __init__(self, gan_mode="lsgan", target_real_label=1.0, target_fake_label=0.0):
        super().__init__()
        if gan_mode not in ("lsgan", "vanilla"):
            raise ValueError(f"gan_mode must be 'lsgan' or 'vanilla', got {gan_mode!r}")
        self.gan_mode = gan_mode
        self.register_buffer("real_label", torch.tensor(target_real_label))
        self.register_buffer("fake_label", torch.tensor(target_fake_label))
        self.loss = nn.MSELoss() if gan_mode == "lsgan" else nn.BCEWithLogitsLoss()

    def forward(self, prediction, target_is_real):
        label = self.real_label if target_is_real else self.fake_label
        target = label.to(device=prediction.device, dtype=prediction.dtype).expand_as(prediction)
        return self.loss(prediction, target)


def cycle_loss(reconstructed, real, lam):
    """L1 cycle-consistency loss weighted by lambda (lambda_A for A->B->A, lambda_B for B->A->B)."""
    return torch.nn.functional.l1_loss(reconstructed, real) * lam


def identity_loss(same, real, lam, lambda_identity):
    """L1 identity loss, scaled as the official code: lambda_identity * lambda.

    For G: A->B fed a real B, `lam` is lambda_B; for F: B->A fed a real A, `lam` is lambda_A.
    """
    return torch.nn.functional.l1_loss(same, real) * lam * lambda_identity
