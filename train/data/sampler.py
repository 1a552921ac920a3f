"""A resumable sampler: the (A index, B index, augmentation seed) of every sample of every epoch
decided from (seed, epoch) alone, and the DataLoader over its batches."""
import math

import numpy as np
import torch


class RunSampler:
    """Decides the (A index, B index, augmentation seed) of every sample of every epoch from
    (seed, epoch) alone. Each epoch visits max(len_A, len_B) positions: A in a random
    permutation (in order with serial_batches), B at random (in order with serial_batches).
    With num_replicas > 1 it behaves like DistributedSampler: the epoch's list is padded to a
    multiple of num_replicas and rank r takes positions r, r + num_replicas, ...
    """

    def __init__(self, len_A, len_B, batch_size, seed=0, serial_batches=False, num_replicas=1, rank=0):
        self.len_A, self.len_B = len_A, len_B
        self.batch_size, self.seed, self.serial = batch_size, seed, serial_batches
        self.num_replicas, self.rank = num_replicas, rank
        self.n = max(len_A, len_B)
        self.per_rank = math.ceil(self.n / num_replicas)

    def __len__(self):
        """Batches per epoch (per rank)."""
        return math.ceil(self.per_rank / self.batch_size)

    def epoch_items(self, epoch):
        rng = np.random.default_rng([self.seed, 7919, epoch])
        positions = np.arange(self.n) if self.serial else rng.permutation(self.n)
        b_random = rng.integers(0, self.len_B, size=self.n)
        seeds = rng.integers(0, 2 ** 31 - 1, size=self.n)
        total = self.per_rank * self.num_replicas
        order = np.concatenate([np.arange(self.n)] * math.ceil(total / self.n))[:total]
        items = []
        for k in order[self.rank::self.num_replicas]:
            pos = int(positions[k])
            ib = pos % self.len_B if self.serial else int(b_random[k])
            items.append((pos % self.len_A, ib, int(seeds[k])))
        return items

    def epoch_batches(self, epoch, start=0):
        items = self.epoch_items(epoch)
        batches = [items[i:i + self.batch_size] for i in range(0, len(items), self.batch_size)]
        return _Batches(batches[start:])


class _Batches:
    def __init__(self, batches):
        self.batches = batches

    def __iter__(self):
        return iter(self.batches)

    def __len__(self):
        return len(self.batches)


def make_loader(dataset, batches, num_workers, pin_memory=False, generator=None, worker_init_fn=None):
    return torch.utils.data.DataLoader(dataset, batch_sampler=batches, num_workers=num_workers,
                                       pin_memory=pin_memory, generator=generator,
                                       worker_init_fn=worker_init_fn if num_workers > 0 else None)


