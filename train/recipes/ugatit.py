"""U-GAT-IT (Kim et al. 2020), as its authors train it (znxlwm/UGATIT-pytorch, UGATIT.train).

Networks: two U-GAT-IT generators (genA2B "AtoB", genB2A "BtoA"; --light for the light one)
and four spectral-norm discriminators with CAM heads: global (--n_layers_global, 7) and local
(--n_layers_local, 5) for each domain ("GA", "LA" judge A; "GB", "LB" judge B), all with
PyTorch's default initialisation, as U-GAT-IT.

Per iteration (train.ugatit_losses has the formulas):
    translate   fake_A2B, fake_B2A, their cycles, the identities fake_A2A, fake_B2B, CAM logits
    D step      least squares on patch and CAM logits: real -> 1, fake -> 0 (adv_weight)
    G step      adversarial (adv_weight), cycle L1 (cycle_weight), identity L1 (identity_weight),
                CAM BCE (cam_weight); then every rho of AdaLIN / LIN clipped to [0, 1]
U-GAT-IT translates again for its G step; the generators have not changed since, so the same
outputs are reused (same values, same gradients, two generator passes fewer).

Optimisation: Adam (lr 1e-4, betas (--beta1, 0.999), --weight_decay 1e-4), one for both
generators and one for the four discriminators; the lr stays constant for --n_epochs epochs,
then falls linearly per iteration to 0 at the end of --n_epochs_decay epochs (U-GAT-IT: over
the second half of its iterations).
"""
import math

import torch
import torch.nn.functional as F

import models
from models.errors import CheckpointError
from models.registry import unwrap
from models.ugatit_discriminator import min_input_size
from models.ugatit_params import OUR_NAMES, load_ugatit_params_into

from .. import data
from ..run_folder import RunError
from ..ugatit_losses import DISCRIMINATORS, LossWeights, discriminator_losses, generator_losses, translate_all
from ..ugatit_optim import clip_rho_, make_optimizer, make_step_scheduler
from .base import Recipe

SAMPLE_BATCH = 16


class UGATIT(Recipe):
    name = "ugatit"
    loss_names = (
        *(f"D_ad{kind}_loss_{d}" for d in DISCRIMINATORS for kind in ("", "_cam")),
        "D_loss_A", "D_loss_B", "Discriminator_loss",
        *(f"G_ad{kind}_loss_{d}" for d in DISCRIMINATORS for kind in ("", "_cam")),
        *(f"G_{term}_loss_{x}" for x in "AB" for term in ("recon", "identity", "cam")),
        "G_loss_A", "G_loss_B", "Generator_loss",
    )
    # U-GAT-IT's defaults: --lr 0.0001, --ch 64, --n_res 4, --img_size 256 (loaded at 256 + 30).
    option_defaults = {"netG": "ugatit", "lr": 1e-4, "ngf": 64, "ndf": 64, "n_blocks": 4,
                       "crop_size": 256, "load_size": 286}
    # --demo (32 px): the light generator, and the deepest discriminators that fit 32 px.
    demo_defaults = {"light": True, "ngf": 32, "ndf": 16, "n_blocks": 2, "n_layers_global": 5, "n_layers_local": 3}
    sample_caption = ("for A, then for B: real, CAM heatmap of its identity, identity, CAM heatmap of its "
                      "translation, translation, CAM heatmap of its cycle, cycle (as U-GAT-IT's image rows)")

    @classmethod
    def add_options(cls, group):
        a = group.add_argument
        a("--light", action="store_true", help="U-GAT-IT-light generators (pool before the gamma/beta MLP)")
        a("--n_layers_global", type=int, default=7, help="depth of the global discriminators (U-GAT-IT: 7)")
        a("--n_layers_local", type=int, default=5, help="depth of the local discriminators (U-GAT-IT: 5)")
        a("--adv_weight", type=float, default=1.0, help="adversarial losses (patch and CAM logits)")
        a("--cycle_weight", type=float, default=10.0, help="cycle-consistency L1")
        a("--identity_weight", type=float, default=10.0, help="identity L1")
        a("--cam_weight", type=float, default=1000.0, help="generators' CAM BCE")
        a("--weight_decay", type=float, default=1e-4, help="Adam weight decay (both optimisers)")
        a("--init_from", metavar="PARAMS.pt", default=None,
          help="start from a U-GAT-IT params file (UGATIT-pytorch's *_params_*.pt, or python -m train.export "
               "--ugatit_params); its six networks must match these options exactly")

    def __init__(self, opt, device, precision, rank=0):
        super().__init__(opt, device, precision, rank)
        opt.netG = generator_arch(opt)
        check_options(opt)
        self.weights = LossWeights(opt.adv_weight, opt.cycle_weight, opt.identity_weight, opt.cam_weight)
        config = dict(input_nc=opt.input_nc, output_nc=opt.output_nc, ngf=opt.ngf, n_blocks=opt.n_blocks,
                      img_size=opt.crop_size)
        self.generators = {k: models.build_generator(opt.netG, norm_impl=opt.norm_impl, **config)
                           for k in ("AtoB", "BtoA")}
        channels = {"A": opt.input_nc, "B": opt.output_nc}
        depth = {"G": opt.n_layers_global, "L": opt.n_layers_local}
        self.discriminators = {d: models.UGATITDiscriminator(channels[d[1]], opt.ndf, depth[d[0]], opt.norm_impl)
                               for d in ("GA", "GB", "LA", "LB")}
        if opt.init_from and not opt.resume:
            self.load_ugatit_params(opt.init_from)
        for net in self.networks().values():
            net.to(device)
            if opt.channels_last:
                net.to(memory_format=torch.channels_last)
        gens = (self.generators["AtoB"], self.generators["BtoA"])
        discs = [self.discriminators[d] for d in ("GA", "GB", "LA", "LB")]  # U-GAT-IT's order
        self.optimizers = {"G": make_optimizer(gens, opt.lr, opt.weight_decay, opt.beta1),
                           "D": make_optimizer(discs, opt.lr, opt.weight_decay, opt.beta1)}
        steps_per_epoch = steps_per_epoch_of(opt)
        self.schedulers = {k: make_step_scheduler(o, decay_start=opt.n_epochs * steps_per_epoch,
                                                  decay_steps=opt.n_epochs_decay * steps_per_epoch)
                           for k, o in self.optimizers.items()}
        self.lr_of_last_step = opt.lr

    def ugatit_networks(self):
        """{U-GAT-IT's name (genA2B, ..., disLB): network}."""
        return {name: (self.generators if name.startswith("gen") else self.discriminators)[ours]
                for name, ours in OUR_NAMES.items()}

    def load_ugatit_params(self, path):
        try:
            load_ugatit_params_into(path, self.ugatit_networks())
        except (CheckpointError, FileNotFoundError) as error:
            raise RunError(f"--init_from: {error}") from None

    # --- one iteration ----------------------------------------------------------------------

    def train_step(self, real_A, real_B):
        precision, G = self.precision, self.generators
        with precision.autocast():
            outputs = translate_all(lambda x: G["AtoB"](x, with_cam=True), lambda x: G["BtoA"](x, with_cam=True),
                                    real_A, real_B)
            d_losses = discriminator_losses(self.discriminators, real_A, real_B, outputs["fake_A2B"].detach(),
                                            outputs["fake_B2A"].detach(), self.weights.adv)
        self.optimizers["D"].zero_grad(set_to_none=True)
        precision.backward(d_losses["Discriminator_loss"])
        precision.step(self.optimizers["D"])

        # D outside DDP and frozen: no gradient for it here, and DDP would wait for one.
        judges = {k: unwrap(net, parallel_only=True) for k, net in self.discriminators.items()}
        self.set_discriminators_trainable(False)
        with precision.autocast():
            g_losses = generator_losses(judges, real_A, real_B, outputs, self.weights)
        self.optimizers["G"].zero_grad(set_to_none=True)
        precision.backward(g_losses["Generator_loss"])
        precision.step(self.optimizers["G"])
        self.set_discriminators_trainable(True)
        for net in G.values():
            clip_rho_(unwrap(net))
        precision.update()
        self.lr_of_last_step = self.optimizers["G"].param_groups[0]["lr"]
        for scheduler in self.schedulers.values():
            scheduler.step()
        losses = {**d_losses, **g_losses}
        return {k: losses[k].detach() for k in self.loss_names}

    def end_epoch(self):
        """The learning rates follow the iteration count (stepped in train_step)."""

    def learning_rate(self):
        """The lr the last step ran at (the schedulers have moved on to the next one's)."""
        return self.lr_of_last_step

    def set_discriminators_trainable(self, trainable):
        for net in self.discriminators.values():
            net.requires_grad_(trainable)

    # --- samples ----------------------------------------------------------------------------

    def sample_rows(self, real_A, real_B):
        rows = []
        for real, into, back in ((real_A, "AtoB", "BtoA"), (real_B, "BtoA", "AtoB")):
            same, same_heat = self.translate_with_cam(self.generators[back], real)
            fake, fake_heat = self.translate_with_cam(self.generators[into], real)
            cycle, cycle_heat = self.translate_with_cam(self.generators[back], fake)
            rows += [real, same_heat, same, fake_heat, fake, cycle_heat, cycle]
        return rows

    @torch.no_grad()
    def translate_with_cam(self, net, x):
        """(images, heatmaps as colour images of the same size), in eval mode, on the CPU."""
        net = unwrap(net)
        was_training = net.training
        net.eval()
        images, heatmaps = [], []
        for i in range(0, len(x), SAMPLE_BATCH):
            xb = x[i:i + SAMPLE_BATCH].to(self.device)
            if self.opt.channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last)
            image, _, heatmap = net(xb, with_cam=True)
            images.append(image.float().cpu())
            heatmaps.append(heatmap_image(heatmap.float().cpu(), x.shape[-2:]))
        net.train(was_training)
        return torch.cat(images), torch.cat(heatmaps)


def generator_arch(opt):
    """ugatit or ugatit_light (--light, or --netG ugatit_light); other --netG values are refused."""
    if opt.netG not in ("ugatit", "ugatit_light"):
        raise RunError(f"--model ugatit trains U-GAT-IT's generators: --netG must be ugatit or ugatit_light "
                       f"(or use --light), got {opt.netG}")
    return "ugatit_light" if opt.light or opt.netG == "ugatit_light" else "ugatit"


def check_options(opt):
    if getattr(opt, "compile", False):
        # Each discriminator runs twice before a backward; compiled, the second call's in-place
        # power-iteration update of weight_u invalidates a tensor the first call saved.
        raise RunError("--compile does not work with --model ugatit: torch.compile mishandles the spectral-norm "
                       "power iteration (torch.nn.utils.spectral_norm) of U-GAT-IT's discriminators; "
                       "train without --compile")
    for option in ("adv_weight", "cycle_weight", "identity_weight", "cam_weight", "weight_decay"):
        value = getattr(opt, option)
        if not math.isfinite(value) or value < 0:
            raise RunError(f"--{option} must be a finite number >= 0, got {value}")
    for option in ("n_layers_global", "n_layers_local"):
        depth = getattr(opt, option)
        if depth < 3:
            raise RunError(f"--{option} must be >= 3, got {depth}")
        if opt.crop_size < min_input_size(depth):
            raise RunError(f"--{option} {depth} needs --crop_size >= {min_input_size(depth)} "
                           f"(3 * 2 ** (n_layers - 2)), got {opt.crop_size}")


def steps_per_epoch_of(opt):
    """Iterations per epoch, counted as the run counts them (its dataset and sampler)."""
    from ..run import make_dataset
    dataset = make_dataset(opt)
    world_size = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    return len(data.RunSampler(dataset.len_A, dataset.len_B, opt.batch_size, num_replicas=world_size))


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

