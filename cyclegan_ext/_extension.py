"""Loads the compiled kernels. There is deliberately no Python fall-back."""
from __future__ import annotations

import torch  # noqa: F401  (the extension links against libtorch, which must be loaded first)

try:
    from . import _C  # noqa: F401  (registers torch.ops.cyclegan_ext.*)
except ImportError as error:  # pragma: no cover - exercised by hand, see README
    raise ImportError(
        "cyclegan_ext's compiled kernels (cyclegan_ext._C) could not be loaded: "
        f"{error}\nBuild them from the repository root with\n"
        "    pip install --no-build-isolation .\n"
        "using the same torch you run with (an extension built against another torch "
        "version does not load)."
    ) from error


def has_cuda_kernels() -> bool:
    """True when the extension was built with its CUDA kernels."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(
        "cyclegan_ext::fused_norm_forward", "CUDA")
