"""Fused AdaLIN / LIN / instance-norm kernels for CycleGAN-style generators."""
from . import reference
from ._extension import has_cuda_kernels
from .layers import FusedAdaLIN, FusedInstanceNorm2d, FusedLIN
from .ops import fused_norm

__all__ = ["FusedAdaLIN", "FusedLIN", "FusedInstanceNorm2d", "fused_norm", "reference", "has_cuda_kernels"]
__version__ = "0.1.0"
