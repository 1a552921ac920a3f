"""U-GAT-IT (Kim et al. 2020), as its authors train it (znxlwm/UGATIT-pytorch, UGATIT.train).

Networks: two U-GAT-IT generators (genA2B "AtoB", genB2A "BtoA"; --light for the light one)
and four spectral-norm discriminators with CAM heads: global (--n_layers_global, 7) and local
(--n_layers_local, 5) for each domain ("GA", "LA" judge A; "GB", "LB" judge B), all with
PyTorch's default initialisation, as U-GAT-IT.

Per iteration (.losses has the formulas):
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
import sys

import models
from models.errors import CheckpointError, MissingFileError
from models.registry import generator_config, unwrap
from models.ugatit_discriminator import MIN_N_LAYERS, deepest_fitting, min_input_size
from models.ugatit_params import OUR_NAMES, load_ugatit_params_into

from ...options.checks import OptionError
from ..base import LossPanel, Recipe
from .heatmap import heatmap_image
from .losses import DISCRIMINATORS, LossWeights, discriminator_losses, generator_losses, translate_all
from .optim import BETA2, clip_rho_, make_step_scheduler

GENERATOR_ARCHS = ("ugatit", "ugatit_light")
LOSS_WEIGHT_OPTIONS = ("adv_weight", "cycle_weight", "identity_weight", "cam_weight", "weight_decay")
DEPTH_OPTIONS = ("n_layers_global", "n_layers_local")


class UGATIT(Recipe):
    name = "ugatit"
    loss_names = (
        *(f"D_ad{kind}_loss_{d}" for d in DISCRIMINATORS for kind in ("", "_cam")),
        "D_loss_A", "D_loss_B", "Discriminator_loss",
        *(f"G_ad{kind}_loss_{d}" for d in DISCRIMINATORS for kind in ("", "_cam")),
        *(f"G_{term}_loss_{x}" for x in "AB" for term in ("recon", "identity", "cam")),
        "G_loss_A", "G_loss_B", "Generator_loss",
    )
    # The weighted totals (the generators' ~1000x the terms with --cam_weight 1000) get panels of
    # their own, so they do not flatten the terms they sum.
    loss_panels = (
        LossPanel("discriminators: patch and CAM terms", tuple(n for n in loss_names if n.startswith("D_ad"))),
        LossPanel("generators: adversarial terms", tuple(n for n in loss_names if n.startswith("G_ad"))),
        LossPanel("generators: cycle, identity and CAM terms",
                  tuple(n for n in loss_names if n.startswith(("G_recon", "G_identity", "G_cam")))),
        LossPanel("discriminators: weighted totals", ("D_loss_A", "D_loss_B", "Discriminator_loss")),
        LossPanel("generators: weighted totals", ("G_loss_A", "G_loss_B", "Generator_loss")),
    )
    progress_losses = ("Discriminator_loss", "Generator_loss")
    # U-GAT-IT's defaults: --lr 0.0001, --ch 64, --n_res 4, --img_size 256 (loaded at 256 + 30).
    option_defaults = {"netG": "ugatit", "lr": 1e-4, "ngf": 64, "ndf": 64, "n_blocks": 4,
                       "crop_size": 256, "load_size": 286}
    # --demo (32 px): the light generator, and the deepest discriminators that fit 32 px.
    demo_defaults = {"light": True, "ngf": 32, "ndf": 16, "n_blocks": 2, "n_layers_global": 5, "n_layers_local": 3}
    sample_rows_per_domain = 7
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

    @classmethod
    def derive_options(cls, opt):
        if opt.light and opt.netG in GENERATOR_ARCHS:
            opt.netG = "ugatit_light"
        cls.fit_discriminator_depths(opt)

    @staticmethod
    def fit_discriminator_depths(opt):
        """A discriminator depth not given on the command line that is too deep for --crop_size
        becomes the deepest that fits, said in one line (a given one is refused instead)."""
        fitting = deepest_fitting(opt.crop_size)
        explicit = set(getattr(opt, "_explicit", ()))
        lowered = [o for o in DEPTH_OPTIONS if o not in explicit and fitting is not None and getattr(opt, o) > fitting]
        if not lowered:
            return
        was = ", ".join(f"--{o} {getattr(opt, o)}" for o in lowered)
        for option in lowered:
            setattr(opt, option, fitting)
        now = " ".join(f"--{o} {fitting}" for o in lowered)
        print(f"note: --crop_size {opt.crop_size} is too small for the default {was} (depth n needs "
              f"3 * 2 ** (n - 2) pixels); using {now}, the deepest that fits "
              f"(pass {' / '.join('--' + o for o in lowered)} to choose)", file=sys.stderr)

    @classmethod
    def validate_options(cls, opt):
        if opt.netG not in GENERATOR_ARCHS:
            raise OptionError(f"--model ugatit trains U-GAT-IT's generators: --netG must be ugatit or "
                              f"ugatit_light (or use --light), got {opt.netG}")
        if opt.compile:
            # Each discriminator runs twice before a backward; compiled, the second call's in-place
            # power-iteration update of weight_u invalidates a tensor the first call saved.
            raise OptionError("--compile does not work with --model ugatit: torch.compile mishandles the "
                              "spectral-norm power iteration (torch.nn.utils.spectral_norm) of U-GAT-IT's "
                              "discriminators; train without --compile")
        for option in LOSS_WEIGHT_OPTIONS:
            value = getattr(opt, option)
            if not math.isfinite(value) or value < 0:
                raise OptionError(f"--{option} must be a finite number >= 0, got {value}")
        for option in DEPTH_OPTIONS:
            depth = getattr(opt, option)
            if depth < MIN_N_LAYERS:
                raise OptionError(f"--{option} must be >= {MIN_N_LAYERS}, got {depth}")
            if opt.crop_size < min_input_size(depth):
                fitting = deepest_fitting(opt.crop_size)
                fix = (f"pass --{option} {fitting} (the deepest that fits) or a larger --crop_size" if fitting
                       else f"no depth fits: --crop_size must be >= {min_input_size(MIN_N_LAYERS)}")
                raise OptionError(f"--{option} {depth} needs --crop_size >= {min_input_size(depth)} "
                                  f"(3 * 2 ** (n_layers - 2)), got {opt.crop_size}; {fix}")

    def __init__(self, opt, context):
        super().__init__(opt, context)
        self.weights = LossWeights(opt.adv_weight, opt.cycle_weight, opt.identity_weight, opt.cam_weight)
        config = generator_config(opt.netG, input_nc=opt.input_nc, output_nc=opt.output_nc, ngf=opt.ngf,
                                  n_blocks=opt.n_blocks, img_size=opt.crop_size)
        memory = {"save_memory": opt.save_memory, "grad_checkpoint": opt.grad_checkpoint}
        self.generators = {k: models.build_generator(opt.netG, norm_impl=opt.norm_impl, **config, **memory)
                           for k in ("AtoB", "BtoA")}
        channels = {"A": opt.input_nc, "B": opt.output_nc}
        depth = {"G": opt.n_layers_global, "L": opt.n_layers_local}
        self.discriminators = {d: models.UGATITDiscriminator(channels[d[1]], opt.ndf, depth[d[0]], opt.norm_impl)
                               for d in ("GA", "GB", "LA", "LB")}
        if opt.init_from and not opt.resume:
            self.load_ugatit_params(opt.init_from)
        for net in self.networks().values():
            self.place(net)
        gens = (self.generators["AtoB"], self.generators["BtoA"])
        discs = [self.discriminators[d] for d in ("GA", "GB", "LA", "LB")]  # U-GAT-IT's order
        betas = (opt.beta1, BETA2)
        self.optimizers = {"G": self.adam(gens, opt.lr, betas, opt.weight_decay),
                           "D": self.adam(discs, opt.lr, betas, opt.weight_decay)}
        steps = context.steps_per_epoch
        self.schedulers = {k: make_step_scheduler(o, decay_start=opt.n_epochs * steps,
                                                  decay_steps=opt.n_epochs_decay * steps)
                           for k, o in self.optimizers.items()}
        self.lr_of_last_step = opt.lr

    def ugatit_networks(self):
        """{U-GAT-IT's name (genA2B, ..., disLB): network}."""
        return {name: (self.generators if name.startswith("gen") else self.discriminators)[ours]
                for name, ours in OUR_NAMES.items()}

    def load_ugatit_params(self, path):
        try:
            load_ugatit_params_into(path, self.ugatit_networks())
        except (CheckpointError, MissingFileError) as error:
            raise OptionError(f"--init_from: {error}") from None

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

    # --- samples ----------------------------------------------------------------------------

    def sample_rows(self, real_A, real_B):
        rows = []
        for real, into, back in ((real_A, "AtoB", "BtoA"), (real_B, "BtoA", "AtoB")):
            same, same_heat = self.translate_with_cam(self.generators[back], real)
            fake, fake_heat = self.translate_with_cam(self.generators[into], real)
            cycle, cycle_heat = self.translate_with_cam(self.generators[back], fake)
            rows += [real, same_heat, same, fake_heat, fake, cycle_heat, cycle]
        return rows

    def translate_with_cam(self, net, x):
        """(images, heatmaps as colour images of the same size), in eval mode, on the CPU."""
        image, _, heatmap = self.translate(net, x, call=lambda g, xb: g(xb, with_cam=True))
        return image, heatmap_image(heatmap, x.shape[-2:])
