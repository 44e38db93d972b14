"""``nn.parallel.DistributedDataParallel``: one model, many processes, each on its own share of every
batch, all ending each step with the same weights.

At construction every rank checks that it holds the same parameters (names, shapes, dtypes) as
rank 0, then takes rank 0's parameters and buffers, so ranks that drew different random weights
start equal. Each backward then ends by averaging every gradient over the ranks, so each rank's
optimizer takes the same step. The average is done in a few large flat buffers (``bucket_cap_mb``
each), not one message per tensor: on MPI the cost of a message is mostly its latency.

A parameter that got no gradient on some rank (a branch that rank did not take) counts as zero
there, so all ranks still agree; one that got none on every rank keeps ``grad = None``.
``no_sync()`` skips the averaging, for gradient accumulation: the gradients gathered inside it are
averaged by the first backward after it.

How the averaging is triggered: ``forward`` passes the module's outputs through an identity op whose
backward asks the autograd engine to call back once the whole backward pass has finished
(``autograd.engine.queue_callback``). The averaging then runs after the pass, not overlapped with it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from deepwise import backend, distributed
from deepwise.autograd import engine, mode
from deepwise.autograd.function import Function
from deepwise.distributed import collectives
from deepwise.nn.module import Module
from deepwise.tensor import Tensor

__all__ = ["DataParallel", "DistributedDataParallel"]


class _SyncPoint(Function):
    """Identity on the outputs; its backward queues the gradient averaging for the pass's end."""

    @staticmethod
    def forward(ctx, x, *, owner):
        ctx.owner = owner
        return x

    @staticmethod
    def backward(ctx, g):
        ctx.owner._queue()
        return g


def _map_tensors(value, fn):
    if isinstance(value, Tensor):
        return fn(value)
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # namedtuple
        return type(value)(*(_map_tensors(v, fn) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_map_tensors(v, fn) for v in value)
    if isinstance(value, dict):
        return {k: _map_tensors(v, fn) for k, v in value.items()}
    return value


def _buckets(params, cap_bytes):
    """Parameters in order, grouped by dtype and device into runs of at most ``cap_bytes``."""
    buckets, current, size, key = [], [], 0, None
    for p in params:
        k = (p.dtype, str(p.device))
        nbytes = p.array.nbytes
        if current and (k != key or size + nbytes > cap_bytes):
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += nbytes
        key = k
    if current:
        buckets.append(current)
    return buckets


class DistributedDataParallel(Module):
    """Average gradients over the processes of ``deepwise.distributed`` after every backward.

    ``module``: the model (the same on every rank). ``broadcast_buffers``: also copy rank 0's buffers
    (BatchNorm's running statistics) to every rank at each forward in training, as PyTorch does.
    ``bucket_cap_mb``: the size of one flat all-reduce buffer. ``device_ids``, ``output_device``,
    ``find_unused_parameters``, ``gradient_as_bucket_view`` and ``static_graph`` are accepted for
    PyTorch programs and change nothing here (unused parameters are always handled). Its state dict
    holds the module's under ``module.``, as PyTorch's does.
    """

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0, broadcast_buffers: bool = True,
                 process_group=None, bucket_cap_mb: float = 25, find_unused_parameters: bool = False,
                 gradient_as_bucket_view: bool = False, static_graph: bool = False):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel: expected a deepwise nn.Module, got {type(module).__name__}")
        if not distributed.is_initialized():
            raise RuntimeError("DistributedDataParallel: call deepwise.distributed.init_process_group(backend='mpi') "
                               "before wrapping the model")
        if not bucket_cap_mb > 0:
            raise ValueError(f"DistributedDataParallel: bucket_cap_mb must be positive, got {bucket_cap_mb!r}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = bucket_cap_mb
        self.dim = dim
        self.require_backward_grad_sync = True
        self._queued = False
        self._check_same_parameters()
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = _buckets(self._params, int(bucket_cap_mb * 2**20))
        self._bucket_cache = {}
        self.sync_module_states()

    # ------------------------------------------------------------------ construction
    def _check_same_parameters(self):
        mine = [[name, list(p.shape), str(p.dtype)] for name, p in self.module.named_parameters()]
        mine += [["buffer " + name, list(b.shape), str(b.dtype)] for name, b in self.module.named_buffers()
                 if b is not None]
        everyone = [None] * distributed.get_world_size()
        distributed.all_gather_object(everyone, mine)
        reference = everyone[0]
        for rank, theirs in enumerate(everyone):
            if theirs == reference:
                continue
            for i in range(max(len(theirs), len(reference))):
                a = reference[i] if i < len(reference) else None
                b = theirs[i] if i < len(theirs) else None
                if a != b:
                    def show(x):
                        return "nothing" if x is None else f"{x[0]} {tuple(x[1])} {x[2]}"

                    raise ValueError(
                        f"DistributedDataParallel: rank {rank}'s model differs from rank 0's at entry {i}: "
                        f"rank 0 has {show(a)}, rank {rank} has {show(b)}. Every rank must build the same model.")

    def sync_module_states(self) -> None:
        """Copy rank 0's parameters and buffers to every rank (flat, one message per dtype run)."""
        tensors = list(self.module.parameters()) + [b for b in self.module.buffers() if b is not None]
        for bucket in _buckets(tensors, int(self.bucket_cap_mb * 2**20)):
            flat = np.concatenate([collectives.host_array(t.array).ravel() for t in bucket])
            distributed.broadcast(Tensor._make(flat), src=0)
            self._scatter(bucket, flat, into_grad=False)

    @staticmethod
    def _scatter(bucket, flat, into_grad, present=None):
        offset = 0
        for i, t in enumerate(bucket):
            n = t.array.size
            piece = flat[offset:offset + n].reshape(t.shape)
            offset += n
            xp = backend.get_array_module(t.array)
            if into_grad:
                if present is not None and not present[i]:
                    t.grad = None
                else:
                    t.grad = Tensor._make(xp.asarray(piece).copy())
            else:
                xp.copyto(t.array, xp.asarray(piece))

    # ------------------------------------------------------------------ forward / backward
    def forward(self, *args, **kwargs):
        world = distributed.get_world_size()
        if world > 1 and self.broadcast_buffers and self.training:
            self.sync_buffers()
        out = self.module(*args, **kwargs)
        if world > 1 and self.require_backward_grad_sync and mode.is_grad_enabled() and self._params:
            out = _map_tensors(out, lambda t: _SyncPoint.apply(t, owner=self) if t.requires_grad else t)
        return out

    def _queue(self):
        if not self._queued:
            self._queued = True
            engine.queue_callback(self._average_gradients)

    def _average_gradients(self) -> None:
        self._queued = False
        self.average_gradients()

    def average_gradients(self, params=None) -> None:
        """Make every ``.grad`` of ``params`` (default: all the module's trainable parameters) its mean
        over the ranks, missing gradients counting as zero; a parameter without a gradient on every
        rank keeps ``grad = None``. Every rank must call it with the same parameters. Backward calls it
        by itself; ``Trainer.fit`` calls it just before each optimizer step instead (for that
        optimizer's parameters), so gradient accumulation and custom ``train_step``s sync once per step."""
        if params is None:
            params, buckets = self._params, self._buckets
        else:
            params = [p for p in params if p.requires_grad]
            key = tuple(id(p) for p in params)
            buckets = self._bucket_cache.get(key)
            if buckets is None:
                buckets = self._bucket_cache[key] = _buckets(params, int(self.bucket_cap_mb * 2**20))
        world = distributed.get_world_size()
        if world == 1 or not params:
            return
        # one message per bucket: each bucket carries, after its gradients, one flag per parameter
        # (1 where this rank has a gradient), so the sums also say where some rank had one
        for bucket in buckets:
            dtype = bucket[0].array.dtype
            flat = np.concatenate([
                collectives.host_array(p.grad.array).ravel() if p.grad is not None
                else np.zeros(p.array.size, dtype=dtype) for p in bucket]
                + [np.array([p.grad is not None for p in bucket], dtype=dtype)])
            collectives.reduce_array(flat, "sum")
            present = flat[-len(bucket):] > 0
            if not present.any():
                continue
            grads = flat[:-len(bucket)]
            grads /= world
            self._scatter(bucket, grads, into_grad=True, present=present)

    def sync_buffers(self) -> None:
        """Copy rank 0's buffers (BatchNorm's running statistics) to every rank."""
        buffers = [b for b in self.module.buffers() if b is not None]
        for bucket in _buckets(buffers, int(self.bucket_cap_mb * 2**20)):
            flat = np.concatenate([collectives.host_array(b.array).ravel() for b in bucket])
            distributed.broadcast(Tensor._make(flat), src=0)
            self._scatter(bucket, flat, into_grad=False)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside: backward keeps gradients local (accumulate them); the next backward outside averages
        what was gathered."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    def extra_repr(self) -> str:
        return f"world_size={distributed.get_world_size()}, buckets={len(self._buckets)}"


class DataParallel(Module):
    """PyTorch's single-process, many-GPU wrapper. deepwise runs one device per process, so this
    forwards to the module unchanged (use DistributedDataParallel under mpiexec for many)."""

    def __init__(self, module, device_ids=None, output_device=None, dim: int = 0):
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
