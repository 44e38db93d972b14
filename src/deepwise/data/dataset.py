"""Datasets: indexable collections of samples.

A dataset is anything with ``__len__`` and ``__getitem__(i)`` returning one sample. A dataset may
also offer ``__getitems__(indices)``: given a 1-D int64 NumPy array of indices it returns a whole
*batch* at once (the samples already stacked along a new first axis, e.g. a tuple of arrays). The
``DataLoader`` uses it when present, so a batch costs one fancy-indexing call per array instead of a
Python loop over samples.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

import numpy as np

from deepwise import backend
from deepwise.creation import as_numpy_generator
from deepwise.data.randomness import rng
from deepwise.tensor import Tensor


class Dataset:
    """Base class of map-style datasets: implement ``__getitem__(index)`` and ``__len__()``.

    Optionally implement ``__getitems__(indices)`` (indices: 1-D int64 array) returning the stacked
    batch, for the DataLoader's fast path.
    """

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement __getitem__(index)")

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must implement __len__()")

    def __add__(self, other):
        """``a + b``: the samples of ``a`` followed by those of ``b`` (a ``ConcatDataset``)."""
        return ConcatDataset([self, other])


class IterableDataset(Dataset):
    """Base class of datasets that are streams: implement ``__iter__`` yielding samples.

    A ``DataLoader`` over one batches the samples as they come (no sampler, no shuffle). With
    ``num_workers=N`` every worker process iterates its own copy of the dataset, so a dataset that
    should not be read N times over splits the work itself inside ``__iter__``, from
    ``deepwise.data.get_worker_info()`` (None in the main process; in a worker, its ``id`` and
    ``num_workers``)::

        def __iter__(self):
            info = get_worker_info()
            start, step = (0, 1) if info is None else (info.id, info.num_workers)
            return iter(range(self.start + start, self.end, step))
    """

    def __iter__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement __iter__()")

    def __getitem__(self, index):
        raise TypeError(f"{type(self).__name__} is an IterableDataset: iterate over it, it has no "
                        "samples by index")

    def __len__(self) -> int:
        """A stream's length is unknown unless a subclass defines ``__len__`` (len() is a TypeError)."""
        raise TypeError(f"{type(self).__name__} (an IterableDataset) has no __len__")

    def __bool__(self) -> bool:  # a stream without a length is still a dataset, and true
        try:
            return len(self) > 0
        except TypeError:
            return True

    def __add__(self, other):
        """``a + b``: the stream of ``a`` followed by that of ``b`` (a ``ChainDataset``)."""
        return ChainDataset([self, other])


class ChainDataset(IterableDataset):
    """The streams of several ``IterableDataset``s one after the other (built lazily: each is
    iterated only when the previous one is exhausted)."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        for i, d in enumerate(self.datasets):
            if not isinstance(d, IterableDataset):
                raise TypeError(f"ChainDataset: dataset {i} is a {type(d).__name__}, expected an "
                                "IterableDataset (use ConcatDataset for map-style datasets)")

    def __iter__(self):
        for d in self.datasets:
            yield from d

    def __len__(self) -> int:
        return sum(len(d) for d in self.datasets)  # a TypeError when one of them has no length

    def __repr__(self):
        return f"ChainDataset({len(self.datasets)} datasets)"


class ConcatDataset(Dataset):
    """The samples of several map-style datasets one after the other: with sizes 3 and 2, index 3
    is sample 0 of the second. ``cumulative_sizes[i]`` is the number of samples in the first
    ``i + 1`` datasets; negative indices count from the end, as for a list."""

    def __init__(self, datasets):
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("ConcatDataset: datasets should not be an empty iterable")
        for i, d in enumerate(self.datasets):
            if isinstance(d, IterableDataset):
                raise TypeError(f"ConcatDataset: dataset {i} is an IterableDataset ({type(d).__name__}); "
                                "ConcatDataset does not support IterableDataset (use ChainDataset)")
        self.cumulative_sizes = np.cumsum([len(d) for d in self.datasets]).tolist()

    def __len__(self) -> int:
        return int(self.cumulative_sizes[-1])

    def __getitem__(self, index):
        n = len(self)
        if not isinstance(index, (int, np.integer)):
            raise TypeError(f"ConcatDataset: index must be an int, got {type(index).__name__}")
        if index < 0:
            if -index > n:
                raise ValueError(f"ConcatDataset: absolute value of index {index} should not exceed the "
                                 f"dataset length {n}")
            index += n
        if index >= n:
            raise IndexError(f"ConcatDataset: index {index} is out of range for a dataset of {n} samples")
        which = bisect.bisect_right(self.cumulative_sizes, index)
        start = self.cumulative_sizes[which - 1] if which else 0
        return self.datasets[which][int(index - start)]

    def __repr__(self):
        return f"ConcatDataset({len(self.datasets)} datasets, {len(self)} samples)"


def _as_data_array(value, position: int):
    """A Tensor/array/array-like argument -> the array it holds (CuPy arrays stay on the GPU)."""
    if isinstance(value, Tensor):
        arr = value.array
    elif backend.is_array(value):
        arr = value
    else:
        arr = np.asarray(value)
        if arr.dtype == object:
            raise TypeError(f"TensorDataset: argument {position} is ragged or not numeric")
    if arr.ndim == 0:
        raise ValueError(f"TensorDataset: argument {position} is a scalar; each argument needs a first "
                         "(sample) dimension")
    return arr


class TensorDataset(Dataset):
    """Samples are the rows of equally long arrays: ``ds[i] == (a[i], b[i], ...)``.

    ``TensorDataset(x, y)`` accepts deepwise Tensors, NumPy/CuPy arrays or nested lists; they must all
    have the same size along the first dimension. Items are returned as arrays (the DataLoader's
    collate turns batches into Tensors).

    ``transform``: an optional callable applied to the *first* array of every fetched batch (the
    inputs), e.g. ``deepwise.data.transforms.Compose([...])``. It sees a batch (N, ...) — one sample
    is passed as a batch of one — so batch-level augmentation runs inside the loader (and in its
    prefetch thread). Without a transform the ``DataLoader`` reads the arrays directly: one row take
    per array and batch, the epoch's indices checked once (see ``deepwise.data.loader``).
    """

    def __init__(self, *tensors, transform=None):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor or array")
        arrays = tuple(_as_data_array(t, i) for i, t in enumerate(tensors))
        sizes = [a.shape[0] for a in arrays]
        if len(set(sizes)) != 1:
            listed = ", ".join(f"argument {i}: {s}" for i, s in enumerate(sizes))
            raise ValueError("TensorDataset: all tensors must have the same size in the first dimension, "
                             f"got {listed}")
        self.arrays = arrays
        self.transform = transform

    @property
    def tensors(self) -> tuple:
        """The data as deepwise Tensors (sharing memory with ``arrays``)."""
        return tuple(Tensor._make(a) for a in self.arrays)

    def __len__(self) -> int:
        return int(self.arrays[0].shape[0])

    def _pack(self, parts):
        return tuple(parts)

    def __getitem__(self, index):
        parts = [a[index] for a in self.arrays]
        if self.transform is not None:
            if isinstance(index, (int, np.integer)):
                parts[0] = self.transform(parts[0][None])[0]
            else:
                parts[0] = self.transform(parts[0])
        return self._pack(parts)

    def __getitems__(self, indices):
        """The batch of samples ``indices`` (a 1-D int array) as stacked arrays, in one indexing call
        per array."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1:
            raise ValueError(f"{type(self).__name__}.__getitems__: expected a 1-D array of indices, "
                             f"got shape {idx.shape}")
        n = len(self)
        if idx.size and (idx.min() < -n or idx.max() >= n):
            bad = idx[(idx < -n) | (idx >= n)][0]
            raise IndexError(f"{type(self).__name__}: index {bad} is out of range for a dataset of "
                             f"{n} samples")
        parts = [a[idx] if isinstance(a, np.ndarray) else a[backend.to_device(idx, backend.device_of(a))]
                 for a in self.arrays]
        if self.transform is not None:
            parts[0] = self.transform(parts[0])
        return self._pack(parts)

    def row_take_layout(self):
        """``"tuple"`` or ``"bare"`` (the one array of an ``ArrayDataset``) when a batch of this dataset
        is nothing but one row take per array packed as here; None when a transform, or a subclass
        that fetches or packs batches its own way, does more. The ``DataLoader`` reads the arrays
        directly when this is not None (see ``deepwise.data.loader``)."""
        cls = type(self)
        if self.transform is not None:
            return None
        if cls.__getitems__ is not TensorDataset.__getitems__ or "__getitems__" in vars(self):
            return None  # a subclass that fetches batches its own way
        if cls._pack is TensorDataset._pack:
            return "tuple"
        if cls._pack is ArrayDataset._pack:
            return "bare" if len(self.arrays) == 1 else "tuple"
        return None

    def __repr__(self):
        shapes = ", ".join(str(tuple(a.shape)) for a in self.arrays)
        return f"{type(self).__name__}({len(self)} samples; arrays {shapes})"


class ArrayDataset(TensorDataset):
    """Like ``TensorDataset``, but one array gives bare samples: ``ArrayDataset(x)[i] is x[i]``
    (handy for autoencoders), and two or more give tuples as ``TensorDataset`` does."""

    def _pack(self, parts):
        return parts[0] if len(parts) == 1 else tuple(parts)


class Subset(Dataset):
    """The samples of ``dataset`` at ``indices``, in that order. Has ``__getitems__`` exactly when
    the underlying dataset does (batched fetches then map the indices and make one call)."""

    def __init__(self, dataset, indices):
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = len(dataset)
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            raise IndexError(f"Subset: indices must lie in [0, {n}) for a dataset of {n} samples, "
                             f"got values from {idx.min()} to {idx.max()}")
        self.dataset = dataset
        self.indices = idx
        base = getattr(dataset, "__getitems__", None)
        if base is not None:
            # bound per instance: only datasets that can fetch batches advertise __getitems__
            self.__getitems__ = lambda indices: base(idx[np.asarray(indices, dtype=np.int64)])

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self.dataset[int(self.indices[index])]
        return [self.dataset[int(i)] for i in self.indices[index]]

    def __len__(self) -> int:
        return int(self.indices.size)

    def __repr__(self):
        return f"Subset({len(self)} of {len(self.dataset)} samples)"


def _split_lengths(lengths: Sequence, n: int) -> list[int]:
    lengths = list(lengths)
    if not lengths:
        raise ValueError("random_split: lengths is empty")
    if any(x < 0 for x in lengths):
        raise ValueError(f"random_split: lengths must be non-negative, got {lengths}")
    if all(isinstance(x, (int, np.integer)) for x in lengths):
        if sum(lengths) != n:
            raise ValueError(f"random_split: lengths {lengths} sum to {sum(lengths)}, "
                             f"but the dataset has {n} samples")
        return [int(x) for x in lengths]
    total = float(sum(lengths))
    if not math.isclose(total, 1.0, abs_tol=1e-6) or any(x > 1 for x in lengths):
        raise ValueError(f"random_split: fractions {lengths} must each be in [0, 1] and sum to 1 "
                         f"(they sum to {total}); or pass integer lengths summing to {n}")
    counts = [int(math.floor(n * f)) for f in lengths]
    for i in range(n - sum(counts)):  # hand out the remainder one by one, in order
        counts[i % len(counts)] += 1
    return counts


def random_split(dataset, lengths, generator=None) -> list[Subset]:
    """Split ``dataset`` into non-overlapping random ``Subset``s.

    ``lengths``: integer sizes summing to ``len(dataset)``, or fractions summing to 1 (each part gets
    ``floor(n * f)`` samples and the remainder goes one by one to the first parts). The permutation is
    drawn from ``generator`` (a ``numpy.random.Generator`` or a ``dw.Generator``), by default the
    shared ``deepwise.random.generator()``, so ``deepwise.manual_seed`` makes the split reproducible.
    """
    n = len(dataset)
    counts = _split_lengths(lengths, n)
    gen = as_numpy_generator(generator, "random_split") if generator is not None else rng()
    perm = gen.permutation(n)
    bounds = np.cumsum([0, *counts])
    return [Subset(dataset, perm[bounds[i]:bounds[i + 1]]) for i in range(len(counts))]
