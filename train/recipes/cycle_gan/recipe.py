"""CycleGAN (Zhu et al. 2017), as the official model trains it.

Per iteration:
    forward:  fake_B = G(A), rec_A = F(fake_B), fake_A = F(B), rec_B = G(fake_A)
    G step:   D_A(fake_B) and D_B(fake_A) judged real (GAN loss), cycle L1 * lambda,
              identity L1 of G(B) vs B and F(A) vs A * lambda_identity * lambda
    D step:   D_A: real B vs a fake B from the pool, D_B: real A vs a fake A from the pool,
              each (real + fake) / 2.
G is netG_A (A->B, "AtoB"), F is netG_B (B->A, "BtoA"); D_A judges domain B, D_B domain A.

The official model calls the generators six times (G(A), F(G(A)), F(B), G(F(B)), G(B), F(A)) and
each discriminator twice in its step. Every layer here works per image (convolutions, instance
norm, padding), so the calls that do not wait for each other's output go together as one batch:
G on [A, B] (fake_B, identity), F on [fake_B, B, A] (cycle, fake_A, identity), then G on
fake_A (cycle), and each D on [real, fake]. The same images, losses and gradients, in three
generator and one discriminator call instead of six and two: half the kernel launches and host
work, which is what a batch-1 step on a GPU waits for. Only the rounding of batched convolution
sums may differ.
"""
import torch

import models
from models.registry import generator_config, unwrap

from ..base import Recipe
from .image_pool import ImagePool
from .losses import GANLoss, cycle_loss, identity_loss
from .schedule import make_scheduler

BETA2 = 0.999  # the official optimisers' second Adam beta


def call_together(net, inputs):
    """[net(x) for x in inputs], as one call on the inputs concatenated along the batch when they
    have one image size (they differ only with --preprocess none)."""
    if len({x.shape[1:] for x in inputs if len(x)}) > 1:
        return [net(x) if len(x) else x for x in inputs]
    out = net(torch.cat(inputs))
    return list(out.split([len(x) for x in inputs]))


class CycleGAN(Recipe):
    name = "cycle_gan"
    loss_names = ("D_A", "G_A", "cycle_A", "idt_A", "D_B", "G_B", "cycle_B", "idt_B")
    sample_caption = "real A, G(A), F(G(A)), real B, F(B), G(F(B))"

    def __init__(self, opt, context):
        super().__init__(opt, context)
        config = generator_config(opt.netG, input_nc=opt.input_nc, output_nc=opt.output_nc, ngf=opt.ngf,
                                  n_blocks=opt.n_blocks, img_size=opt.crop_size)
        memory = {"save_memory": opt.save_memory, "grad_checkpoint": opt.grad_checkpoint}
        G_A, G_B = (models.build_generator(opt.netG, norm_impl=opt.norm_impl, **config, **memory) for _ in range(2))
        D_A, D_B = (models.NLayerDiscriminator(channels, opt.ndf, opt.n_layers_D, norm_impl=opt.norm_impl,
                                               save_memory=opt.save_memory)
                    for channels in (opt.output_nc, opt.input_nc))
        for net in (G_A, G_B, D_A, D_B):
            models.init_normal_(net, opt.init_gain)
            self.place(net)
        self.generators = {"AtoB": G_A, "BtoA": G_B}
        self.discriminators = {"A": D_A, "B": D_B}
        betas = (opt.beta1, BETA2)
        self.optimizers = {"G": self.adam((G_A, G_B), opt.lr, betas), "D": self.adam((D_A, D_B), opt.lr, betas)}
        self.schedulers = {k: make_scheduler(o, opt.n_epochs, opt.n_epochs_decay) for k, o in self.optimizers.items()}
        rank = context.rank
        self.fake_A_pool = ImagePool(opt.pool_size, seed=opt.seed * 1000 + 2 * rank)
        self.fake_B_pool = ImagePool(opt.pool_size, seed=opt.seed * 1000 + 2 * rank + 1)
        self.gan_loss = GANLoss(opt.gan_mode).to(context.device)

    # The names of the official model.
    G_A = property(lambda self: self.generators["AtoB"])
    G_B = property(lambda self: self.generators["BtoA"])
    D_A = property(lambda self: self.discriminators["A"])
    D_B = property(lambda self: self.discriminators["B"])

    def train_step(self, real_A, real_B):
        self.real_A, self.real_B = real_A, real_B
        self.losses = {}
        self.set_discriminators_trainable(False)  # no gradient reaches D in the G step
        with self.precision.autocast():
            self.forward()
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.backward_G()
        self.precision.step(self.optimizers["G"])

        self.set_discriminators_trainable(True)
        self.optimizers["D"].zero_grad(set_to_none=True)
        self.backward_D_A()
        self.backward_D_B()
        self.precision.step(self.optimizers["D"])
        self.precision.update()
        return {k: self.losses[k].detach() for k in self.loss_names}

    def forward(self):
        A, B = self.real_A, self.real_B
        identity = self.opt.lambda_identity > 0  # else idt_A, idt_B are empty and unused
        self.fake_B, self.idt_A = call_together(self.G_A, [A, B] if identity else [A, A[:0]])
        self.rec_A, self.fake_A, self.idt_B = call_together(self.G_B, [self.fake_B, B, A] if identity
                                                            else [self.fake_B, B, B[:0]])
        self.rec_B = self.G_A(self.fake_A)

    def backward_G(self):
        opt, losses = self.opt, self.losses
        with self.precision.autocast():
            if opt.lambda_identity > 0:
                losses["idt_A"] = identity_loss(self.idt_A, self.real_B, opt.lambda_B, opt.lambda_identity)
                losses["idt_B"] = identity_loss(self.idt_B, self.real_A, opt.lambda_A, opt.lambda_identity)
            else:
                losses["idt_A"] = losses["idt_B"] = torch.zeros((), device=self.device)
            # D outside DDP: its parameters take no gradient here, DDP would wait for them.
            losses["G_A"] = self.gan_loss(unwrap(self.D_A, parallel_only=True)(self.fake_B), True)
            losses["G_B"] = self.gan_loss(unwrap(self.D_B, parallel_only=True)(self.fake_A), True)
            losses["cycle_A"] = cycle_loss(self.rec_A, self.real_A, opt.lambda_A)
            losses["cycle_B"] = cycle_loss(self.rec_B, self.real_B, opt.lambda_B)
            loss_G = sum(losses[k] for k in ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B"))
        self.precision.backward(loss_G)

    def backward_D_basic(self, net_D, real, fake):
        """(GAN(D(real), real) + GAN(D(fake), fake)) / 2, back-propagated; returns the loss."""
        with self.precision.autocast():
            on_real, on_fake = call_together(net_D, [real, fake])
            loss = (self.gan_loss(on_real, True) + self.gan_loss(on_fake, False)) * 0.5
        self.precision.backward(loss)
        return loss

    def backward_D_A(self):
        fake_B = self.fake_B_pool.query(self.fake_B.detach())
        self.losses["D_A"] = self.backward_D_basic(self.D_A, self.real_B, fake_B)

    def backward_D_B(self):
        fake_A = self.fake_A_pool.query(self.fake_A.detach())
        self.losses["D_B"] = self.backward_D_basic(self.D_B, self.real_A, fake_A)

    def sample_rows(self, real_A, real_B):
        fake_B, fake_A = self.translate(self.G_A, real_A), self.translate(self.G_B, real_B)
        return [real_A, fake_B, self.translate(self.G_B, fake_B), real_B, fake_A, self.translate(self.G_A, fake_A)]

    def rank_state(self):
        return {"pool_A": self.fake_A_pool.state_dict(), "pool_B": self.fake_B_pool.state_dict()}

    def load_rank_state(self, state, device):
        self.fake_A_pool.load_state_dict(state["pool_A"], device)
        self.fake_B_pool.load_state_dict(state["pool_B"], device)
