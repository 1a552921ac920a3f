"""Distributed training helpers: torchrun environment detection, process group, rank-0 gating.

Launch with `torchrun --nproc_per_node=N -m train ...` (or across nodes with --nnodes and a
rendezvous); each process takes RANK / WORLD_SIZE / LOCAL_RANK from the environment. NCCL on
CUDA, gloo on the CPU.
"""
import os

import torch
import torch.distributed as dist


class Dist:
    def __init__(self, rank=0, world_size=1, local_rank=0, enabled=False, device="cpu"):
        self.rank, self.world_size, self.local_rank, self.enabled = rank, world_size, local_rank, enabled
        self.device = device  # where collective tensors live: cuda for NCCL, cpu for gloo

    @property
    def is_main(self):
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def gather_to_main(self, obj):
        """A list of every rank's obj on rank 0 (None elsewhere); [obj] when not distributed."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast_object(self, obj):
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def all_min(self, value):
        """Smallest value of an int flag across ranks (e.g. 'keep going' = 1 on every rank)."""
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return int(t.item())

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def init_from_env(device_hint=None):
    """Set up the process group when launched by torchrun (WORLD_SIZE > 1 in the environment)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = torch.cuda.is_available() and (device_hint is None or str(device_hint).startswith("cuda"))
    if use_cuda:
        torch.cuda.set_device(local_rank)
    backend = "nccl" if use_cuda else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return Dist(rank, world, local_rank, True, f"cuda:{local_rank}" if use_cuda else "cpu")
