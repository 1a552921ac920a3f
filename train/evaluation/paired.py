"""PSNR / SSIM of both generators (or of the one a one-sided recipe such as CUT trains) on paired
test images (the synthetic data's test split), next to the identity baselines."""
from models.inference import translate_batches

from .image_quality import psnr, ssim, to_unit

PAIRED_METRICS = ("psnr", "ssim")
# (label, key) of each row of the printed table and of index.html, in order
TABLE_ROWS = (("G(A) vs true B", "AtoB"), ("identity A vs B", "identity_AtoB"),
              ("F(B) vs true A", "BtoA"), ("identity B vs A", "identity_BtoA"))


def evaluate_paired(G_A, G_B, test_A, test_B, device, channels_last=False):
    """{f"{metric}_{direction}": mean value}: G(A) vs true B, F(B) vs true A, and the identity
    baselines (A vs B, B vs A); without G_B (None) the A -> B direction only."""
    ua, ub = to_unit(test_A), to_unit(test_B)
    compared = {"AtoB": (to_unit(translate_batches(G_A, test_A, device, channels_last=channels_last)), ub),
                "identity_AtoB": (ua, ub)}
    if G_B is not None:
        compared["BtoA"] = (to_unit(translate_batches(G_B, test_B, device, channels_last=channels_last)), ua)
        compared["identity_BtoA"] = (ub, ua)
    metrics = {"psnr": psnr, "ssim": ssim}
    return {f"{name}_{direction}": metrics[name](*pair).mean().item()
            for direction, pair in compared.items() for name in PAIRED_METRICS}


def measured_rows(evaluation: dict) -> tuple:
    """The (label, key) of TABLE_ROWS that `evaluation` holds."""
    return tuple((label, key) for label, key in TABLE_ROWS if f"psnr_{key}" in evaluation)
