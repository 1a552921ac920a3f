"""Generators and discriminators on cyclegan_ext's fused normalization layers, and loaders for
the checkpoints people already have (official CycleGAN, U-GAT-IT, this project's own).

Every network takes norm_impl="fused" (cyclegan_ext kernels), "eager" (cyclegan_ext.reference,
identical state_dicts) or "free" (normalization replaced by a per-channel affine map, for
benchmarks), and keeps its constructor arguments in `net.config`.
"""
from .adalin_generator import AdaLINGenerator
from .errors import CheckpointError, UserError
from .inference import translate_batches
from .weight_init import init_normal_
from .loading import load_generator, load_generators
from .norms import NORM_IMPLS
from .patchgan import NLayerDiscriminator
from .registry import GENERATOR_ARCHS, arch_of, build_generator, generator_from_payload, generator_payload
from .resnet import ResnetGenerator
from .ugatit import UGATITGenerator
from .ugatit_discriminator import UGATITDiscriminator
from .ugatit_params import load_ugatit_params
from .weights import load_weights

__all__ = [
    "AdaLINGenerator", "ResnetGenerator", "UGATITGenerator", "NLayerDiscriminator", "UGATITDiscriminator",
    "arch_of", "build_generator", "generator_payload", "generator_from_payload", "load_generator", "load_generators",
    "load_ugatit_params",
    "load_weights", "init_normal_", "translate_batches", "CheckpointError", "UserError", "GENERATOR_ARCHS", "NORM_IMPLS",
]
