"""The U-GAT-IT recipe (--model ugatit) with its losses, optimisation and CAM heatmaps."""
from .heatmap import heatmap_image
from .recipe import UGATIT

__all__ = ["UGATIT", "heatmap_image"]
