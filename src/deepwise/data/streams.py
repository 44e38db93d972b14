"""Batches from an ``IterableDataset``: the samples of a stream grouped as they come.

A map-style dataset is read by index, so the ``DataLoader`` decides the order; a stream decides its
own. ``StreamBatches`` holds the stream and the batching settings and, called, returns the next
batch (``STREAM_END`` once the stream is exhausted). The same object serves the main process
(``StreamIterator``, ``num_workers=0``) and each worker process, which receives its own copy of it
and of the dataset: there ``iter(dataset)`` runs inside the worker, where ``get_worker_info()``
tells the dataset which share of the stream is its own (``deepwise.data.workers`` deals the requests
to the workers in turn and delivers the batches in the order they were asked for).

With ``batch_size=None`` each sample is delivered on its own, converted by ``collate_fn`` (default:
``convert_sample``: arrays become Tensors, numbers and strings stay as they are); otherwise
``batch_size`` consecutive samples are collated (``default_collate``) and, with ``drop_last``, a
final shorter batch of a stream is dropped -- of each worker's stream, as in PyTorch, when workers
run.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping

import numpy as np

from deepwise import backend
from deepwise.data import randomness
from deepwise.data.collate import default_collate, default_convert


def convert_sample(sample):
    """One unbatched sample as PyTorch delivers it: arrays and NumPy scalars (at any depth of
    tuples, lists and dicts) become Tensors in deepwise's default dtypes; Python numbers, strings and
    other objects stay."""
    if backend.is_array(sample) or (isinstance(sample, np.generic) and not isinstance(sample, (np.str_, np.bytes_))):
        return default_convert(sample)  # NumPy scalars too, as PyTorch converts them
    if isinstance(sample, Mapping):
        return {k: convert_sample(v) for k, v in sample.items()}
    if isinstance(sample, tuple) and hasattr(sample, "_fields"):
        return type(sample)(*(convert_sample(v) for v in sample))
    if isinstance(sample, (tuple, list)):
        return type(sample)(convert_sample(v) for v in sample)
    return sample


class StreamEnd:
    """What ``StreamBatches`` returns once its stream is exhausted (a class, so that it is still
    recognised after travelling back from a worker process)."""

    def __repr__(self):
        return "STREAM_END"


STREAM_END = StreamEnd()


class StreamBatches:
    """``batches(epoch)`` -> the next batch of the stream of ``dataset`` for that epoch; a new epoch
    number starts a new ``iter(dataset)``."""

    def __init__(self, dataset, batch_size, drop_last, collate_fn):
        self.dataset = dataset
        self.batch_size = batch_size
        self.drop_last = bool(drop_last)
        if collate_fn is None:
            collate_fn = convert_sample if batch_size is None else default_collate
        self.collate = collate_fn
        self._epoch = None
        self._iterator = None

    def __getstate__(self):  # an iterator in progress stays in the process that made it
        state = dict(self.__dict__)
        state["_epoch"] = None
        state["_iterator"] = None
        return state

    def __call__(self, epoch):
        if epoch != self._epoch:
            self._epoch = epoch
            self._iterator = iter(self.dataset)
        if self._iterator is None:
            return STREAM_END
        if self.batch_size is None:
            for sample in self._iterator:
                return self.collate(sample)
        else:
            samples = list(itertools.islice(self._iterator, self.batch_size))
            if samples and not (self.drop_last and len(samples) < self.batch_size):
                return self.collate(samples)
        self._iterator = None  # exhausted: every later call of this epoch answers STREAM_END
        return STREAM_END


class StreamIterator:
    """One epoch of a stream in the calling process (``num_workers=0``). Random transforms in the
    dataset draw from the epoch's generator (``deepwise.data.randomness``)."""

    def __init__(self, batches: StreamBatches, epoch, gen):
        self._batches = batches
        self._epoch = epoch
        self._gen = gen
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        with randomness.using(self._gen):
            batch = self._batches(self._epoch)
        if isinstance(batch, StreamEnd):
            self._done = True
            raise StopIteration
        return batch

    def close(self) -> None:
        """End the epoch early."""
        self._done = True
