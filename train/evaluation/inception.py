"""InceptionV3 pool features (2048-d) for FID / KID, from torch-fidelity.

Why torch-fidelity (0.4.x): its FeatureExtractorInceptionV3 is the TensorFlow FID Inception
graph ported to PyTorch (bit-compatible resizing included), and it takes the weights as a
local file (`feature_extractor_weights_path`), so nothing is downloaded at run time. It does
not need torchvision's own Inception weights either. (pytorch-fid and clean-fid fetch their
weights from a URL inside the model constructor; torchmetrics' FID wraps torch-fidelity's
extractor anyway.)

The weights file is torch-fidelity's `weights-inception-2015-12-05-6726825d.pth`. This module
never downloads it: the user passes its path, or it is taken from torch-fidelity's cache
(torch.hub's `checkpoints/` folder) when already there.
"""
from __future__ import annotations

import contextlib
import os
import pickle

import numpy as np
import torch

from models.errors import UserError

from ..cli import MissingDependencyError

FEATURE_NAME = "2048"  # the pool3 features FID and KID are defined on


class InceptionWeightsError(UserError, ValueError):
    """The InceptionV3 weights file is missing or is not torch-fidelity's weights file."""


def _library():
    try:
        from torch_fidelity import feature_extractor_inceptionv3
    except ImportError as error:
        raise MissingDependencyError("FID / KID need the torch-fidelity package: pip install torch-fidelity") from error
    return feature_extractor_inceptionv3


def weights_url() -> str:
    return _library().URL_INCEPTION_V3


def weights_file_name() -> str:
    return os.path.basename(weights_url())


def cached_weights_path() -> str:
    """Where torch-fidelity keeps the file once downloaded (torch.hub's cache; honours TORCH_HOME)."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", weights_file_name())


def resolve_weights(path=None) -> str:
    """The weights file to use: `path` if given, else the cached copy; InceptionWeightsError otherwise."""
    if path is not None:
        if not os.path.isfile(path):
            raise InceptionWeightsError(f"--inception_weights {path}: no such file (expected "
                                        f"{weights_file_name()}, from {weights_url()})")
        return os.fspath(path)
    cached = cached_weights_path()
    if os.path.isfile(cached):
        return cached
    raise InceptionWeightsError(
        f"FID/KID need the InceptionV3 weights file {weights_file_name()}, which is not here and is never "
        f"downloaded by this command: fetch it from {weights_url()} and pass --inception_weights PATH "
        f"(or place it at {cached})")


@contextlib.contextmanager
def _weights_only_loads():
    """torch-fidelity reads the file with torch.load(weights_only=False); this makes torch read it
    with weights_only=True, so a crafted weights file cannot run code."""
    previous = os.environ.get("TORCH_FORCE_WEIGHTS_ONLY_LOAD")
    os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = "1"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"]
        else:
            os.environ["TORCH_FORCE_WEIGHTS_ONLY_LOAD"] = previous


def check_weights_file(path) -> None:
    """InceptionWeightsError unless `path` holds, read weights_only, a state_dict of finite
    tensors: a file of another kind, a crafted pickle or damaged values stop here with one line,
    before torch-fidelity reads it."""
    from models.checkpoint_file import read_checkpoint_file
    from models.errors import CheckpointError
    try:
        state = read_checkpoint_file(path, kind="--inception_weights file")
    except CheckpointError as error:
        raise InceptionWeightsError(str(error)) from None
    tensors = state.values() if isinstance(state, dict) else ()
    if not tensors or not all(isinstance(t, torch.Tensor) for t in tensors):
        raise InceptionWeightsError(f"--inception_weights {path}: not torch-fidelity's InceptionV3 weights file "
                                    f"{weights_file_name()} (expected a state_dict of tensors)")
    damaged = [name for name, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all()]
    if damaged:
        raise InceptionWeightsError(f"--inception_weights {path}: {len(damaged)} tensors hold NaN or inf "
                                    f"(first: {damaged[0]}); the file is damaged, fetch an intact copy of "
                                    f"{weights_file_name()} from {weights_url()}")


class InceptionFeatures:
    """Callable: uint8 images (N, 3, H, W), any H, W -> float64 features (N, 2048)."""

    def __init__(self, weights_path, device="cpu"):
        library = _library()
        check_weights_file(weights_path)
        try:
            with _weights_only_loads():
                self.model = library.FeatureExtractorInceptionV3(
                    "inception-v3-compat", [FEATURE_NAME], feature_extractor_weights_path=weights_path)
        except (pickle.UnpicklingError, RuntimeError, EOFError, KeyError, ValueError, OSError) as error:
            first_line = (str(error).strip().splitlines() or [type(error).__name__])[0]
            raise InceptionWeightsError(
                f"--inception_weights {weights_path}: not torch-fidelity's InceptionV3 weights file "
                f"{weights_file_name()} ({type(error).__name__}: {first_line})") from None
        self.device = torch.device(device)
        self.model.to(self.device)

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> np.ndarray:
        (features,) = self.model(images.to(self.device))
        return features.double().cpu().numpy()
