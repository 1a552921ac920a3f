"""U-GAT-IT's CAM heatmaps as colour images for the sample grids."""
import torch
import torch.nn.functional as F


def heatmap_image(heatmap, size):
    """U-GAT-IT's cam(): each map scaled to [0, 1] by its own min and max, resized (bilinear)
    to the image size and coloured with the jet colour map; returned in [-1, 1] like images."""
    from matplotlib import colormaps
    low = heatmap.amin(dim=(1, 2, 3), keepdim=True)
    high = heatmap.amax(dim=(1, 2, 3), keepdim=True)
    unit = (heatmap - low) / (high - low).clamp_min(torch.finfo(heatmap.dtype).tiny)
    unit = F.interpolate(unit, size=tuple(size), mode="bilinear", align_corners=False).clamp(0, 1)
    rgb = torch.from_numpy(colormaps["jet"](unit[:, 0].numpy())[..., :3]).permute(0, 3, 1, 2).float()
    return rgb * 2 - 1

