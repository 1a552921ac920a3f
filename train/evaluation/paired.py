"""PSNR / SSIM of both generators on paired test images (the synthetic data's test split), next
to the identity baselines."""
from models.inference import translate_batches

from .image_quality import psnr, ssim, to_unit

PAIRED_METRICS = ("psnr", "ssim")
# (label, key) of each row of the printed table and of index.html, in order
TABLE_ROWS = (("G(A) vs true B", "AtoB"), ("identity A vs B", "identity_AtoB"),
              ("F(B) vs true A", "BtoA"), ("identity B vs A", "identity_BtoA"))


def evaluate_paired(G_A, G_B, test_A, test_B, device, channels_last=False):
    """{f"{metric}_{direction}": mean value}: G(A) vs true B, F(B) vs true A, and the identity
    baselines (A vs B, B vs A)."""
    fake_B = translate_batches(G_A, test_A, device, channels_last=channels_last)
    fake_A = translate_batches(G_B, test_B, device, channels_last=channels_last)
    ua, ub, ufa, ufb = to_unit(test_A), to_unit(test_B), to_unit(fake_A), to_unit(fake_B)
    compared = {"AtoB": (ufb, ub), "BtoA": (ufa, ua), "identity_AtoB": (ua, ub), "identity_BtoA": (ub, ua)}
    metrics = {"psnr": psnr, "ssim": ssim}
    return {f"{name}_{direction}": metrics[name](*pair).mean().item()
            for direction, pair in compared.items() for name in PAIRED_METRICS}
