"""``DistributedSampler``: each process of a data-parallel job takes its own share of every epoch.

Every rank draws the same permutation, seeded by ``(seed, epoch)`` alone (not by the global
generator, which ranks may have seeded differently), and takes every ``num_replicas``-th index
starting at its rank: the shares are disjoint, together they cover the data, and ``set_epoch``
gives a new order each epoch. All ranks must take the same number of steps, so the shares have
equal length: the permutation is padded with its own first indices (a few samples are seen twice an
epoch), or with ``drop_last`` the tail is dropped instead, as PyTorch does.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import distributed
from deepwise.data.sampler import Sampler

__all__ = ["DistributedSampler"]


class DistributedSampler(Sampler):
    """This rank's share of ``dataset``'s indices, PyTorch's arguments.

    ``num_replicas`` / ``rank`` default to the process group's world size and rank (1 and 0 without
    one). ``shuffle``: a new permutation per epoch (``set_epoch``), the same on every rank.
    ``seed``: the permutation's seed (give every rank the same). ``drop_last``: drop the tail
    instead of padding to equal shares.
    """

    def __init__(self, dataset, num_replicas: int | None = None, rank: int | None = None, shuffle: bool = True,
                 seed: int = 0, drop_last: bool = False):
        if num_replicas is None:
            num_replicas = distributed.world_size()
        if rank is None:
            rank = distributed.get_rank() if distributed.is_initialized() else 0
        for name, value in (("num_replicas", num_replicas), ("rank", rank), ("seed", seed)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise TypeError(f"DistributedSampler: {name} must be an int, got {value!r}")
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler: num_replicas must be >= 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler: rank must be in [0, {num_replicas - 1}], got {rank}")
        self.dataset = dataset
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % self.num_replicas:
            self.num_samples = math.ceil((n - self.num_replicas) / self.num_replicas)
        else:
            self.num_samples = math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Choose the permutation of epoch ``epoch`` (call it before each epoch, the same on every rank)."""
        self.epoch = int(epoch)

    def epoch_indices(self) -> np.ndarray:
        n = len(self.dataset)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(n).astype(np.int64)
        else:
            order = np.arange(n, dtype=np.int64)
        if self.total_size > n:
            order = np.resize(order, self.total_size)  # pads by repeating the order from its start
        else:
            order = order[: self.total_size]
        return order[self.rank : self.total_size : self.num_replicas]

    def __len__(self) -> int:
        return self.num_samples
