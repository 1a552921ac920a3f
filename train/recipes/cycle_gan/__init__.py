"""The CycleGAN recipe (--model cycle_gan) with its losses, image pool and lr schedule."""
from .recipe import CycleGAN

__all__ = ["CycleGAN"]
