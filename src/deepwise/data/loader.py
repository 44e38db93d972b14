"""``DataLoader``: batches from a dataset, optionally prepared ahead in a background thread.

One epoch = one ``iter(loader)``. When the iterator is created, in the calling thread, the loader

1. calls ``set_epoch(epoch)`` on its sampler (and batch sampler) when they have it — the hook for a
   distributed sampler that yields this rank's indices and reshuffles per epoch;
2. draws the epoch's batches of indices (so a ``RandomSampler`` permutation comes from
   ``deepwise.random.generator()`` at a well-defined moment);
3. draws one seed for a per-epoch generator that random transforms running inside the fetch get from
   ``deepwise.data.rng()`` (why, and how: ``deepwise.data.randomness``).

Batches are then fetched — in the calling thread (``prefetch=0``) or by a daemon thread that keeps up
to ``prefetch`` batches ready in a bounded queue. Both give identical batches.

In-memory arrays take a shorter road. When the dataset is a ``TensorDataset`` / ``ArrayDataset``
without a transform (or a ``Subset`` of one) and no ``collate_fn`` is given, a batch is nothing but
one row take per array: the epoch's indices are checked against the dataset size once, in one
vectorised comparison (and mapped through the subsets once), and each batch is then ``array[idx]``
wrapped as a Tensor, in the calling thread. No prefetch thread is started for such a dataset: a take
of a few rows costs less than handing a batch over between threads (which also compete for the
GIL), so ``prefetch`` only applies to datasets with real per-sample work. The batches, their order
under a seed, ``drop_last``, the dtype policy and the shared generator's stream are exactly those of
the general path; an out-of-range index leaves the shortcut, so the general path raises its error at
the batch that holds it.
"""

from __future__ import annotations

import queue
import threading

import numpy as np

from deepwise import backend
from deepwise.creation import as_numpy_generator
from deepwise.data import randomness
from deepwise.data.collate import default_collate, default_convert, to_default_dtype
from deepwise.data.dataset import IterableDataset, Subset, TensorDataset
from deepwise.data.sampler import BatchSampler, RandomSampler, SequentialSampler, is_lazy
from deepwise.data.streams import StreamBatches, StreamIterator, convert_sample
from deepwise.data.workers import WorkerPool, get_worker_info
from deepwise.tensor import Tensor

__all__ = ["DataLoader", "get_worker_info"]


class _SampleFetch:
    """``batch_size=None``: a "batch" is one index, its sample converted on its own (``collate_fn``,
    by default ``convert_sample``: arrays become Tensors, nothing is stacked)."""

    def __init__(self, dataset, collate_fn):
        self.dataset = dataset
        self.convert = collate_fn if collate_fn is not None else convert_sample

    def __call__(self, indices):
        return self.convert(self.dataset[int(indices[0])])


def _make_fetch(dataset, collate_fn):
    """indices (int64 array) -> batch. Refers to the dataset, never to an iterator (see close())."""
    batched = getattr(dataset, "__getitems__", None) if collate_fn is None else None
    if batched is not None:
        def fetch(indices):
            return default_convert(batched(indices))
    else:
        collate = collate_fn if collate_fn is not None else default_collate

        def fetch(indices):
            return collate([dataset[int(i)] for i in indices])
    return fetch


class DataLoader:
    """Iterate over ``dataset`` in batches of Tensors.

    Args:
        dataset: has ``__len__`` and ``__getitem__``; with ``__getitems__(indices)`` (like
            ``TensorDataset``) a whole batch is fetched in one call — no Python loop per sample. Or an
            ``IterableDataset``, a stream batched as it comes (``deepwise.data.streams``): no sampler or
            shuffle then, ``batch_size=None`` delivers single samples, and each worker process iterates
            its own copy (``get_worker_info()`` inside ``__iter__`` says which share is its own).
        batch_size: samples per batch (the last batch may be smaller unless ``drop_last``); None turns
            batching off: each sample the sampler picks comes alone, its arrays made Tensors.
        shuffle: a new random order every epoch (a ``RandomSampler`` drawing from
            ``deepwise.random.generator()``; ``deepwise.manual_seed`` makes it reproducible).
        sampler: decides the indices and order of an epoch (e.g. a distributed sampler yielding only
            this rank's share). If it has ``set_epoch(epoch)``, the loader calls it before every epoch
            with the count of epochs started so far (0, 1, ...); ``loader.set_epoch(n)`` sets the next
            one (when resuming). Not allowed together with ``shuffle=True``.
        batch_sampler: yields whole batches of indices; excludes batch_size/shuffle/sampler/drop_last.
        drop_last: drop the final incomplete batch.
        collate_fn: turns a *list of samples* into a batch. When given, samples are fetched one by
            one with ``dataset[i]``. The default stacks arrays/numbers into Tensors (float64 ->
            float32, Python int -> int64), tuples/lists -> tuples, dicts -> dicts; and uses the
            dataset's ``__getitems__`` when it has one.
        prefetch: number of batches a background (daemon) thread prepares ahead; 0 fetches in the
            calling thread. Errors raised while fetching are re-raised in the loop that consumes the
            batches, with their original traceback. Leaving a loop early stops the thread. Plain
            in-memory array datasets (no transform, no collate_fn) are always fetched in the calling
            thread: their batch is a row take, cheaper than a thread hand-off (module docstring).
        num_workers: > 0 fetches batches in that many worker processes (``deepwise.data.workers``:
            seeded per worker, delivered in order, errors re-raised here with the worker's traceback).
        prefetch_factor: batches each worker keeps ready (2 when workers run).
        persistent_workers: keep the worker processes from one epoch to the next.
        worker_init_fn: called in each worker with its id, after seeding, before any fetch.
        generator: a ``numpy.random.Generator`` or ``dw.Generator`` for shuffling and worker seeds.
        timeout: seconds to wait for a batch from the workers before raising (0: forever).
        multiprocessing_context: "fork", "spawn", "forkserver" or a context (default: fork where
            the platform has it).
        pin_memory, pin_memory_device, in_order: PyTorch's arguments, accepted; batches are always
            delivered in order, and host batches need no pinning on deepwise's CuPy path.
    """

    def __init__(self, dataset, batch_size: int | None = 1, shuffle: bool | None = None, sampler=None,
                 batch_sampler=None, num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None, multiprocessing_context=None,
                 generator=None, *, prefetch_factor: int | None = None, persistent_workers: bool = False,
                 pin_memory_device: str = "", in_order: bool = True, prefetch: int = 2):
        shuffle = bool(shuffle)
        if isinstance(num_workers, bool) or not isinstance(num_workers, (int, np.integer)) or num_workers < 0:
            raise ValueError(f"DataLoader: num_workers must be an int >= 0 (0 loads in the main process), "
                             f"got {num_workers!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("DataLoader: prefetch_factor option could only be specified in multiprocessing; "
                             "let num_workers > 0 to enable multiprocessing, otherwise set prefetch_factor "
                             "to None")
        if num_workers == 0 and persistent_workers:
            raise ValueError("DataLoader: persistent_workers option needs num_workers > 0")
        if prefetch_factor is not None and (isinstance(prefetch_factor, bool) or prefetch_factor < 1):
            raise ValueError(f"DataLoader: prefetch_factor must be an int >= 1, got {prefetch_factor!r}")
        if timeout < 0:
            raise ValueError(f"DataLoader: timeout option should be non-negative, got {timeout!r}")
        if worker_init_fn is not None and not callable(worker_init_fn):
            raise TypeError(f"DataLoader: worker_init_fn must be callable, got {type(worker_init_fn).__name__}")
        self._stream = isinstance(dataset, IterableDataset)
        self._unbatched = False  # batch_size=None on a map-style dataset
        if self._stream:
            _check_stream_options(shuffle, sampler, batch_sampler, batch_size)
        elif batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("DataLoader: batch_sampler already decides batches; do not also pass "
                                 "batch_size, shuffle, sampler or drop_last")
        elif sampler is not None and shuffle:
            raise ValueError("DataLoader: pass either sampler= or shuffle=True, not both (the sampler "
                             "decides the order)")
        if isinstance(prefetch, bool) or not isinstance(prefetch, (int, np.integer)) or prefetch < 0:
            raise ValueError(f"DataLoader: prefetch must be an int >= 0 (0 disables it), got {prefetch!r}")
        if collate_fn is not None and not callable(collate_fn):
            raise TypeError(f"DataLoader: collate_fn must be callable, got {type(collate_fn).__name__}")
        self.dataset = dataset
        self.generator = generator
        self._np_generator = None if generator is None else as_numpy_generator(generator)
        if self._stream:  # the stream decides the order: no sampler
            self.batch_size = None if batch_size is None else int(batch_size)
        elif batch_sampler is None:
            if sampler is None:
                sampler = (RandomSampler(dataset, generator=self._np_generator) if shuffle
                           else SequentialSampler(dataset))
            if batch_size is None:  # no automatic batching: each index is fetched and delivered alone
                if drop_last:
                    raise ValueError("DataLoader: batch_size=None option disables auto-batching and is mutually "
                                     "exclusive with drop_last")
                batch_sampler = BatchSampler(sampler, 1, False)
                self.batch_size = None
                self._unbatched = True
            else:
                batch_sampler = BatchSampler(sampler, batch_size, drop_last)
                self.batch_size = int(batch_size)
        else:
            self.batch_size = None
        self.sampler = sampler if sampler is not None else getattr(batch_sampler, "sampler", None)
        self.batch_sampler = batch_sampler
        self.drop_last = bool(drop_last)
        self.collate_fn = collate_fn
        self.prefetch = int(prefetch)
        self.num_workers = int(num_workers)
        self.prefetch_factor = 2 if prefetch_factor is None and num_workers > 0 else prefetch_factor
        self.persistent_workers = bool(persistent_workers)
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = multiprocessing_context
        self.timeout = float(timeout)
        # Batches are NumPy arrays in host memory, which CuPy copies to a GPU from wherever they are:
        # there is no pinned staging buffer to fill, so pin_memory is accepted and changes nothing.
        self.pin_memory = bool(pin_memory)
        self.pin_memory_device = pin_memory_device
        self.in_order = bool(in_order)
        self._pool = None  # the persistent worker processes
        self._epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The epoch number the next ``iter(loader)`` passes to ``sampler.set_epoch``."""
        self._epoch = int(epoch)

    def _fetch(self):
        """indices -> what the loop gets: a collated batch, or one sample with ``batch_size=None``."""
        if self._unbatched:
            return _SampleFetch(self.dataset, self.collate_fn)
        return _make_fetch(self.dataset, self.collate_fn)

    def _stream_epoch(self, epoch):
        """One epoch of an ``IterableDataset`` (``deepwise.data.streams``)."""
        seed = randomness.child_seed()
        if self.num_workers == 0:
            batches = StreamBatches(self.dataset, self.batch_size, self.drop_last, self.collate_fn)
            return StreamIterator(batches, epoch, np.random.default_rng(seed))
        pool = self._start_pool(StreamBatches(self.dataset, self.batch_size, self.drop_last, self.collate_fn))
        return pool.run_stream_epoch(epoch, seed, own_pool=not self.persistent_workers)

    def _announce_epoch(self, epoch: int) -> None:
        # the batch sampler's set_epoch (deepwise's BatchSampler forwards it to its sampler) or,
        # when it has none, the sampler's: each sampler hears of every epoch exactly once
        for s in (self.batch_sampler, self.sampler):
            hook = getattr(s, "set_epoch", None)
            if hook is not None:
                hook(epoch)
                return

    def _draw_plan(self):
        """The epoch's batches as ``(indices, offsets)`` (see ``BatchSampler.epoch_plan``), drawn now."""
        sampler = self.batch_sampler
        if getattr(type(sampler), "epoch_batches", None) is BatchSampler.epoch_batches:
            return sampler.epoch_plan()  # deepwise's BatchSampler, not a subclass redefining it
        draw = getattr(sampler, "epoch_batches", None)
        if draw is not None:
            batches = list(draw())
        else:
            batches = [np.asarray(b, dtype=np.int64).reshape(-1) for b in sampler]
        offsets = [0]
        for b in batches:
            offsets.append(offsets[-1] + len(b))
        indices = np.concatenate(batches) if batches else np.zeros(0, dtype=np.int64)
        return indices, offsets

    def __iter__(self):
        epoch = self._epoch
        self._epoch += 1
        if self._stream:
            return self._stream_epoch(epoch)
        self._announce_epoch(epoch)
        if is_lazy(self.batch_sampler.sampler if hasattr(self.batch_sampler, "sampler") else self.batch_sampler):
            seed = randomness.child_seed()
            batches = _LazyBatches(self.batch_sampler)
            if self.num_workers > 0:
                return self._worker_epoch(batches, seed)
            gen = np.random.default_rng(seed)
            return _SerialIterator(batches, self._fetch(), gen)
        indices, offsets = self._draw_plan()
        # the seed of the epoch's generator for random transforms (see deepwise.data.randomness), drawn on
        # every path so that the shared generator moves on the same way whichever path runs
        seed = randomness.child_seed()
        if self.num_workers > 0:
            return self._worker_epoch([indices[a:b] for a, b in zip(offsets, offsets[1:])], seed)
        source = None if self._unbatched else _row_source(self.dataset, self.collate_fn)
        if source is not None:
            taker = _TakeIterator.for_epoch(indices, offsets, *source)
            if taker is not None:
                return taker
        batches = [indices[a:b] for a, b in zip(offsets, offsets[1:])]
        gen = np.random.default_rng(seed)
        fetch = self._fetch()
        if self.prefetch == 0:
            return _SerialIterator(batches, fetch, gen)
        return _PrefetchIterator(batches, fetch, gen, self.prefetch)

    def _start_pool(self, fetch):
        """The worker processes: the persistent ones when they run already, else new ones."""
        pool = self._pool
        if pool is None:
            gen = self._np_generator if self._np_generator is not None else randomness.rng()
            base_seed = int(gen.integers(0, 2**62))
            pool = WorkerPool(self.dataset, fetch, self.num_workers, base_seed, self.worker_init_fn,
                              self.prefetch_factor, self.timeout, self.multiprocessing_context)
            if self.persistent_workers:
                self._pool = pool
        return pool

    def _worker_epoch(self, batches, seed):
        pool = self._start_pool(self._fetch())
        return pool.run_epoch(batches, seed, own_pool=not self.persistent_workers)

    def __len__(self) -> int:
        if self._stream:  # as PyTorch: from the dataset's own length, when it has one
            try:
                n = len(self.dataset)
            except TypeError:
                raise TypeError(f"DataLoader: the {type(self.dataset).__name__} (an IterableDataset) has no "
                                "__len__, so the number of batches is not known") from None
            if self.batch_size is None:
                return n
            return n // self.batch_size if self.drop_last else -(-n // self.batch_size)
        return len(self.batch_sampler)

    def __getstate__(self):  # the worker pool stays with the process that started it
        state = dict(self.__dict__)
        state["_pool"] = None
        return state

    def __repr__(self):
        if self._stream:
            return f"DataLoader({type(self.dataset).__name__} (a stream), batch_size={self.batch_size})"
        return (f"DataLoader({type(self.dataset).__name__} of {len(self.dataset)} samples, "
                f"batch_size={self.batch_size}, batches={len(self)}, prefetch={self.prefetch})")


def _check_stream_options(shuffle, sampler, batch_sampler, batch_size):
    """An ``IterableDataset`` gives its samples in its own order: no sampler, no shuffle."""
    for name, value in (("shuffle", shuffle or None), ("sampler", sampler), ("batch_sampler", batch_sampler)):
        if value is not None:
            raise ValueError(f"DataLoader with IterableDataset: expected unspecified {name} option, but got "
                             f"{name}={value!r} (the dataset's __iter__ decides the order; shuffle inside it)")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or batch_size <= 0):
        raise ValueError(f"DataLoader: batch_size must be a positive int or None, got {batch_size!r}")


def _row_source(dataset, collate_fn):
    """``(arrays, pack, maps, n)`` when every batch of ``dataset`` is a plain row take from in-memory
    arrays, else None. ``n``: the size indices are checked against; ``maps``: the index arrays of the
    ``Subset`` layers, outermost first; ``pack``: "tuple", or "bare" (one array of an ``ArrayDataset``).
    A subclass that redefines how batches are fetched or packed keeps the general path."""
    if collate_fn is not None:
        return None
    n = len(dataset)
    maps = []
    base = dataset
    while type(base) is Subset:
        maps.append(base.indices)
        base = base.dataset
    if not isinstance(base, TensorDataset):
        return None
    pack = base.row_take_layout()
    if pack is None:
        return None
    return base.arrays, pack, maps, n


class _TakeIterator:
    """One epoch of a plain array dataset: each batch is one row take per array (see the module
    docstring). Built by ``for_epoch``, which returns None when an index is out of range."""

    def __init__(self, columns, offsets, pack):
        self._columns = columns  # (array, the epoch's indices on the array's device)
        self._offsets = offsets
        self._pack = pack
        self._n = len(offsets) - 1
        self._next = 0

    @classmethod
    def for_epoch(cls, flat, offsets, arrays, pack, maps, n):
        """``flat``: the epoch's indices; batch ``k`` is ``flat[offsets[k]:offsets[k + 1]]``."""
        if flat.size and (int(np.minimum.reduce(flat)) < -n or int(np.maximum.reduce(flat)) >= n):
            return None  # the general path raises, at the batch that holds the bad index
        for indices in maps:  # Subset layers: one vectorised lookup per epoch
            flat = indices[flat]
        on_device = {}
        columns = []
        for a in arrays:
            if isinstance(a, np.ndarray):
                idx = flat
            else:
                device = backend.device_of(a)
                key = (device.type, device.index)
                if key not in on_device:
                    on_device[key] = backend.to_device(flat, device)
                idx = on_device[key]
            columns.append((a, idx))
        return cls(columns, offsets, pack)

    def __iter__(self):
        return self

    def __len__(self):
        return self._n - self._next

    def __next__(self):
        k = self._next
        if k >= self._n:
            raise StopIteration
        self._next = k + 1
        start, stop = self._offsets[k], self._offsets[k + 1]
        # the dtypes default_convert gives
        out = [Tensor._make(to_default_dtype(a[idx[start:stop]])) for a, idx in self._columns]
        return out[0] if self._pack == "bare" else tuple(out)

    def close(self) -> None:
        """End the epoch early (nothing runs in the background)."""
        self._next = self._n


class _LazyBatches:
    """The batches of an epoch too long to draw at once, drawn as they are consumed."""

    def __init__(self, batch_sampler):
        self._batch_sampler = batch_sampler

    def __len__(self):
        return len(self._batch_sampler)

    def __iter__(self):
        return (np.asarray(b, dtype=np.int64).reshape(-1) for b in self._batch_sampler)


class _SerialIterator:
    def __init__(self, batches, fetch, gen):
        self._n = len(batches)
        self._batches = iter(batches)
        self._fetch = fetch
        self._gen = gen
        self._next = 0

    def __iter__(self):
        return self

    def __len__(self):
        return self._n - self._next

    def __next__(self):
        if self._next >= self._n:
            raise StopIteration
        indices = next(self._batches)
        self._next += 1
        with randomness.using(self._gen):
            return self._fetch(indices)


_END = object()


class _WorkerError:
    def __init__(self, exc: BaseException, batch: int):
        self.exc = exc
        self.batch = batch


def _put(q: queue.Queue, item, stop: threading.Event) -> bool:
    while not stop.is_set():
        try:
            q.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _produce(batches, fetch, gen, q: queue.Queue, stop: threading.Event) -> None:
    """The prefetch thread. Holds no reference to the iterator, so a dropped iterator is collected
    (and its __del__ stops this thread) as soon as the consumer lets go of it."""
    k = 0
    try:
        with randomness.using(gen):
            for k, indices in enumerate(batches):  # noqa: B007 - k is reported on error
                if stop.is_set():
                    return
                if not _put(q, fetch(indices), stop):
                    return
        _put(q, _END, stop)
    except BaseException as exc:  # handed to the consumer, which re-raises it
        _put(q, _WorkerError(exc, k), stop)


class _PrefetchIterator:
    def __init__(self, batches, fetch, gen, depth: int):
        self._n = len(batches)
        self._received = 0
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=_produce, args=(batches, fetch, gen, self._queue, self._stop),
                                        name="deepwise-DataLoader-prefetch", daemon=True)
        self._thread.start()

    def __iter__(self):
        return self

    def __len__(self):
        return self._n - self._received

    def _get(self):
        while True:
            try:
                return self._queue.get(timeout=0.1)
            except queue.Empty:
                if not self._thread.is_alive() and self._queue.empty():
                    raise RuntimeError("DataLoader: the prefetch thread stopped without delivering a batch "
                                       "or an error") from None

    def __next__(self):
        if self._done:
            raise StopIteration
        item = self._get()
        if item is _END:
            self.close()
            raise StopIteration
        if isinstance(item, _WorkerError):
            self.close()
            exc = item.exc
            if hasattr(exc, "add_note"):
                exc.add_note(f"(raised in the DataLoader prefetch thread while fetching batch {item.batch}; "
                             "use prefetch=0 to fetch in the calling thread)")
            raise exc.with_traceback(exc.__traceback__)
        self._received += 1
        return item

    def close(self) -> None:
        """Stop the prefetch thread and wait for it (called at the end, on error, and on garbage
        collection, e.g. after ``break``)."""
        if self._done:
            return
        self._done = True
        self._stop.set()
        while True:  # unblock a producer waiting on a full queue, and free the batches
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10.0)

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing useful left to do
            pass
