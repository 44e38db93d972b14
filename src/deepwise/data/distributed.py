"""``DistributedSampler``: each process of a data-parallel job takes its own share of every epoch.

Every rank draws the same permutation, seeded by ``(seed, epoch)`` alone (not by the global
generator, which ranks may have seeded differently), and takes every ``num_replicas``-th index
starting at its rank: the shares are disjoint, together they cover the data, and ``set_epoch``
gives a new order each epoch. All ranks must take the same number of steps, so the shares have
equal length: the permutation is padded with its own first indices (a few samples are seen twice an
epoch), or with ``drop_last`` the tail is dropped instead, as PyTorch does.

``Trainer.fit`` under ``mpiexec`` splits its data differently, so that N processes take exactly the
batches one process would: ``ShardedBatchSampler`` gives each rank its share of every global batch
(training), ``StridedBatchSampler`` whole batches in turn (evaluation: each sample once, no padding).
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import distributed
from deepwise.data.sampler import Sampler

__all__ = ["DistributedSampler", "ShardedBatchSampler", "StridedBatchSampler"]


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


def _global_batches(batch_sampler) -> list[np.ndarray]:
    draw = getattr(batch_sampler, "epoch_batches", None)
    if draw is not None:
        return [np.asarray(b, dtype=np.int64).reshape(-1) for b in draw()]
    return [np.asarray(b, dtype=np.int64).reshape(-1) for b in batch_sampler]


class _RankBatches(Sampler):
    """What both batch samplers below share: an inner batch sampler, this rank and the world size."""

    def __init__(self, batch_sampler, num_replicas: int | None = None, rank: int | None = None):
        if num_replicas is None:
            num_replicas = distributed.world_size()
        if rank is None:
            rank = distributed.get_rank() if distributed.is_initialized() else 0
        if not 0 <= rank < num_replicas:
            raise ValueError(f"{type(self).__name__}: rank must be in [0, {num_replicas - 1}], got {rank}")
        self.batch_sampler = batch_sampler
        self.sampler = getattr(batch_sampler, "sampler", None)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)

    def set_epoch(self, epoch: int) -> None:
        inner = getattr(self.batch_sampler, "set_epoch", None)
        if inner is not None:
            inner(epoch)

    def __iter__(self):
        return iter([b.tolist() for b in self.epoch_batches()])


class ShardedBatchSampler(_RankBatches):
    """This rank's share of every batch of ``batch_sampler``: what ``Trainer.fit`` trains on under
    ``mpiexec``, so that ``num_replicas`` processes together take exactly the batches one process
    would (the same global batch size, order and number of steps).

    Each epoch's global batches are drawn once, the same on every rank (the ranks' generators agree
    when the epoch starts); batch ``k`` of ``n`` samples is cut into ``num_replicas`` contiguous
    parts whose sizes differ by at most one (``numpy.array_split``), and this rank gets part
    ``rank``. After drawing, ``global_sizes[k]`` is ``n`` and ``shares[k]`` the number of this
    rank's samples in it. A batch with fewer samples than ranks leaves some ranks without a sample:
    they get the batch's first index as a stand-in, with ``shares[k] = 0``, so every rank still
    runs the step (the Trainer gives a stand-in's loss a weight of zero).
    """

    def __init__(self, batch_sampler, num_replicas: int | None = None, rank: int | None = None):
        super().__init__(batch_sampler, num_replicas, rank)
        self.global_sizes: list[int] = []
        self.shares: list[int] = []

    def epoch_batches(self) -> list[np.ndarray]:
        out, sizes, shares = [], [], []
        for batch in _global_batches(self.batch_sampler):
            part = np.array_split(batch, self.num_replicas)[self.rank]
            sizes.append(int(batch.size))
            shares.append(int(part.size))
            out.append(part if part.size or not batch.size else batch[:1])
        self.global_sizes, self.shares = sizes, shares
        return out

    def __len__(self) -> int:
        return len(self.batch_sampler)


class StridedBatchSampler(_RankBatches):
    """Whole batches ``rank, rank + num_replicas, ...`` of ``batch_sampler``: evaluation under
    ``mpiexec`` splits the batches over the ranks, so each sample is evaluated once (no padding), and
    each batch is the one a single process would evaluate. Some ranks may get one batch fewer."""

    def epoch_batches(self) -> list[np.ndarray]:
        return _global_batches(self.batch_sampler)[self.rank::self.num_replicas]

    def __len__(self) -> int:
        return max(0, -(-(len(self.batch_sampler) - self.rank) // self.num_replicas))
