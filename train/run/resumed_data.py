"""A resumed run and its data: the dataset may have moved (`--resume --dataroot NEW`), and a
dataset that changed is said, not hidden. The checkpoint records what identifies the training
images (train.data.UnalignedDataset.identity): per side, their count and a digest of their
relative paths and sizes."""
from __future__ import annotations

import os

from .folder import RunError


def check_dataroot_exists(opt) -> None:
    """RunError when a resumed folder run's dataset is not where the run recorded it."""
    if opt.dataset == "folder" and not os.path.isdir(opt.dataroot):
        raise RunError(f"this run's --dataroot {opt.dataroot} no longer exists; if the dataset moved, resume "
                       "with --resume --dataroot NEW_PATH (the same images are recognised)")


def check_dataroot_given(opt) -> None:
    if opt.dataset != "folder" and "dataroot" in getattr(opt, "_explicit", ()):
        raise RunError(f"this run trains on the {opt.dataset} data; --dataroot cannot be given when resuming it")


def compare_identity(saved: dict | None, current: dict | None, opt, saved_dataroot, log) -> None:
    """Say whether the data a resumed run continues on are the ones it was trained on."""
    if saved is None or current is None:
        return  # synthetic data, or a checkpoint older than the record
    moved = saved_dataroot != opt.dataroot
    if saved == current:
        if moved:
            log(f"the dataset moved: {saved_dataroot} -> {opt.dataroot} (the same training images); continuing")
        return
    changes = ", ".join(f"{side} {saved[side]['images']} -> {current[side]['images']} images"
                        + ("" if saved[side]["images"] != current[side]["images"] else " (renamed or edited)")
                        for side in current if saved.get(side) != current[side])
    log(f"warning: {opt.dataroot} does not hold the training images this run was trained on ({changes}); "
        "training continues on them, so the data order differs from an uninterrupted run")
