"""CUT and FastCUT (Park, Efros, Zhang, Zhu, ECCV 2020), as taesungp/contrastive-unpaired-translation
trains them (CUTModel.optimize_parameters).

Networks: one generator G ("AtoB": CycleGAN's ResNet with CUT's anti-aliased down- and
up-sampling, models.ResnetGenerator(antialias=...)), one PatchGAN discriminator ("D",
anti-aliased likewise) and the patch sampler netF, whose MLPs are built on the first batch.

Per iteration (the formulas are in .losses):
    forward   fake = G(real) with real = A, or [A, B] with --nce_idt (fake_B, idt_B), flipped
              horizontally on a coin toss with --flip_equivariance; the same pass returns the
              features of real at --nce_layers (the NCE keys)
    D step    (GAN(D(fake_B), fake) + GAN(D(B), real)) / 2
    G step    lambda_GAN * GAN(D(fake_B), real), D after its step, plus NCE: PatchNCE of the
              features of fake_B against those of A; with --nce_idt the mean of that and NCE_Y,
              the same for idt_B against B
CUT runs the generator's encoder four more times for the NCE terms (on fake_B, A, idt_B, B).
Here the keys come out of the forward pass, and fake_B and idt_B go through the encoder
together: one encoder pass instead of four. CUT detaches the keys, so the gradients are CUT's;
only a flipped batch needs the keys of the unflipped images, one encoder pass without gradients.

Optimisation: Adam (--lr, betas (--beta1, 0.999)) for G, D and netF (created with netF's MLPs),
each on CycleGAN's linear lr policy per epoch, as CUT.
"""
import random
import re

import torch

import models
from models.registry import generator_config, unwrap
from models.weight_init import init_weights_

from ...options.checks import OptionError
from ..base import Recipe
from ..cycle_gan.losses import GANLoss
from ..cycle_gan.schedule import make_scheduler
from . import options as cut_options
from .losses import nce_over_layers
from .patch_sampler import PatchSampler

BETA2 = 0.999  # CUT's --beta2
RESNET_ARCH = re.compile(r"resnet_\d+blocks")


def build_networks(opt, norm_impl=None):
    """(G, D) as CUT's define_G / define_D build them for these options, not initialised."""
    config = generator_config(opt.netG, input_nc=opt.input_nc, output_nc=opt.output_nc, ngf=opt.ngf)
    G = models.build_generator(opt.netG, norm_impl=norm_impl or opt.norm_impl, antialias=not opt.no_antialias,
                               antialias_up=not opt.no_antialias_up, save_memory=opt.save_memory,
                               grad_checkpoint=opt.grad_checkpoint, **config)
    D = models.NLayerDiscriminator(opt.output_nc, opt.ndf, opt.n_layers_D, norm_impl=norm_impl or opt.norm_impl,
                                   save_memory=opt.save_memory, antialias=not opt.no_antialias)
    return G, D


def generator_layers(opt) -> int:
    """How many layers --nce_layers can index: the generator's Sequential (built on the meta device)."""
    with torch.device("meta"):
        G, _ = build_networks(opt, norm_impl="torch")
    return len(G.model)


class CUT(Recipe):
    name = "cut"
    loss_names = ("G_GAN", "D_real", "D_fake", "G", "NCE", "NCE_Y")
    # CUT's defaults where ours differ (--CUT_mode CUT: NCE identity on, lambda_NCE 1).
    option_defaults = {"netG": "resnet_9blocks", "n_epochs": 200, "n_epochs_decay": 200, "nce_idt": True,
                       "lambda_NCE": 1.0}
    # --nce_layers 0,4,8,12,16 reaches the fifth residual block, so the demo keeps 6.
    demo_defaults = {"netG": "resnet_6blocks"}
    sample_rows_per_domain = 2
    sample_caption = "real A, G(A), real B, G(B) (the NCE identity, trained towards B with --nce_idt)"

    @classmethod
    def add_options(cls, group):
        cut_options.add_options(group)

    @classmethod
    def validate_options(cls, opt):
        if not isinstance(opt.netG, str) or not RESNET_ARCH.fullmatch(opt.netG):
            raise OptionError(f"--model {cls.name} trains CUT's ResNet generator: --netG must be resnet_9blocks or "
                              f"resnet_6blocks, got {opt.netG}")
        cut_options.validate(opt, generator_layers(opt))

    def __init__(self, opt, context):
        super().__init__(opt, context)
        self.nce_layers = cut_options.nce_layers(opt) if opt.lambda_NCE > 0 else ()
        G, D = build_networks(opt)
        for net in (G, D):
            init_weights_(net, opt.init_type, opt.init_gain)
            self.place(net)
        self.generators, self.discriminators = {"AtoB": G}, {"D": D}
        self.betas = (opt.beta1, BETA2)
        self.optimizers = {"G": self.adam([G], opt.lr, self.betas), "D": self.adam([D], opt.lr, self.betas)}
        self.schedulers = {k: make_scheduler(o, opt.n_epochs, opt.n_epochs_decay) for k, o in self.optimizers.items()}
        self.patch_sampler = PatchSampler(use_mlp=opt.netF == "mlp_sample", nc=opt.netF_nc)
        self.netF = self.patch_sampler  # wrapped (compile, DDP) once it has parameters
        self.wrappers = []
        self.gan_loss = GANLoss(opt.gan_mode).to(context.device)
        # The same coin on every process: a DDP step flips its whole batch, as one process would.
        self.flips = random.Random(opt.seed)

    # --- one iteration ----------------------------------------------------------------------

    def train_step(self, real_A, real_B):
        flipped = self.opt.flip_equivariance and self.flips.random() < 0.5
        with self.precision.autocast():
            fake_B, idt_B, keys = self.forward(real_A, real_B, flipped)
        losses = self.discriminator_step(fake_B.detach(), real_B)
        losses.update(self.generator_step(real_A, real_B, fake_B, idt_B, keys, flipped))
        self.precision.update()
        return {k: losses[k].detach() for k in self.loss_names}

    def forward(self, real_A, real_B, flipped):
        """(fake_B, idt_B, features of the real images at nce_layers or None)."""
        real = torch.cat([real_A, real_B]) if self.opt.nce_idt else real_A
        if flipped:
            real = torch.flip(real, [3])
        G, n = self.generators["AtoB"], len(real_A)
        if not self.nce_layers:
            fake = G(real)
            return fake[:n], fake[n:], None
        fake, features = G(real, layers=self.nce_layers)
        return fake[:n], fake[n:], None if flipped else features  # flipped features are not the keys

    def discriminator_step(self, fake_B, real_B):
        precision, optimizer, n = self.precision, self.optimizers["D"], len(fake_B)
        optimizer.zero_grad(set_to_none=True)
        with precision.autocast():
            prediction = self.discriminators["D"](torch.cat([fake_B, real_B]))
            losses = {"D_fake": self.gan_loss(prediction[:n], False), "D_real": self.gan_loss(prediction[n:], True)}
            loss_D = (losses["D_fake"] + losses["D_real"]) * 0.5
        precision.backward(loss_D)
        precision.step(optimizer)
        return losses

    def generator_step(self, real_A, real_B, fake_B, idt_B, keys, flipped):
        opt, precision = self.opt, self.precision
        self.set_discriminators_trainable(False)  # no gradient reaches D here
        with precision.autocast():
            losses = {"G_GAN": self.adversarial_loss(fake_B)}
            losses.update(self.nce_losses(real_A, real_B, fake_B, idt_B, keys, flipped))
            identity = opt.nce_idt and bool(self.nce_layers)
            losses["G"] = losses["G_GAN"] + ((losses["NCE"] + losses["NCE_Y"]) * 0.5 if identity else losses["NCE"])
        optimizers = [self.optimizers[k] for k in ("G", "F") if k in self.optimizers]
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        precision.backward(losses["G"])
        for optimizer in optimizers:
            precision.step(optimizer)
        self.set_discriminators_trainable(True)
        return losses

    def adversarial_loss(self, fake_B):
        if self.opt.lambda_GAN == 0:
            return torch.zeros((), device=self.device)
        # D outside DDP: its parameters take no gradient here, DDP would wait for them.
        return self.gan_loss(unwrap(self.discriminators["D"], parallel_only=True)(fake_B), True) * self.opt.lambda_GAN

    def nce_losses(self, real_A, real_B, fake_B, idt_B, keys, flipped):
        zero = torch.zeros((), device=self.device)
        if not self.nce_layers:
            return {"NCE": zero, "NCE_Y": zero}
        G, n, identity = self.generators["AtoB"], len(real_A), self.opt.nce_idt
        queries = G(torch.cat([fake_B, idt_B]) if identity else fake_B, layers=self.nce_layers, encode_only=True)
        if flipped:
            queries = [torch.flip(q, [3]) for q in queries]
            with torch.no_grad():  # the keys carry no gradient (CUT detaches them)
                sources = torch.cat([real_A, real_B]) if identity else real_A
                keys = unwrap(G, parallel_only=True)(sources, layers=self.nce_layers, encode_only=True)
        self.build_patch_sampler(keys)
        losses = {"NCE": self.patch_nce([k[:n] for k in keys], [q[:n] for q in queries])}
        losses["NCE_Y"] = self.patch_nce([k[n:] for k in keys], [q[n:] for q in queries]) if identity else zero
        return losses

    def patch_nce(self, keys, queries):
        """CUT's calculate_NCE_loss: patches drawn on the keys, the same positions of the queries."""
        opt = self.opt
        with torch.no_grad():
            key_samples, patch_ids = unwrap(self.netF, parallel_only=True)(keys, opt.num_patches)
        query_samples, _ = self.netF(queries, opt.num_patches, patch_ids)
        return nce_over_layers(query_samples, key_samples, images=len(keys[0]), temperature=opt.nce_T,
                               negatives_from_batch=opt.nce_includes_all_negatives_from_minibatch,
                               weight=opt.lambda_NCE)

    # --- netF: built on the first batch -------------------------------------------------------

    def build_patch_sampler(self, features):
        """CUT's data_dependent_initialize: netF's MLPs sized by the features' channels,
        initialised like the other networks, and in the run from here on."""
        if self.patch_sampler.built:
            return
        self.patch_sampler.build([f.shape[1] for f in features])
        init_weights_(self.patch_sampler, self.opt.init_type, self.opt.init_gain)
        self.adopt_patch_sampler()

    def adopt_patch_sampler(self):
        """netF on the device, with its Adam and lr schedule, wrapped as the other networks were."""
        net = self.place(self.patch_sampler)
        self.optimizers["F"] = self.adam([net], self.opt.lr, self.betas)
        self.schedulers["F"] = make_scheduler(self.optimizers["F"], self.opt.n_epochs, self.opt.n_epochs_decay)
        for wrap in self.wrappers:
            net = wrap(net)
        self.netF = net

    def networks(self):
        """G and D, and netF once it has parameters."""
        return {**super().networks(), **({"F": self.netF} if "F" in self.optimizers else {})}

    def wrap_networks(self, fn):
        super().wrap_networks(fn)
        self.wrappers.append(fn)
        if "F" in self.optimizers:
            self.netF = fn(self.netF)

    # --- samples and checkpoints ----------------------------------------------------------------

    def sample_rows(self, real_A, real_B):
        G = self.generators["AtoB"]
        return [real_A, self.translate(G, real_A), real_B, self.translate(G, real_B)]

    def checkpoint_extras(self):
        if "F" not in self.optimizers:
            return {}
        return {"netF": {k: v.detach().cpu() for k, v in self.patch_sampler.state_dict().items()}}

    def load_checkpoint_state(self, state):
        saved = state.extras.get("netF")
        if saved is not None:  # netF first: its optimiser and scheduler are restored with the others
            self.patch_sampler.build_from_state_dict(saved)
            self.patch_sampler.load_state_dict(saved)
            self.adopt_patch_sampler()
        super().load_checkpoint_state(state)

    def rank_state(self):
        version, internal, gauss = self.flips.getstate()
        return {"flips": [version, list(internal), gauss]}

    def load_rank_state(self, state, device):
        version, internal, gauss = state["flips"]
        self.flips.setstate((version, tuple(internal), gauss))


class FastCUT(CUT):
    """CUT's --CUT_mode FastCUT: no NCE identity, lambda_NCE 10, flip equivariance, 150 + 50 epochs."""

    name = "fastcut"
    options_of = "cut"
    option_defaults = {**CUT.option_defaults, "nce_idt": False, "lambda_NCE": 10.0, "flip_equivariance": True,
                       "n_epochs": 150, "n_epochs_decay": 50}
