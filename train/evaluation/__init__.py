"""How good a translator is: PSNR / SSIM against paired ground truth (the synthetic data), and
FID / KID against a test split (Inception features), during training and by `python -m train.evaluate`."""
