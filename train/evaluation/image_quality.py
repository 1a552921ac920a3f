"""Image-quality metrics on images in [0, 1] (N, C, H, W): PSNR and SSIM (Wang et al. 2004)."""
import torch
import torch.nn.functional as F


def psnr(x, y, data_range=1.0):
    """Per-image PSNR in dB (tensor of shape (N,)); inf where the images are equal."""
    mse = ((x.double() - y.double()) ** 2).flatten(1).mean(1)
    return 10.0 * torch.log10(data_range ** 2 / mse)


def _gaussian_window(size, sigma, channels, dtype, device):
    coords = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2.0
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    w = torch.outer(g, g)
    return w.expand(channels, 1, size, size).contiguous()


def ssim(x, y, data_range=1.0, window_size=11, sigma=1.5, k1=0.01, k2=0.03):
    """Per-image mean SSIM (tensor (N,)): 11x11 Gaussian window (sigma 1.5), 'valid' positions
    only, computed per channel and averaged, constants C1=(k1 L)^2, C2=(k2 L)^2. Images smaller
    than the window use a window as large as the image."""
    x, y = x.double(), y.double()
    c = x.shape[1]
    size = min(window_size, x.shape[2], x.shape[3])
    w = _gaussian_window(size, sigma, c, x.dtype, x.device)
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2

    def filt(t):
        return F.conv2d(t, w, groups=c)

    mu_x, mu_y = filt(x), filt(y)
    sxx = filt(x * x) - mu_x ** 2
    syy = filt(y * y) - mu_y ** 2
    sxy = filt(x * y) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def to_unit(t):
    """[-1, 1] network range -> [0, 1], clamped."""
    return ((t.float() + 1.0) / 2.0).clamp(0.0, 1.0)
