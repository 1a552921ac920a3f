"""Fixed images watched during training: sample grids and, on the synthetic data, PSNR / SSIM
against the paired ground truth."""
import torch

from . import data, synthetic
from .metrics import psnr, ssim, to_unit

SAMPLE_COLUMNS = 8


def fixed_images(opt, n):
    """n fixed (A, B) images: the paired synthetic test split, or the dataroot's test images."""
    if opt.dataset == "synthetic":
        return synthetic.paired_test_set(n, opt.crop_size, opt.synthetic_seed)
    return data.load_test_images(opt.dataroot, n, opt.preprocess, opt.load_size, opt.crop_size)


@torch.no_grad()
def translate_batches(net, x, device, batch=16, channels_last=False):
    """net(x) in eval mode, `batch` images at a time on `device`; a float32 CPU tensor."""
    was_training = net.training
    net.eval()
    outs = []
    for i in range(0, len(x), batch):
        xb = x[i:i + batch].to(device)
        if channels_last:
            xb = xb.contiguous(memory_format=torch.channels_last)
        outs.append(net(xb).float().cpu())
    net.train(was_training)
    return torch.cat(outs)


def evaluate_paired(G_A, G_B, test_A, test_B, device, channels_last=False):
    """PSNR / SSIM of G(A) vs true B and F(B) vs true A, and the identity baselines."""
    fake_B = translate_batches(G_A, test_A, device, channels_last=channels_last)
    fake_A = translate_batches(G_B, test_B, device, channels_last=channels_last)
    ua, ub, ufa, ufb = to_unit(test_A), to_unit(test_B), to_unit(fake_A), to_unit(fake_B)
    return {
        "psnr_AtoB": psnr(ufb, ub).mean().item(), "ssim_AtoB": ssim(ufb, ub).mean().item(),
        "psnr_BtoA": psnr(ufa, ua).mean().item(), "ssim_BtoA": ssim(ufa, ua).mean().item(),
        "psnr_identity_AtoB": psnr(ua, ub).mean().item(), "ssim_identity_AtoB": ssim(ua, ub).mean().item(),
        "psnr_identity_BtoA": psnr(ub, ua).mean().item(), "ssim_identity_BtoA": ssim(ub, ua).mean().item(),
    }
