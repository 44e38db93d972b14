"""``Trainer`` under ``mpiexec``: data-parallel training that gives what one process gives.

Started under ``mpiexec -n N``, ``fit`` joins the process group itself and then:

- the ranks' random generators take rank 0's state, so the validation split and every epoch's
  shuffle are the same on all ranks (after drawing an epoch's order, ranks other than 0 move to a
  generator of their own, so dropout masks differ between ranks; rank 0 keeps the stream one
  process would have);
- every global batch (``batch_size`` samples, the same batches one process takes) is cut into N
  contiguous shares, one per rank (``data.distributed.ShardedBatchSampler``);
- the model is wrapped in ``DistributedDataParallel`` (rank 0's weights and buffers reach every
  rank); just before each optimizer step the gradients of that optimizer's parameters are
  averaged over the ranks. Each rank's loss is scaled by ``N * n_rank / n_batch`` first, so the
  average is the gradient of the mean over the whole batch even when the shares differ by one
  sample (the loss of a batch is taken to be a mean over its samples; a loss averaged over some
  other count, such as cross entropy with ignored targets, is weighted by samples);
- the running sums of the loss and the metrics are merged over the ranks at the end of each epoch
  (``Metric.merge_state_dicts``), so callbacks see the same logs on every rank and decide alike; a
  stop set in a batch hook (or before a step) by a callback on one rank is agreed by all after that
  batch (a ``train_step`` of your own that stops training must decide alike on every rank);
- validation and ``evaluate`` split the batches over the ranks (``StridedBatchSampler``: each
  sample evaluated once, no padding) and merge the sums the same way;
- rank 0 alone prints, runs the callbacks marked ``rank_zero_only`` (progress bar, model and CSV
  writers) and writes checkpoints; the others wait for it at a barrier. Ranks other than 0 run
  ``fit`` with their standard output silenced (errors still reach standard error).

A checkpoint holds nothing that depends on N (the epoch's running sums are merged before a
mid-epoch checkpoint is written), so a run resumes exactly with a different number of processes.
"""

from __future__ import annotations

import contextlib
import os

import numpy as np

from deepwise import distributed
from deepwise import random as dw_random
from deepwise.data import DataLoader
from deepwise.data.distributed import DistributedSampler, ShardedBatchSampler, StridedBatchSampler
from deepwise.distributed import collectives
from deepwise.nn.parallel import DistributedDataParallel
from deepwise.train.callback_base import CallbackList
from deepwise.train.data import FitData

__all__ = ["ParallelFit", "active", "encode", "decode", "join", "merged_tracker_state", "reduce_tracker",
           "shard_for_evaluation"]


def join() -> int:
    """The world size; under ``mpiexec`` with several processes, the process group is initialized first."""
    if not distributed.is_initialized() and distributed.launched_by_mpiexec() > 1:
        distributed.init_process_group(backend="mpi")
    return distributed.world_size()


def active() -> bool:
    """Whether this process is one of several in an initialized process group."""
    return distributed.world_size() > 1


# ------------------------------------------------------------------------------ state over the wire
def encode(value):
    """``value`` with NumPy arrays and scalars turned into JSON-able forms (see ``decode``)."""
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    return value


def decode(value):
    """The inverse of ``encode``."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def merged_tracker_state(tracker) -> dict:
    """The ``state_dict`` of a ``Tracker`` holding every rank's samples (the tracker is not changed)."""
    everyone = [None] * distributed.get_world_size()
    distributed.all_gather_object(everyone, encode(tracker.state_dict()))
    states = [decode(s) for s in everyone]
    sums: dict = {}
    counts: dict = {}
    for s in states:
        for k, v in s["sums"].items():
            sums[k] = sums.get(k, 0.0) + v
        for k, v in s["counts"].items():
            counts[k] = counts.get(k, 0) + v
    metrics = {m.name: m.merge_state_dicts([s["metrics"][m.name] for s in states if m.name in s["metrics"]])
               for m in tracker.metrics}
    return {"sums": sums, "counts": counts, "count": sum(s["count"] for s in states),
            "steps": sum(s["steps"] for s in states), "metrics": metrics}


def reduce_tracker(tracker) -> None:
    """Make ``tracker`` hold the sums of every rank (on every rank); nothing happens in a world of one."""
    if active():
        tracker.load_state_dict(merged_tracker_state(tracker))


# ------------------------------------------------------------------------------ data
def _rebuild(loader, batch_sampler):
    """A DataLoader like ``loader`` (dataset, collate, workers, prefetch) over ``batch_sampler``."""
    kwargs = {}
    if loader.num_workers > 0:
        kwargs.update(prefetch_factor=loader.prefetch_factor, persistent_workers=loader.persistent_workers)
    return DataLoader(loader.dataset, batch_sampler=batch_sampler, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, timeout=loader.timeout, worker_init_fn=loader.worker_init_fn,
                      multiprocessing_context=loader.multiprocessing_context, generator=loader.generator,
                      prefetch=loader.prefetch, **kwargs)


def _already_sharded(loader) -> bool:
    return isinstance(loader.sampler, DistributedSampler) or isinstance(
        loader.batch_sampler, (ShardedBatchSampler, StridedBatchSampler))


def _shard(data: FitData, sampler_cls) -> FitData:
    loader = data.loader
    if (not isinstance(loader, DataLoader) or getattr(loader, "batch_sampler", None) is None
            or _already_sharded(loader)):
        return data  # the user's loader already yields this rank's share
    sharded = _rebuild(loader, sampler_cls(loader.batch_sampler, distributed.get_world_size(),
                                           distributed.get_rank()))
    out = FitData(sharded, data.n_samples, data.kind, dataset=data.dataset)
    out.arrays = data.arrays
    out.inputs_finite, out.label_range = data.inputs_finite, data.label_range
    return out


def shard_for_evaluation(data: FitData) -> FitData:
    """``data`` with its batches split over the ranks (whole batches, each evaluated once)."""
    return _shard(data, StridedBatchSampler) if active() else data


class ParallelFit:
    """What one ``fit`` under ``mpiexec`` keeps: rank, world size, the DDP wrapper and the training
    sampler whose shares weight each rank's loss. ``trainer.state.parallel`` holds it during fit."""

    def __init__(self):
        self.rank = distributed.get_rank()
        self.size = distributed.get_world_size()
        self.ddp = None
        self.sampler = None
        # whether a callback running on every rank could stop training in a batch hook / before a step
        # (then the ranks agree on it each batch; a rank_zero_only callback never stops training)
        self.stops_in_batch = False
        self.stops_before_step = False

    def watch_stops(self, callbacks) -> None:
        """Note which hooks of the callbacks that run on every rank could set ``stop_training``."""
        everywhere = CallbackList([cb for cb in callbacks if not getattr(cb, "rank_zero_only", False)])
        self.stops_in_batch = (everywhere.implements("on_train_batch_begin")
                               or everywhere.implements("on_train_batch_end"))
        self.stops_before_step = everywhere.implements("on_before_optimizer_step")

    @property
    def main(self) -> bool:
        return self.rank == 0

    # ---- random state
    def sync_rng(self) -> None:
        """Every rank's generator takes rank 0's state."""
        box = [dw_random.get_rng_state() if self.main else None]
        distributed.broadcast_object_list(box, src=0)
        dw_random.set_rng_state(box[0])

    def decorrelate(self) -> None:
        """Ranks other than 0 continue with a generator of their own (rank 0 keeps its stream)."""
        if not self.main:
            draw = int(dw_random.generator().integers(0, 2**63))
            dw_random.set_rng_state(np.random.PCG64(np.random.SeedSequence([draw, self.rank])).state)

    # ---- data and model
    def shard_training(self, data: FitData) -> FitData:
        out = _shard(data, ShardedBatchSampler)
        sampler = getattr(out.loader, "batch_sampler", None)
        self.sampler = sampler if isinstance(sampler, ShardedBatchSampler) else None
        return out

    def wrap(self, model) -> None:
        """Check every rank built the same model and give them all rank 0's weights and buffers."""
        if isinstance(model, DistributedDataParallel):
            self.ddp = None  # its backward already averages the gradients
            model.sync_module_states()
            return
        self.ddp = DistributedDataParallel(model)

    def batch_shares(self, b: int) -> tuple[int, int] | None:
        """(this rank's samples, the global batch's samples) of batch ``b`` of the epoch, or None when
        the loader was the user's own (already sharded: ranks weigh equally)."""
        if self.sampler is None or b >= len(self.sampler.shares):
            return None
        return self.sampler.shares[b], self.sampler.global_sizes[b]

    def samples_through(self, b: int) -> int | None:
        """Samples of the global batches 0 .. ``b`` (what the progress bar counts)."""
        if self.sampler is None:
            return None
        return int(sum(self.sampler.global_sizes[: b + 1]))

    def average_gradients(self, optimizer) -> None:
        if self.ddp is not None:
            self.ddp.average_gradients([p for group in optimizer.param_groups for p in group["params"]])

    def agree(self, flag: bool) -> bool:
        """True on every rank when ``flag`` is True on any (one small all-reduce)."""
        box = np.array([1.0 if flag else 0.0])
        collectives.reduce_array(box, "max")
        return bool(box[0])

    def sync_buffers(self) -> None:
        if self.ddp is not None:
            self.ddp.sync_buffers()

    # ---- writing
    def barrier(self) -> None:
        distributed.barrier()

    def quiet(self):
        """Standard output silenced on ranks other than 0 (for the duration of a ``with``)."""
        if self.main:
            return contextlib.nullcontext()
        return _Silenced()


class _Silenced:
    def __enter__(self):
        self._sink = open(os.devnull, "w")  # closed in __exit__
        self._redirect = contextlib.redirect_stdout(self._sink)
        self._redirect.__enter__()
        return self

    def __exit__(self, *exc):
        self._redirect.__exit__(*exc)
        self._sink.close()
        return False

