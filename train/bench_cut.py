"""train.bench for the CUT recipes (--model cut, fastcut): CUT's own iteration as the "official"
build, the reference the fused builds are measured against."""
from __future__ import annotations

import torch

from .recipes.cut import CUT, FastCUT
from .recipes.cut.losses import nce_over_layers


class OfficialCUT(CUT):
    """CUTModel.optimize_parameters as CUT runs it: the generator once for the translation and,
    for each NCE term, twice more up to the last NCE layer (on the translation and on its
    source, both with gradients; CUT detaches the keys only in the loss), each discriminator call
    on its own, and torch.optim.Adam with its defaults. Built with norm_impl "torch", it is CUT's
    step on CUT's layers."""

    def __init__(self, opt, context):
        super().__init__(opt, context)
        self.optimizers = {k: self.default_adam(self.optimizers[k]) for k in ("G", "D")}
        self.schedulers = {}  # the benchmark steps no epoch

    @staticmethod
    def default_adam(optimizer):
        group = optimizer.param_groups[0]
        return torch.optim.Adam(group["params"], lr=group["lr"], betas=group["betas"])

    def adopt_patch_sampler(self):
        super().adopt_patch_sampler()
        self.optimizers["F"] = self.default_adam(self.optimizers["F"])
        self.schedulers = {}

    def forward(self, real_A, real_B, flipped):
        real = torch.cat([real_A, real_B]) if self.opt.nce_idt else real_A
        if flipped:
            real = torch.flip(real, [3])
        fake, n = self.generators["AtoB"](real), len(real_A)
        return fake[:n], fake[n:], None

    def discriminator_step(self, fake_B, real_B):
        optimizer, D = self.optimizers["D"], self.discriminators["D"]
        optimizer.zero_grad(set_to_none=True)
        losses = {"D_fake": self.gan_loss(D(fake_B), False), "D_real": self.gan_loss(D(real_B), True)}
        ((losses["D_fake"] + losses["D_real"]) * 0.5).backward()
        optimizer.step()
        return losses

    def nce_losses(self, real_A, real_B, fake_B, idt_B, keys, flipped):
        if not self.nce_layers:
            return super().nce_losses(real_A, real_B, fake_B, idt_B, keys, flipped)
        zero = torch.zeros((), device=self.device)
        return {"NCE": self.calculate_nce(real_A, fake_B, flipped),
                "NCE_Y": self.calculate_nce(real_B, idt_B, flipped) if self.opt.nce_idt else zero}

    def calculate_nce(self, source, translated, flipped):
        opt, G = self.opt, self.generators["AtoB"]
        queries = G(translated, layers=self.nce_layers, encode_only=True)
        if flipped:
            queries = [torch.flip(q, [3]) for q in queries]
        keys = G(source, layers=self.nce_layers, encode_only=True)
        self.build_patch_sampler(keys)
        key_samples, patch_ids = self.netF(keys, opt.num_patches)
        query_samples, _ = self.netF(queries, opt.num_patches, patch_ids)
        return nce_over_layers(query_samples, key_samples, images=len(source), temperature=opt.nce_T,
                               negatives_from_batch=opt.nce_includes_all_negatives_from_minibatch,
                               weight=opt.lambda_NCE)


class OfficialFastCUT(OfficialCUT):
    name, options_of, option_defaults = FastCUT.name, FastCUT.options_of, FastCUT.option_defaults
