"""FID / KID during training on a folder dataset with testA / testB, and the choice of best.pt.

Every --eval_freq steps the run translates testA and testB with the current generators and
measures them against the other domain's real test images (train.evaluation.fid_kid's metrics, at
--crop_size). The run keeps best.pt, the checkpoint of the lowest mean FID of the two
directions so far, beside latest.pt. It needs the Inception weights file (--inception_weights,
or torch-fidelity's cache); without it training goes on without FID and says why once.
"""
from __future__ import annotations

import os

from ..cli import MissingDependencyError
from ..data import DataError, image_paths
from .fid_kid import evaluate
from .inception import InceptionFeatures, InceptionWeightsError, resolve_weights


class FIDTracker:
    def __init__(self, test_paths, size, extract, device, batch_size=16):
        self.test_paths, self.size, self.extract, self.device = test_paths, size, extract, device
        self.batch_size = batch_size
        self.best = float("inf")

    @classmethod
    def for_run(cls, opt, device, log, feature_extractor=None):
        """A tracker when the dataset has testA / testB and the weights are at hand, else None
        (with one line saying why, when FID was possible in principle)."""
        if opt.dataset != "folder":
            if opt.inception_weights is not None:
                log("no FID during training: the synthetic data are evaluated by PSNR / SSIM against their "
                    "paired test split; --inception_weights is used by folder datasets with testA / testB")
            return None
        folders = [os.path.join(opt.dataroot, f"test{d}") for d in ("A", "B")]
        missing = [f for f in folders if not os.path.isdir(f)]
        if missing:
            if opt.inception_weights is not None:
                log(f"no FID during training: --inception_weights is given, but there is no {' or '.join(missing)} "
                    "to compare the translations with")
            return None
        try:
            test_paths = {d: image_paths(f) for d, f in zip("AB", folders)}
            extract = feature_extractor or cls._inception(opt.inception_weights, device)
        except (InceptionWeightsError, DataError, MissingDependencyError) as error:  # train on, without FID
            log(f"no FID during training: {error}")
            return None
        return cls(test_paths, opt.crop_size, extract, device)

    @staticmethod
    def _inception(weights, device):
        return InceptionFeatures(resolve_weights(weights), device)

    def measure(self, generator_AtoB, generator_BtoA=None) -> dict:
        """FID and KID x100 of both directions (A -> B alone without generator_BtoA), and their
        mean FID (the score best.pt follows)."""
        nets = {"AtoB": generator_AtoB, "BtoA": generator_BtoA}
        nets = {direction: net for direction, net in nets.items() if net is not None}
        rows = evaluate(nets, self.test_paths, self.size, self.extract, batch_size=self.batch_size,
                                    device=self.device, log=lambda _message: None)
        translations = [r for r in rows if not r.compared.startswith("identity")]
        result = {f"fid_{r.direction}": r.fid for r in translations}
        result.update({f"kid_x100_{r.direction}": r.kid_x100_mean for r in translations})
        result["fid"] = sum(r.fid for r in translations) / len(translations)
        return result

    def is_best(self, fid: float) -> bool:
        if fid < self.best:
            self.best = fid
            return True
        return False
