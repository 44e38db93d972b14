"""Samplers: which sample indices an epoch visits, and in which order.

A sampler is iterable over int indices and has ``__len__``. deepwise's samplers also offer
``epoch_indices()``, which draws the whole epoch at once as an int64 array (the DataLoader calls it
in the main thread when an epoch starts, so shuffling is reproducible under
``deepwise.manual_seed`` whatever a prefetch thread does). A sampler without it is simply iterated.

A sampler may have ``set_epoch(epoch)``: the DataLoader calls it before each epoch with the epoch
number (0, 1, 2, ...). That is the hook for a distributed sampler, which yields only this rank's
share of a permutation seeded by (seed, epoch), identical on every rank.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.creation import as_numpy_generator
from deepwise.data.randomness import rng

# An epoch of more indices than this is drawn lazily, chunk by chunk, as it is consumed (a
# RandomSampler(replacement=True, num_samples=10**10) must not build 80 GB of indices up front).
LAZY_ABOVE = 1 << 24
_CHUNK = 1 << 15


def is_lazy(sampler) -> bool:
    """True when an epoch of ``sampler`` is too long to draw at once (see ``LAZY_ABOVE``)."""
    try:
        return len(sampler) > LAZY_ABOVE
    except TypeError:
        return False


class Sampler:
    """Base class: implement ``__iter__`` (yielding int indices) and ``__len__``; optionally
    ``epoch_indices()`` (the epoch's indices as an int64 array) and ``set_epoch(epoch)``."""

    def __iter__(self):
        return iter(self.epoch_indices().tolist())

    def epoch_indices(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__ or epoch_indices()")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__()")


def _generator(generator, where):
    """The NumPy generator to draw from: ``generator`` (NumPy's or a ``dw.Generator``) when given,
    else the data pipeline's (``deepwise.data.rng()``), looked up when the epoch is drawn."""
    return rng() if generator is None else as_numpy_generator(generator, where)


def draw_epoch(sampler) -> np.ndarray:
    """All indices ``sampler`` yields this epoch, as a 1-D int64 array (drawn now)."""
    draw = getattr(sampler, "epoch_indices", None)
    if draw is not None:
        try:
            idx = draw()
        except NotImplementedError:
            pass  # a Sampler subclass that only overrides __iter__
        else:
            if type(idx) is np.ndarray and idx.dtype == np.int64 and idx.ndim == 1:
                return idx
            return np.asarray(idx, dtype=np.int64).reshape(-1)
    return np.fromiter((int(i) for i in sampler), dtype=np.int64)


class SequentialSampler(Sampler):
    """0, 1, ..., len(data_source) - 1."""

    def __init__(self, data_source):
        self.data_source = data_source

    def epoch_indices(self) -> np.ndarray:
        return np.arange(len(self.data_source), dtype=np.int64)

    def __len__(self) -> int:
        return len(self.data_source)


class RandomSampler(Sampler):
    """A new random order every epoch.

    Without replacement each epoch is a fresh permutation (several concatenated when ``num_samples``
    exceeds the dataset size); with ``replacement=True`` indices are drawn uniformly. Numbers come
    from ``generator`` if given, else from ``deepwise.random.generator()`` at the moment the epoch
    starts, so ``deepwise.manual_seed(s)`` makes the order reproducible.
    """

    def __init__(self, data_source, replacement: bool = False, num_samples: int | None = None,
                 generator: np.random.Generator | None = None):
        self.data_source = data_source
        self.replacement = bool(replacement)
        self.generator = generator
        if num_samples is not None and (not isinstance(num_samples, (int, np.integer)) or num_samples <= 0):
            raise ValueError(f"RandomSampler: num_samples must be a positive int, got {num_samples!r}")
        self._num_samples = num_samples

    @property
    def num_samples(self) -> int:
        return len(self.data_source) if self._num_samples is None else int(self._num_samples)

    def epoch_indices(self) -> np.ndarray:
        n = len(self.data_source)
        gen = _generator(self.generator, "RandomSampler")
        k = self.num_samples
        if n == 0:
            return np.zeros(0, dtype=np.int64)
        if self.replacement:
            return gen.integers(0, n, size=k, dtype=np.int64)
        if k == n:
            return gen.permutation(n).astype(np.int64, copy=False)  # the same draw as one round below
        rounds = -(-k // n)
        perm = np.concatenate([gen.permutation(n) for _ in range(rounds)])
        return perm[:k].astype(np.int64, copy=False)

    def __iter__(self):
        if not is_lazy(self):
            yield from self.epoch_indices().tolist()
            return
        n = len(self.data_source)
        gen = _generator(self.generator, "RandomSampler")
        left = self.num_samples
        while left > 0:
            if self.replacement:
                chunk = gen.integers(0, n, size=min(_CHUNK, left), dtype=np.int64)
            else:
                chunk = gen.permutation(n)[:left]
            left -= len(chunk)
            yield from chunk.tolist()

    def __len__(self) -> int:
        return self.num_samples


class SubsetRandomSampler(Sampler):
    """The given ``indices`` in a new random order every epoch (e.g. a validation share of a
    dataset, without building a ``Subset``)."""

    def __init__(self, indices, generator=None):
        self.indices = indices
        self.generator = generator
        self._indices = np.asarray(indices, dtype=np.int64).reshape(-1)

    def epoch_indices(self) -> np.ndarray:
        gen = _generator(self.generator, "SubsetRandomSampler")
        return self._indices[gen.permutation(self._indices.size)]

    def __len__(self) -> int:
        return int(self._indices.size)


class WeightedRandomSampler(Sampler):
    """``num_samples`` indices in ``[0, len(weights))``, index ``i`` drawn with probability
    ``weights[i] / sum(weights)`` (the weights need not sum to 1). With ``replacement=False`` an index
    is drawn at most once per epoch (zero-weight indices only once every other one is drawn). The
    usual cure for an unbalanced dataset: weight each sample by one over the size of its class.
    Epochs longer than ``LAZY_ABOVE`` indices are drawn lazily.
    """

    def __init__(self, weights, num_samples: int, replacement: bool = True, generator=None):
        if isinstance(num_samples, bool) or not isinstance(num_samples, (int, np.integer)) or num_samples <= 0:
            raise ValueError("WeightedRandomSampler: num_samples should be a positive integer value, but got "
                             f"num_samples={num_samples!r}")
        if not isinstance(replacement, bool):
            raise ValueError("WeightedRandomSampler: replacement should be a boolean value, but got "
                             f"replacement={replacement!r}")
        w = _weights_array(weights)
        if w.ndim != 1:
            raise ValueError(f"WeightedRandomSampler: weights should be a 1d sequence but given weights have "
                             f"shape {tuple(w.shape)}")
        if w.size == 0 or not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
            raise RuntimeError("WeightedRandomSampler: invalid weights: they must be finite, non-negative and "
                               f"not all zero (got {w.size} weights, min {w.min() if w.size else None}, "
                               f"sum {w.sum()})")
        if not replacement and num_samples > w.size:
            raise RuntimeError(f"WeightedRandomSampler: cannot draw {num_samples} distinct indices without "
                               f"replacement from {w.size} weights")
        self.weights = w
        self.num_samples = int(num_samples)
        self.replacement = replacement
        self.generator = generator
        self._p = w / w.sum()

    def _draw(self, gen, k):
        if self.replacement:
            return gen.choice(self._p.size, size=k, p=self._p).astype(np.int64, copy=False)
        # successive draws without replacement, all at once: sorting by Exp(1) / weight gives the
        # order in which weighted draws would pick the indices; once the weighted ones are used up,
        # zero-weight indices follow in random order (as torch.multinomial gives them)
        e = gen.exponential(size=self._p.size)
        zero = self._p == 0
        with np.errstate(divide="ignore"):
            key = np.where(zero, e, e / self._p)
        return np.lexsort((key, zero))[:k].astype(np.int64, copy=False)

    def epoch_indices(self) -> np.ndarray:
        return self._draw(_generator(self.generator, "WeightedRandomSampler"), self.num_samples)

    def __iter__(self):
        if not (is_lazy(self) and self.replacement):
            yield from self.epoch_indices().tolist()
            return
        gen = _generator(self.generator, "WeightedRandomSampler")
        left = self.num_samples
        while left > 0:
            chunk = self._draw(gen, min(_CHUNK, left))
            left -= len(chunk)
            yield from chunk.tolist()

    def __len__(self) -> int:
        return self.num_samples


def _weights_array(weights) -> np.ndarray:
    """Sample weights (a sequence, NumPy array or Tensor) as float64, as PyTorch reads them."""
    array = getattr(weights, "array", None)  # a deepwise Tensor
    if array is not None and not isinstance(weights, np.ndarray):
        weights = array
    if backend.is_device_array(weights):
        weights = backend.to_device(weights, backend.Device("cpu"))
    try:
        return np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"WeightedRandomSampler: weights must be a sequence of numbers, got "
                        f"{type(weights).__name__}: {exc}") from None


class BatchSampler(Sampler):
    """Groups the indices of ``sampler`` into batches of ``batch_size`` (the last one shorter unless
    ``drop_last``). Iterating yields lists of ints; ``epoch_batches()`` gives int64 arrays."""

    def __init__(self, sampler, batch_size: int, drop_last: bool = False):
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size <= 0:
            raise ValueError(f"BatchSampler: batch_size must be a positive int, got {batch_size!r}")
        self.sampler = sampler
        self.batch_size = int(batch_size)
        self.drop_last = bool(drop_last)

    def set_epoch(self, epoch: int) -> None:
        """Forward the epoch to the wrapped sampler (if it takes one)."""
        inner = getattr(self.sampler, "set_epoch", None)
        if inner is not None:
            inner(epoch)

    def epoch_plan(self) -> tuple[np.ndarray, list[int]]:
        """The epoch drawn now as ``(indices, offsets)``: batch ``k`` is ``indices[offsets[k]:offsets[k + 1]]``
        (``len(offsets)`` is the number of batches plus one)."""
        idx = draw_epoch(self.sampler)
        bs = self.batch_size
        stop = (idx.size // bs) * bs if self.drop_last else idx.size
        offsets = list(range(0, stop, bs))
        offsets.append(stop)
        return idx, offsets

    def epoch_batches(self) -> list[np.ndarray]:
        idx, offsets = self.epoch_plan()
        return [idx[a:b] for a, b in zip(offsets, offsets[1:])]

    def __iter__(self):
        if is_lazy(self.sampler):
            return self._lazy_batches()
        return iter([b.tolist() for b in self.epoch_batches()])

    def _lazy_batches(self):
        batch = []
        for i in self.sampler:
            batch.append(i)
            if len(batch) == self.batch_size:
                yield batch
                batch = []
        if batch and not self.drop_last:
            yield batch

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
