"""Worker processes of a ``DataLoader(num_workers=N)``: batches fetched in parallel, delivered in order.

The main process deals batch ``k`` to worker ``k % N`` over that worker's index queue, keeping at
most ``prefetch_factor`` batches outstanding per worker, and reads results from one shared queue;
results that come back early wait in a buffer so the loop sees batches in sampler order.

Each worker, when it starts, seeds its randomness from ``base_seed + worker_id`` (``base_seed`` is one
draw from the loader's generator, or from deepwise's shared one, taken in the main process):
``deepwise.manual_seed``, NumPy's legacy global generator and Python's ``random``, as PyTorch seeds
its workers; random transforms (``deepwise.data.rng()``) draw from a generator seeded by
``(epoch seed, worker_id)``. Then ``worker_init_fn(worker_id)`` runs, and ``get_worker_info()``
answers inside the worker. An error while fetching is sent back with its formatted traceback and
raised in the main process, naming the worker and the batch; a worker that dies is reported with
its exit code. Workers stop when an epoch ends (or, with ``persistent_workers``, when the loader is
garbage collected): a None on each index queue, a join, and a terminate for any that hang.
"""

from __future__ import annotations

import multiprocessing
import pickle
import queue
import random as _pyrandom
import traceback
from dataclasses import dataclass

import numpy as np

from deepwise import random as dw_random
from deepwise.data import randomness
from deepwise.data.streams import StreamEnd

_POLL_S = 0.1  # how often a waiting main process checks that its workers are alive


@dataclass(frozen=True)
class WorkerInfo:
    """What ``get_worker_info()`` returns inside a worker process."""

    id: int
    num_workers: int
    seed: int
    dataset: object


_worker_info = None


def get_worker_info():
    """The ``WorkerInfo`` of this DataLoader worker process, or None in the main process."""
    return _worker_info


class _Failure:
    """An exception raised in a worker, carried back as text (its class may not pickle)."""

    def __init__(self, exc: BaseException, worker_id: int):
        self.type_name = type(exc).__name__
        self.exc_type = type(exc)
        self.worker_id = worker_id
        self.text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    def __reduce__(self):
        state = {"type_name": self.type_name, "worker_id": self.worker_id, "text": self.text}
        try:  # the class itself travels when it pickles by reference (builtins and importable ones)
            pickle.dumps(self.exc_type)
            state["exc_type"] = self.exc_type
        except Exception:
            state["exc_type"] = RuntimeError
        return (_rebuild_failure, (state,))

    def error(self, batch: int) -> BaseException:
        message = (f"Caught {self.type_name} in DataLoader worker process {self.worker_id} while fetching "
                   f"batch {batch}.\nOriginal Traceback (most recent call last) in the worker:\n{self.text}")
        try:
            return self.exc_type(message)
        except Exception:  # an exception class whose constructor wants other arguments
            return RuntimeError(message)


def _rebuild_failure(state):
    f = object.__new__(_Failure)
    f.__dict__.update(state)
    return f


def _worker_loop(worker_id, num_workers, dataset, fetch, index_queue, result_queue, base_seed, worker_init_fn):
    global _worker_info
    seed = base_seed + worker_id
    dw_random.manual_seed(seed)
    np.random.seed(seed % 2**32)
    _pyrandom.seed(seed)
    _worker_info = WorkerInfo(worker_id, num_workers, seed, dataset)
    try:
        if worker_init_fn is not None:
            worker_init_fn(worker_id)
    except BaseException as exc:  # reported in the main process
        result_queue.put((-1, _Failure(exc, worker_id)))
        return
    gen = None
    while True:
        try:
            item = index_queue.get()
        except (KeyboardInterrupt, EOFError):
            return
        if item is None:
            return
        epoch_seed, k, indices = item
        if gen is None or gen[0] != epoch_seed:
            gen = (epoch_seed, np.random.default_rng([epoch_seed, worker_id]))
        try:
            with randomness.using(gen[1]):
                batch = fetch(indices)
        except BaseException as exc:  # reported in the main process
            result_queue.put((k, _Failure(exc, worker_id)))
            continue
        result_queue.put((k, batch))


class WorkerPool:
    """``num_workers`` processes that fetch batches (see the module docstring)."""

    def __init__(self, dataset, fetch, num_workers, base_seed, worker_init_fn=None, prefetch_factor=2,
                 timeout=0.0, context=None):
        if context is None:
            method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
            context = multiprocessing.get_context(method)
        elif isinstance(context, str):
            context = multiprocessing.get_context(context)
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.timeout = float(timeout)
        self._results = context.Queue()
        self._index_queues = []
        self._workers = []
        for wid in range(num_workers):
            iq = context.Queue()
            w = context.Process(
                target=_worker_loop, name=f"deepwise-DataLoader-worker-{wid}",
                args=(wid, num_workers, dataset, fetch, iq, self._results, base_seed, worker_init_fn),
                daemon=True)
            w.start()
            self._index_queues.append(iq)
            self._workers.append(w)
        self._closed = False

    @property
    def pids(self):
        return [w.pid for w in self._workers]

    def run_epoch(self, batches, epoch_seed, own_pool):
        """An iterator over the epoch's batches, in order; ``own_pool``: shut the workers down when
        the epoch ends (else they wait for the next epoch: ``persistent_workers``)."""
        return _EpochIterator(self, batches, epoch_seed, own_pool)

    def run_stream_epoch(self, epoch, epoch_seed, own_pool):
        """An iterator over one epoch of an ``IterableDataset`` whose ``fetch`` is a
        ``deepwise.data.streams.StreamBatches``: each request asks a worker for the next batch of its
        own stream (see ``_StreamEpochIterator``)."""
        return _StreamEpochIterator(self, epoch, epoch_seed, own_pool)

    def _get(self, wait_s):
        try:
            return self._results.get(timeout=wait_s)
        except queue.Empty:
            for wid, w in enumerate(self._workers):
                if not w.is_alive():
                    self.shutdown()
                    raise RuntimeError(
                        f"DataLoader worker {wid} (pid {w.pid}) exited unexpectedly with exit code "
                        f"{w.exitcode}" + (" (killed by a signal, perhaps out of memory)"
                                            if w.exitcode is not None and w.exitcode < 0 else "")
                    ) from None
            return None

    def shutdown(self):
        if self._closed:
            return
        self._closed = True
        for iq in self._index_queues:
            try:
                iq.put(None)
            except (OSError, ValueError):
                pass
        for w in self._workers:
            w.join(timeout=5.0)
            if w.is_alive():
                w.terminate()
                w.join(timeout=1.0)
        for q in [*self._index_queues, self._results]:
            q.cancel_join_thread()
            q.close()

    def __del__(self):
        try:
            self.shutdown()
        except Exception:  # interpreter shutdown
            pass


class _EpochIterator:
    def __init__(self, pool, batches, epoch_seed, own_pool=False):
        self._pool = pool
        self._n = len(batches)
        self._batches = iter(batches)
        self._seed = epoch_seed
        self._sent = 0
        self._next = 0
        self._buffer = {}
        self._done = False
        self.own_pool = own_pool
        for _ in range(pool.prefetch_factor * pool.num_workers):
            self._send()

    def _send(self):
        k = self._sent
        if k >= self._n:
            return
        self._pool._index_queues[k % self._pool.num_workers].put((self._seed, k, next(self._batches)))
        self._sent += 1

    def __iter__(self):
        return self

    def __len__(self):
        return self._n - self._next

    def __next__(self):
        if self._done or self._next >= self._n:
            self.close()
            raise StopIteration
        batch = self._receive(self._next)
        self._next += 1
        self._send()
        return batch

    def _receive(self, k):
        """Wait for the answer to request ``k`` (answers to later requests are kept for their turn);
        a worker's failure, or waiting past ``timeout``, ends the epoch with an error."""
        waited = 0.0
        while k not in self._buffer:
            got = self._pool._get(_POLL_S)
            if got is None:
                waited += _POLL_S
                if self._pool.timeout and waited >= self._pool.timeout:
                    self.close(force=True)
                    raise RuntimeError(f"DataLoader timed out after {self._pool.timeout} s waiting for "
                                       f"batch {k} from its workers")
                continue
            j, item = got
            if isinstance(item, _Failure):
                self.close(force=True)
                raise item.error(j if j >= 0 else k)
            self._arrived(j, item)
            self._buffer[j] = item
        return self._buffer.pop(k)

    def _arrived(self, j, item):
        """Called as the answer to request ``j`` comes in (the stream iterator notes ended streams)."""

    def close(self, force=False):
        if self._done:
            return
        self._done = True
        if self.own_pool or force:
            self._pool.shutdown()
        else:  # persistent workers: drain what is still coming, so the next epoch starts clean
            outstanding = self._sent - self._next - len(self._buffer)
            while outstanding > 0:
                got = self._pool._get(_POLL_S)
                if got is not None:
                    outstanding -= 1
            self._buffer.clear()

    def __del__(self):
        try:
            self.close()
        except Exception:  # interpreter shutdown
            pass


class _StreamEpochIterator(_EpochIterator):
    """One epoch of an ``IterableDataset`` over the workers, each iterating its own copy of it.

    Request ``k`` asks the next worker in turn that still has samples for its next batch; batches are
    delivered in the order they were requested, so workers take turns batch by batch, and a worker
    whose stream has ended (it answers ``StreamEnd``) is passed over from then on -- the order
    PyTorch's loader gives. The epoch ends when every worker's stream has ended.
    """

    def __init__(self, pool, epoch, epoch_seed, own_pool=False):
        self._active = [True] * pool.num_workers
        self._turn = 0
        self._owner = {}
        self._epoch = epoch
        super().__init__(pool, (), epoch_seed, own_pool)  # which sends the first requests

    def _send(self):
        n = self._pool.num_workers
        for _ in range(n):
            wid = self._turn
            self._turn = (wid + 1) % n
            if self._active[wid]:
                k = self._sent
                self._pool._index_queues[wid].put((self._seed, k, self._epoch))
                self._owner[k] = wid
                self._sent += 1
                return

    def __len__(self):
        raise TypeError("the length of an epoch over an IterableDataset is not known in advance")

    def __next__(self):
        while True:
            if self._done or self._next >= self._sent:  # every worker's stream has ended
                self.close()
                raise StopIteration
            k = self._next
            item = self._receive(k)
            del self._owner[k]
            self._next += 1
            self._send()
            if not isinstance(item, StreamEnd):
                return item

    def _arrived(self, j, item):
        if isinstance(item, StreamEnd):  # no more requests for that worker this epoch
            self._active[self._owner[j]] = False
