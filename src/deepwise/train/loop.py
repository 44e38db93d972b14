"""The loops of a ``Trainer`` and their state, in one object: ``trainer.state``.

Everything that ``fit`` / ``evaluate`` / ``predict``, the step methods and the callbacks share lives
here, under public names, rather than as attributes spread over the Trainer::

    class PrintStep(Callback):
        def on_train_batch_end(self, batch, logs=None):
            s = self.trainer.state
            print(s.epoch, s.batch_index, s.global_step, s.logs["loss"], s.grad_clip_norm)

``fit`` builds a fresh ``LoopState`` from its arguments before ``on_train_begin``; ``evaluate`` and
``predict`` use the same object, switching ``phase`` (and what the phase runs on) for their
duration and putting it back afterwards, so a callback may call ``trainer.evaluate`` inside ``fit``.
``Tracker`` holds the running sums of one epoch or one evaluation.

The loops are plain functions: ``run_epoch`` (one epoch of ``fit``, through the trainer's public
methods: ``train_step``, ``optimizer_step``, ``eval_step``, ``state_objects``, ...),
``evaluate_batches`` (validation and ``evaluate``) and ``predict_batches``.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from deepwise import backend
from deepwise import random as dw_random
from deepwise.autograd import no_grad
from deepwise.backend import Device
from deepwise.tensor import Tensor
from deepwise.train import parallel, resume
from deepwise.train.callback_base import takes_metric
from deepwise.train.checkpoint import CHECKPOINT_NAME
from deepwise.train.steps import batch_size_of

__all__ = [
    "LoopState", "Tracker", "accumulation_group", "evaluate_batches", "optimizers_in", "predict_batches", "run_epoch",
    "stack_outputs",
]


@dataclass(eq=False)
class LoopState:
    """Where the loop is, and the settings of the current ``fit`` (Keras keeps such things on the
    model; deepwise keeps them here). Callbacks read any field; they write ``stop_training`` only.

    Where the loop is:
        phase: ``"train"``, ``"validation"``, ``"evaluate"``, ``"predict"``, or None outside them.
        epoch: the epoch being trained (from 0). ``next_epoch``: the first epoch not yet finished.
        batch_index: the training batch in the epoch (from 0; unchanged during validation).
        phase_batch: the batch in the current phase (the same as batch_index while training).
        global_step: training batches run in this training run, resumes included.
        epoch_samples, epoch_steps: samples and batches trained so far in this epoch.
        logs: see the property below. ``epoch_logs``: the last finished epoch's logs.
        sample_shape: the shape of one input sample, seen in the first training batch.
        stop_training: set it to end training after the current batch (the epoch still ends with
            validation and ``on_epoch_end``); set in ``on_before_optimizer_step``, it also cancels
            that step. ``trainer.stop_training`` reads and writes this field.
        interrupted: Ctrl-C was pressed (only seen with ``fit(checkpoint_on_interrupt=...)``).

    The settings of this fit: ``epochs``, ``initial_epoch`` (where it started: the argument, or the
    checkpoint's epoch on resume), ``batch_size``, ``steps_per_epoch``
    (None for a loader of unknown length), ``n_samples``, ``grad_clip_norm`` (None: no clipping),
    ``grad_accumulation_steps``, ``class_weight`` (None, or (weight vector, given as a dict)),
    ``checkpoint_dir``, ``checkpoint_every`` (``"epoch"`` or N batches), ``checkpoint_on_interrupt``
    (the file a Ctrl-C writes, or None), ``log_names`` (the columns every epoch logs).

    The current batch: ``accumulation_boundary`` (it ends a gradient-accumulation group, so
    ``optimizer_step`` applies), ``loss_scale`` (1 / the group's size, applied by ``backward``),
    ``step_losses`` (the losses since the last optimizer step, detached; what TerminateOnNaN checks).

    What the running phase works on: ``device`` (where batches go), ``data`` (the ``FitData``, whose
    facts found once let the per-batch checks be skipped) and ``metrics`` (those ``update_metrics``
    feeds: the training ones, fresh copies for validation, or evaluate's own).

    Checkpoint bookkeeping: ``progress`` (the epoch's ``Tracker``), ``epoch_rng_state`` (the random
    state at the epoch's start), ``checkpoint_due``, ``pending_checkpoints`` (paths asked for with
    ``trainer.request_checkpoint``) and ``settings`` (what a mid-epoch resume must find unchanged).

    ``parallel``: under ``mpiexec``, the ``deepwise.train.parallel.ParallelFit`` of this fit (rank,
    world size, the shares of each batch); None in one process.
    """

    phase: str | None = None
    epoch: int = 0
    next_epoch: int = 0
    batch_index: int = 0
    phase_batch: int = 0
    global_step: int = 0
    epoch_samples: int = 0
    epoch_steps: int = 0
    epoch_logs: dict | None = field(default=None, repr=False)
    sample_shape: tuple | None = None
    stop_training: bool = False
    interrupted: bool = False

    epochs: int = 0
    initial_epoch: int = 0
    batch_size: int | None = None
    steps_per_epoch: int | None = None
    n_samples: int | None = None
    grad_clip_norm: float | None = None
    grad_accumulation_steps: int = 1
    class_weight: tuple | None = field(default=None, repr=False)
    checkpoint_dir: str | None = None
    checkpoint_every: int | str = "epoch"
    checkpoint_on_interrupt: str | None = None
    # how to resume, printed after a caught Ctrl-C (a callback may set it, e.g. a shell command); None: the
    # trainer.fit(resume_from=...) call
    resume_hint: str | None = None
    log_names: list = field(default_factory=list)

    accumulation_boundary: bool = True
    loss_scale: float = 1.0
    step_losses: list = field(default_factory=list, repr=False)

    device: object = None
    data: object = field(default=None, repr=False)
    metrics: list = field(default_factory=list, repr=False)

    progress: Tracker | None = field(default=None, repr=False)
    epoch_rng_state: object = field(default=None, repr=False)
    checkpoint_due: bool = False
    pending_checkpoints: list = field(default_factory=list, repr=False)
    settings: dict = field(default_factory=dict, repr=False)
    # under mpiexec: the ParallelFit of this fit (deepwise.train.parallel), None in one process
    parallel: object = field(default=None, repr=False)

    @classmethod
    def for_fit(cls, what: str, *, epochs, initial_epoch, batch_size, grad_clip_norm, grad_accumulation_steps,
                checkpoint_dir, checkpoint_every, checkpoint_on_interrupt) -> LoopState:
        """A fresh state holding ``fit``'s settings, each checked (``what`` names the caller in errors);
        ``fit`` adds what depends on the data."""
        def check_int(name, value, low):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{what}: {name} must be an int >= {low}, got {value!r}")
            return value

        check_int("epochs", epochs, 1)
        check_int("initial_epoch", initial_epoch, 0)
        check_int("grad_accumulation_steps", grad_accumulation_steps, 1)
        if grad_clip_norm is not None and not (isinstance(grad_clip_norm, (int, float)) and grad_clip_norm > 0):
            raise ValueError(f"{what}: grad_clip_norm must be a positive number or None, got {grad_clip_norm!r}")
        if checkpoint_every != "epoch":
            if checkpoint_dir is None:
                raise ValueError(f"{what}: checkpoint_every={checkpoint_every!r} needs checkpoint_dir=")
            check_int("checkpoint_every", checkpoint_every, 1)
        return cls(epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size,
                   grad_clip_norm=None if grad_clip_norm is None else float(grad_clip_norm),
                   grad_accumulation_steps=grad_accumulation_steps,
                   checkpoint_dir=None if checkpoint_dir is None else os.fspath(checkpoint_dir),
                   checkpoint_every=checkpoint_every,
                   checkpoint_on_interrupt=resume.interrupt_path(checkpoint_on_interrupt, checkpoint_dir, what))

    @property
    def logs(self) -> dict:
        """The latest logs: while an epoch trains, its running loss and metrics (computed when read);
        once it has ended, the epoch's logs as ``on_epoch_end`` got them (with ``val_`` values and
        ``lr``); {} before the first batch."""
        if self.epoch_logs is not None:
            return self.epoch_logs
        return self.progress.logs() if self.progress is not None and self.progress.steps else {}

    def where(self) -> str:
        """Where the loop is, for messages: ``"epoch 2, batch 3"``, ``"validation, batch 0"``."""
        if self.phase == "train":
            return f"epoch {self.epoch + 1}, batch {self.batch_index}"
        if self.phase is not None:
            return f"{self.phase}, batch {self.phase_batch}"
        return "a batch"

    @contextmanager
    def running(self, phase: str, data=None, metrics=None, device=None):
        """Set ``phase`` (and what it runs on; None keeps the current value) for a ``with`` block,
        then put the previous values back."""
        previous = self.phase, self.phase_batch, self.data, self.metrics, self.device
        self.phase, self.phase_batch = phase, 0
        if data is not None:
            self.data = data
        if metrics is not None:
            self.metrics = metrics
        if device is not None:
            self.device = device
        try:
            yield self
        finally:
            self.phase, self.phase_batch, self.data, self.metrics, self.device = previous


def accumulation_group(b: int, accum: int, steps: int | None) -> tuple[int, bool]:
    """(size of the gradient-accumulation group of batch ``b``, whether ``b`` ends it). The epoch's
    last group may be shorter; with ``steps`` unknown (None) every group is counted full."""
    if accum == 1:
        return 1, True
    start = (b // accum) * accum
    size = accum if steps is None else min(accum, steps - start)
    return size, (b - start + 1) == size


class Tracker:
    """Running sums of one epoch (or one evaluation): every value a step returns, weighted by batch
    size, plus the metrics' own running state."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.reset()

    def reset(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.count = 0
        self.steps = 0
        for m in self.metrics:
            m.reset()

    def add(self, step_logs: dict, n: int) -> None:
        if not isinstance(step_logs, dict):
            raise TypeError("Trainer: train_step / eval_step must return a dict of logs, got "
                            f"{type(step_logs).__name__}")
        sums, counts = self.sums, self.counts
        for key, value in step_logs.items():
            if isinstance(value, Tensor):
                data = value.array
                if data.size != 1:
                    continue  # not a loggable number
                value = data.item()  # the one host sync of a step
            elif hasattr(value, "item") and getattr(value, "size", 0) == 1:
                value = value.item()
            if type(value) is not float and (isinstance(value, bool) or not isinstance(value, (int, float))):
                continue
            sums[key] = sums.get(key, 0.0) + float(value) * n
            counts[key] = counts.get(key, 0) + n
        self.count += n
        self.steps += 1

    def logs(self, prefix: str = "", scalar_only: bool = True) -> dict:
        out = {prefix + k: self.sums[k] / self.counts[k] for k in self.sums}
        for m in self.metrics:
            if m.scalar or not scalar_only:
                out[prefix + m.name] = m.result()
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts), "count": self.count, "steps": self.steps,
                "metrics": {m.name: m.state_dict() for m in self.metrics}}

    def load_state_dict(self, state: dict) -> None:
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self.count = int(state["count"])
        self.steps = int(state["steps"])
        for m in self.metrics:
            if m.name in state["metrics"]:
                m.load_state_dict(state["metrics"][m.name])


def optimizers_in(objects: dict) -> list:
    """The optimizers among a trainer's ``state_objects()``."""
    return [obj for obj in objects.values() if obj is not None and hasattr(obj, "param_groups")]


# ------------------------------------------------------------------------------ one epoch of fit
def _save(trainer, path, mid_epoch=False):
    """Write a checkpoint; under mpiexec rank 0 writes it (the epoch's sums merged over the ranks
    first, for one taken mid-epoch) and the others go on at once (``_written`` waits for it)."""
    par = trainer.state.parallel
    progress = None
    if par is not None and mid_epoch:
        progress = parallel.merged_tracker_state(trainer.state.progress)  # a collective: every rank
    if par is None or par.main:
        resume.write_checkpoint(path, trainer.model, trainer.state_objects(), trainer.callbacks, trainer.history,
                                trainer.state, mid_epoch, progress)


def _written(state) -> None:
    """Under mpiexec, wait until rank 0 has written the checkpoints due (a barrier)."""
    if state.parallel is not None:
        state.parallel.barrier()


def run_epoch(trainer, epoch: int, train, val, val_metrics, resumed=None, skip: int = 0) -> dict | None:
    """Train ``trainer`` for ``epoch`` on ``train`` (a FitData), validate on ``val`` with
    ``val_metrics``, step the scheduler, call ``on_epoch_end``, record the History row and write the
    checkpoints due. ``resumed``: the checkpoint to continue the epoch from, after ``skip`` batches.
    Returns the epoch's logs, or None when a Ctrl-C stopped it in the middle."""
    state, callbacks = trainer.state, trainer.callbacks
    save = partial(_save, trainer)
    state.epoch, state.epoch_logs = epoch, None
    loader, steps = train.loader, train.steps
    set_epoch = getattr(loader, "set_epoch", None)
    if set_epoch is not None:
        set_epoch(epoch)
    tracker = state.progress
    tracker.reset()
    par = state.parallel
    with state.running("train", data=train, metrics=trainer.metrics):
        if resumed is not None:
            trainer.model.train()
            state.epoch_rng_state = resumed.position["epoch_rng_state"]
            iterator = resume.skip_batches(loader, resumed, skip, epoch, tracker)
            if par is not None and not par.main:
                tracker.reset()  # the checkpoint's sums are every rank's: rank 0 carries them
        else:
            callbacks.on_epoch_begin(epoch, {})
            trainer.model.train()  # after the hook: the epoch trains in train mode whatever a callback did
            if par is not None:
                par.sync_rng()  # one epoch order on every rank
            state.epoch_rng_state = dw_random.get_rng_state()
            iterator = iter(loader)
            skip = 0
        if par is not None:
            par.decorrelate()
        state.epoch_samples, state.epoch_steps = tracker.count, tracker.steps
        # the batch hooks (and the running logs they get) only when some callback does something in them
        batch_begin = callbacks.implements("on_train_batch_begin")
        batch_end = callbacks.implements("on_train_batch_end")
        every = state.checkpoint_every if isinstance(state.checkpoint_every, int) else None
        accum = state.grad_accumulation_steps
        boundary, pending = True, False
        state.accumulation_boundary, state.loss_scale = True, 1.0
        for b, batch in enumerate(iterator, start=skip):
            state.batch_index = state.phase_batch = b
            n = batch_size_of(batch)
            scale = 1.0
            if accum > 1:
                size, boundary = accumulation_group(b, accum, steps)
                state.accumulation_boundary, scale = boundary, 1.0 / size
            shares = par.batch_shares(b) if par is not None else None
            if shares is not None:  # this rank's part of the batch's mean loss (see deepwise.train.parallel)
                n = shares[0]
                scale *= par.size * n / shares[1]
            state.loss_scale = scale
            if batch_begin:
                callbacks.on_train_batch_begin(b, {"batch": b, "size": n})
            if state.sample_shape is None:
                first = batch[0] if isinstance(batch, (tuple, list)) else batch
                state.sample_shape = tuple(first.shape[1:]) if hasattr(first, "shape") else None
            if n == 0:  # a stand-in sample (a batch smaller than the world): weight 0, no metrics
                state.metrics = []
                tracker.add(trainer.train_step(batch), 0)
                state.metrics = trainer.metrics
            else:
                tracker.add(trainer.train_step(batch), n)
            state.global_step += 1
            pending = not boundary
            state.epoch_samples, state.epoch_steps = tracker.count, tracker.steps
            if par is not None:
                state.epoch_samples = par.samples_through(b) or state.epoch_samples
            if batch_end:
                callbacks.on_train_batch_end(b, tracker.logs())
            if par is not None and par.stops_in_batch:  # a callback on one rank stops every rank
                state.stop_training = par.agree(state.stop_training)
            if state.stop_training:
                break
            if every is not None and state.global_step % every == 0:
                state.checkpoint_due = True
            if not pending:
                if state.interrupted:
                    resume.write_interrupt_checkpoint(state, trainer.history, save, mid_epoch=True)
                    return None
                if state.checkpoint_due:
                    save(os.path.join(state.checkpoint_dir, CHECKPOINT_NAME), mid_epoch=True)
                    _written(state)
                    state.checkpoint_due = False
        if tracker.steps == 0:
            raise ValueError("Trainer.fit: the training data yielded no batches this epoch")
        if pending:
            if state.stop_training:  # stopped inside an accumulation group: its partial gradients are dropped
                for opt in optimizers_in(trainer.state_objects()):
                    opt.zero_grad()
            else:  # a loader of unknown length ended inside a group: apply it
                state.accumulation_boundary = True
                trainer.optimizer_step()
        state.accumulation_boundary, state.loss_scale = True, 1.0

        if par is not None:
            parallel.reduce_tracker(tracker)  # every rank's samples: the same logs everywhere
            par.sync_buffers()  # rank 0's running statistics, for validation and the checkpoint
        logs = tracker.logs()
        if val is not None:
            val_logs = evaluate_batches(trainer.model, trainer.eval_step, val, val_metrics, callbacks, state,
                                        "validation")
            logs.update({"val_" + k: v for k, v in val_logs.items()})
        logs["lr"] = float(trainer.optimizer.param_groups[0]["lr"])
        scheduler = trainer.scheduler
        if scheduler is not None and trainer.scheduler_interval == "epoch":
            if takes_metric(scheduler):
                scheduler.step(logs["val_loss"] if "val_loss" in logs else logs["loss"])
            else:
                scheduler.step()
        state.epoch_logs = logs
        callbacks.on_epoch_end(epoch, logs)
        trainer.history.record(epoch, logs)
        state.next_epoch = epoch + 1
        if state.checkpoint_dir is not None:
            save(os.path.join(state.checkpoint_dir, CHECKPOINT_NAME))
            state.checkpoint_due = False
        for path in state.pending_checkpoints:
            save(path)
        state.pending_checkpoints = []
        if state.interrupted:
            resume.write_interrupt_checkpoint(state, trainer.history, save, mid_epoch=False)
        _written(state)
    return logs


# ------------------------------------------------------------------------------ loops without gradients
def evaluate_batches(model, eval_step, data, metrics, callbacks, state, phase: str, device=None,
                     scalar_only: bool = True) -> dict:
    """Run ``eval_step`` over ``data.loader`` in eval mode under ``no_grad``, with ``state`` in
    ``phase`` (batches on ``device``; None keeps the state's) and ``metrics`` fed, calling the
    ``on_test_*`` hooks; the model's mode and the state are put back after. Returns the means over
    all samples of the step logs, and the metrics."""
    was_training = bool(getattr(model, "training", True))
    tracker = Tracker(metrics)
    with state.running(phase, data=data, metrics=metrics, device=device):
        model.eval()
        callbacks.on_test_begin({})
        batch_begin = callbacks.implements("on_test_batch_begin")  # per-batch hooks only when used
        batch_end = callbacks.implements("on_test_batch_end")
        try:
            with no_grad():
                for b, batch in enumerate(data.loader):
                    state.phase_batch = b
                    if batch_begin:
                        callbacks.on_test_batch_begin(b, {"batch": b})
                    tracker.add(eval_step(batch), batch_size_of(batch))
                    if batch_end:
                        callbacks.on_test_batch_end(b, tracker.logs(scalar_only=scalar_only))
        finally:
            model.train(was_training)
        parallel.reduce_tracker(tracker)  # under mpiexec: the sums of every rank's batches
        if tracker.steps == 0:
            raise ValueError(f"Trainer: the {phase} data yielded no batches")
        logs = tracker.logs(scalar_only=scalar_only)
        callbacks.on_test_end(logs)
    return logs


def predict_batches(model, predict_step, data, state, device) -> list:
    """``predict_step`` of every batch of ``data.loader``, in eval mode under ``no_grad``."""
    was_training = bool(getattr(model, "training", True))
    outputs = []
    model.eval()
    try:
        with state.running("predict", data=data, device=device), no_grad():
            for b, batch in enumerate(data.loader):
                state.phase_batch = b
                outputs.append(predict_step(batch))
    finally:
        model.train(was_training)
    if not outputs:
        raise ValueError("Trainer.predict: the data yielded no batches")
    return outputs


def _host(t) -> np.ndarray:
    arr = t.array if isinstance(t, Tensor) else t
    return backend.to_device(arr, Device("cpu")) if backend.is_array(arr) else np.asarray(arr)


def stack_outputs(outputs: list):
    """The batches' outputs as one NumPy array on the host, or a tuple of them for several outputs."""
    if isinstance(outputs[0], (tuple, list)):
        return tuple(np.concatenate([_host(o[i]) for o in outputs]) for i in range(len(outputs[0])))
    return np.concatenate([_host(o) for o in outputs])
