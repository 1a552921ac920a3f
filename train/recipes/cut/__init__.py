"""The CUT and FastCUT recipes (--model cut, --model fastcut) with PatchNCE and the patch sampler."""
from .recipe import CUT, FastCUT

__all__ = ["CUT", "FastCUT"]
