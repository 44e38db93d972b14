"""``Trainer``: Keras' ``fit`` / ``evaluate`` / ``predict`` around a deepwise (PyTorch-style) model.

    trainer = dw.Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy",
                         metrics=["accuracy"])
    history = trainer.fit(x, y, epochs=20, batch_size=64, validation_split=0.1,
                          callbacks=[dw.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
    trainer.evaluate(x_test, y_test)          # {"loss": ..., "accuracy": ...}
    trainer.predict(x_test)                   # NumPy array of outputs

One epoch: ``on_epoch_begin`` -> for each batch: ``on_train_batch_begin``, ``train_step(batch)``,
``on_train_batch_end`` -> validation (``on_test_begin/end``) -> ``lr`` logged -> the scheduler's epoch
step -> ``on_epoch_end`` -> the History row -> checkpoints. Where the loop is and the settings of the
fit are in ``trainer.state`` (a ``deepwise.train.loop.LoopState``: ``epoch``, ``batch_index``,
``global_step``, ``logs``, ``stop_training``, ``grad_clip_norm``, ...), which callbacks read.

``train_step`` / ``eval_step`` / ``predict_step`` are the methods to override. Their building
blocks are public, so a subclass keeps every check, the gradient-accumulation bookkeeping, clipping
and the ``on_before_optimizer_step`` hook::

    def train_step(self, batch):
        real, _, _ = self.unpack_batch(batch)
        d_loss = ...;  self.backward(d_loss);  self.optimizer_step(self.d_optimizer)
        g_loss = ...;  self.backward(g_loss);  self.optimizer_step(self.optimizer)
        return {"d_loss": d_loss, "g_loss": g_loss}

Checkpoints: ``fit(checkpoint_dir=d)`` keeps ``d/last.ckpt`` up to date (after every epoch, and
every N batches with ``checkpoint_every=N``); ``fit(resume_from=d_or_file, epochs=E)`` continues
to epoch E exactly as if never stopped, even from the middle of an epoch (``deepwise.train.resume``).

Under ``mpiexec -n N``, ``fit`` trains data-parallel by itself: each process takes its share of every
batch, gradients are averaged before each optimizer step, metrics merged over the processes, rank 0
alone prints and writes (``deepwise.train.parallel``; docs/distributed.md). ``evaluate`` is then a
collective: every rank calls it and gets the totals.

Ctrl-C is the user's: ``fit`` installs no SIGINT handler unless asked, so by default Ctrl-C raises
KeyboardInterrupt out of ``fit`` like out of any Python code (and, like any exception escaping fit,
skips ``on_train_end``), and nothing is written. ``fit(checkpoint_on_interrupt=True)`` (into
``checkpoint_dir``) or ``=PATH`` opts in: the first Ctrl-C finishes the batch, writes a checkpoint
there, runs ``on_train_end`` and returns the History with ``history.interrupted = True``; a second
one raises KeyboardInterrupt at once. ``deepwise train`` opts in, into its run folder.
"""

from __future__ import annotations

import contextlib
import copy
import os
import time

from deepwise import backend
from deepwise import random as dw_random
from deepwise.backend import Device
from deepwise.nn.summary import summary
from deepwise.optim import clip_grad_norm_
from deepwise.tensor import Tensor
from deepwise.train import checkpoint as ckpt_io
from deepwise.train import metrics as metrics_mod
from deepwise.train import parallel, resume, steps
from deepwise.train.callback_base import CallbackList
from deepwise.train.callbacks import ProgressBar
from deepwise.train.data import fit_data, make_data
from deepwise.train.history import History
from deepwise.train.loop import (
    LoopState,
    Tracker,
    evaluate_batches,
    optimizers_in,
    predict_batches,
    run_epoch,
    stack_outputs,
)
from deepwise.train.losses import Loss, class_weight_vector
from deepwise.train.progress import format_duration, format_logs
from deepwise.train.run_folder import RunLock

__all__ = ["Trainer"]

_RESERVED = ("loss", "lr", "epoch")


def _check_model(model):
    for attr in ("parameters", "named_parameters", "state_dict", "load_state_dict", "train", "eval", "named_modules"):
        if not hasattr(model, attr):
            raise TypeError(f"Trainer: model must be a deepwise nn.Module (it has no {attr}()), got "
                            f"{type(model).__name__}")
    if not callable(model):
        raise TypeError(f"Trainer: model {type(model).__name__} is not callable")


def _fresh(metric):
    m = copy.copy(metric)
    m.reset()
    return m


class Trainer:
    """Train, evaluate and run a model, Keras style.

    Args:
        model: a ``deepwise.nn.Module``.
        optimizer: a ``deepwise.optim`` optimizer over the model's parameters (needed by ``fit``).
        loss: a name (``"cross_entropy"``, ``"nll"``, ``"bce_with_logits"``, ``"mse"``, ``"mae"``/``"l1"``,
            ``"huber"``, ``"smooth_l1"``) or a function ``fn(pred, target) -> scalar Tensor``.
        metrics: names, ``Metric`` objects or functions ``fn(pred, target) -> float`` (see
            ``deepwise.train.metrics``); logged per epoch, with ``val_`` versions on validation data.
            Metrics are unweighted (sample and class weights weight the loss only).
        scheduler: an ``optim.lr_scheduler`` object, stepped after each epoch (after validation; a
            ReduceLROnPlateau-style one gets ``val_loss``, or ``loss`` without validation) or, with
            ``scheduler_interval="step"``, after each optimizer step.
        device: move the model there (``"cuda"``); batches follow the model's device.

    Attributes: ``model``, ``optimizer``, ``loss``, ``metrics``, ``scheduler``, ``history`` (the
    History of the last fit), ``callbacks`` (its CallbackList), ``state`` (the ``LoopState``),
    ``sample_shape`` (one input sample's shape, seen in the first training batch, for ``summary``).
    """

    def __init__(self, model, optimizer=None, loss="cross_entropy", metrics=None, scheduler=None,
                 scheduler_interval: str = "epoch", device=None):
        _check_model(model)
        self.model = model
        self._device = None
        if device is not None:
            self._device = Device(device)
            model.to(self._device)
        if optimizer is not None and not (hasattr(optimizer, "step") and hasattr(optimizer, "param_groups")):
            raise TypeError(f"Trainer: optimizer must be a deepwise optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.loss = Loss(loss)
        if metrics is not None and (isinstance(metrics, (str, metrics_mod.Metric)) or callable(metrics)):
            metrics = [metrics]
        self.metrics = [metrics_mod.get(m, self.loss.name) for m in (metrics or [])]
        names = [m.name for m in self.metrics]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"Trainer: two metrics are named {name!r}; give one a different name= ")
            if name in _RESERVED or name.startswith("val_"):
                raise ValueError(f"Trainer: a metric may not be named {name!r} (reserved for the logs)")
        if scheduler is not None:
            if optimizer is None:
                raise ValueError("Trainer: a scheduler needs the optimizer it schedules; pass optimizer=")
            if not hasattr(scheduler, "step"):
                raise TypeError(f"Trainer: scheduler must have step(), got {type(scheduler).__name__}")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(f"Trainer: scheduler_interval must be 'epoch' or 'step', got {scheduler_interval!r}")
        self.scheduler = scheduler
        self.scheduler_interval = scheduler_interval
        self.history: History | None = None
        self.callbacks = CallbackList()
        self.state = LoopState(metrics=self.metrics)
        self._param_names = None  # id(parameter) -> its name in the model, built when first asked

    @property
    def stop_training(self) -> bool:
        """``state.stop_training`` (Keras' ``model.stop_training``): set it to end training."""
        return self.state.stop_training

    @stop_training.setter
    def stop_training(self, value: bool) -> None:
        self.state.stop_training = bool(value)

    @property
    def sample_shape(self) -> tuple | None:
        """``state.sample_shape``: one input sample's shape, seen in the first training batch of fit."""
        return self.state.sample_shape

    def summary(self, input_shape=None, **kwargs):
        """``dw.summary`` of the model: its layers, output shapes, parameters and memory. ``input_shape``
        (one sample, no batch dim) defaults to what ``fit`` last saw."""
        input_shape = input_shape or self.sample_shape
        if input_shape is None:
            raise ValueError("Trainer.summary: pass input_shape=(...) (one sample, without the batch dim) "
                             "or call fit first so the trainer has seen the data")
        return summary(self.model, input_shape, **kwargs)

    # ------------------------------------------------------------------------------ fit
    def fit(self, x, y=None, epochs: int = 1, batch_size: int | None = None, validation_data=None,
            validation_split: float = 0.0, shuffle: bool | None = None, callbacks=None, class_weight=None,
            sample_weight=None, grad_clip_norm: float | None = None, grad_accumulation_steps: int = 1,
            verbose: int = 1, initial_epoch: int = 0, resume_from=None, checkpoint_dir=None,
            checkpoint_every="epoch", validation_batch_size: int | None = None,
            checkpoint_on_interrupt=False) -> History:
        """Train for epochs ``initial_epoch .. epochs - 1`` and return the History (see the module
        docstring for the order of events, checkpoints, resume and Ctrl-C).

        ``x``: arrays / Tensors (with ``y``), a Dataset of (x, y[, weight]) samples, or a DataLoader.
        ``batch_size`` (default 32) and ``shuffle`` (default True) apply to arrays and Datasets.
        ``validation_split``: the fraction of samples held out, picked by a permutation from the seeded
        generator. ``class_weight``: dict or sequence, classification losses only. ``grad_clip_norm``:
        clip the global gradient norm before each step. ``grad_accumulation_steps``: step once every
        k batches with the mean gradient (the epoch's last group may be shorter; its mean is over its
        own batches). ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.
        ``checkpoint_on_interrupt``: False (Ctrl-C raises KeyboardInterrupt), True (on Ctrl-C, write
        ``checkpoint_dir/last.ckpt`` and return) or a path (a file, or a directory to hold last.ckpt).
        """
        what = "Trainer.fit"
        if self.optimizer is None:
            raise ValueError(f"{what}: the Trainer has no optimizer; create it with Trainer(model, optimizer, ...)")
        if verbose not in (0, 1, 2):
            raise ValueError(f"{what}: verbose must be 0, 1 or 2, got {verbose!r}")
        state = LoopState.for_fit(
            what, epochs=epochs, initial_epoch=initial_epoch, batch_size=batch_size, grad_clip_norm=grad_clip_norm,
            grad_accumulation_steps=grad_accumulation_steps, checkpoint_dir=checkpoint_dir,
            checkpoint_every=checkpoint_every, checkpoint_on_interrupt=checkpoint_on_interrupt)
        if any(not m.scalar for m in self.metrics):
            names = [m.name for m in self.metrics if not m.scalar]
            raise ValueError(f"{what}: metrics {names} give arrays, not numbers, so they cannot be logged per epoch; "
                             "compute them with trainer.evaluate(...)")
        ck = ckpt_io.load_training_checkpoint(resume_from) if resume_from is not None else None
        if ck is not None and initial_epoch:
            raise ValueError(f"{what}: initial_epoch comes from the checkpoint when resuming; do not pass both")
        par = parallel.ParallelFit() if parallel.join() > 1 else None  # under mpiexec: deepwise.train.parallel
        if par is not None:
            par.sync_rng()  # the same validation split and epoch orders on every rank
            verbose = verbose if par.main else 0

        # ---- data
        split_state = ck.settings.get("split_rng_state") if ck is not None else None
        if split_state is None:
            split_state = dw_random.get_rng_state()
        train, val = fit_data(x, y, sample_weight, what=what, batch_size=batch_size, shuffle=shuffle,
                              validation_split=validation_split, validation=validation_data,
                              validation_batch_size=validation_batch_size, loss=self.loss, split_state=split_state,
                              advance_global=ck is None)
        vec = class_weight_vector(class_weight, self.loss)
        if par is not None:
            train = par.shard_training(train)
            val = parallel.shard_for_evaluation(val) if val is not None else None

        # ---- the loop state: what depends on the data
        state.steps_per_epoch, state.n_samples = train.steps, train.n_samples
        if vec is not None:
            state.class_weight = (vec, isinstance(class_weight, dict))
        state.log_names = ["loss", *(m.name for m in self.metrics)]
        if val is not None:
            state.log_names += ["val_" + n for n in state.log_names]
        state.log_names.append("lr")
        state.device, state.metrics, state.progress = self.device, self.metrics, Tracker(self.metrics)
        state.parallel = par
        state.settings = {"batch_size": batch_size, "n_train": train.n_samples, "steps_per_epoch": train.steps,
                          "grad_accumulation_steps": grad_accumulation_steps, "validation_split": validation_split,
                          "split_rng_state": split_state}
        if ck is not None and ck.position.get("batch", 0):
            resume.check_resume_settings(ck, state.settings, what)
        self.state = state

        # ---- callbacks, history
        cbs = list(callbacks or [])
        if par is not None and not par.main:
            cbs = [cb for cb in cbs if not getattr(cb, "rank_zero_only", False)]
        if verbose and not any(isinstance(cb, ProgressBar) for cb in cbs):
            cbs.insert(0, ProgressBar(verbose))
        self.callbacks = CallbackList(cbs, trainer=self)
        if par is not None:
            par.watch_stops(cbs)
        history = History.from_dict(ck.history) if ck is not None else History()
        history.set_columns(state.log_names)
        history.params = {"epochs": epochs, "batch_size": batch_size or (32 if train.kind != "loader" else None),
                          "steps": train.steps, "samples": train.n_samples}
        self.history = history
        val_metrics = [_fresh(m) for m in self.metrics]

        # ---- where to start
        skip = 0
        start_epoch = initial_epoch
        if ck is not None:
            resume.restore_objects(self.model, self.state_objects(), ck, what)
            start_epoch = int(ck.position["epoch"])
            skip = int(ck.position.get("batch", 0))
            state.global_step = int(ck.position["global_step"])
        if par is not None:
            par.wrap(self.model)  # every rank the same model, with rank 0's weights
        state.initial_epoch = state.next_epoch = state.epoch = start_epoch
        for opt in self._optimizers():
            opt.zero_grad()

        logs: dict = {}
        # under mpiexec a Ctrl-C ends the job (the ranks could not agree on the batch to stop after)
        catch = state.checkpoint_on_interrupt and par is None
        catch_ctrl_c = resume.SigintCheckpoint(state) if catch else contextlib.nullcontext()
        writes = state.checkpoint_dir is not None and (par is None or par.main)
        # one writer per run folder, as `deepwise train` (whose own hold of it is shared)
        lock = RunLock(state.checkpoint_dir, nest=True) if writes else contextlib.nullcontext()
        quiet = par.quiet() if par is not None else contextlib.nullcontext()
        with lock, quiet:
            with catch_ctrl_c:
                try:
                    self.model.train()
                    self.callbacks.on_train_begin({})
                    if ck is not None:
                        self.callbacks.load_state_dicts(ck.callbacks)
                        dw_random.set_rng_state(ck.rng_state)
                    for epoch in range(start_epoch, epochs):
                        resumed = ck if (ck is not None and epoch == start_epoch and skip) else None
                        epoch_logs = run_epoch(self, epoch, train, val, val_metrics, resumed, skip)
                        if epoch_logs is None:  # interrupted in the middle of the epoch
                            break
                        logs = epoch_logs
                        if state.stop_training or state.interrupted:
                            break
                finally:
                    state.phase, state.data, state.device = None, None, None
            self.callbacks.on_train_end(logs)
        state.parallel = None
        return history

    # ------------------------------------------------------------------------------ checkpoints
    def state_objects(self) -> dict:
        """Objects with ``state_dict()`` / ``load_state_dict()`` saved in checkpoints, by name.
        A subclass with more (a second optimizer) adds them: ``{**super().state_objects(), "d_opt": ...}``."""
        return {"optimizer": self.optimizer, "scheduler": self.scheduler}

    def request_checkpoint(self, path) -> None:
        """Write a full training checkpoint to ``path`` at the end of the current epoch (after every
        callback and the History row), e.g. from a callback's ``on_epoch_end``."""
        self.state.pending_checkpoints.append(os.fspath(path))

    def save_checkpoint(self, path) -> None:
        """Write a training checkpoint (weights, optimizer/scheduler state, callbacks, History,
        random state) that ``fit(resume_from=path)`` continues from, at the start of
        ``state.next_epoch``."""
        resume.write_checkpoint(path, self.model, self.state_objects(), self.callbacks, self.history, self.state)

    # ------------------------------------------------------------------------------ evaluate / predict
    def evaluate(self, x, y=None, batch_size: int | None = None, verbose: int = 0, sample_weight=None,
                 callbacks=None) -> dict:
        """Loss and metrics over ``x`` (arrays with ``y``, a Dataset or a DataLoader), in eval mode and
        without building a graph; the model's previous mode is restored. Returns ``{"loss": ...,
        <metric name>: ...}`` — exact means over all samples, whatever the batch sizes. A
        ``ConfusionMatrix`` metric gives its matrix here."""
        what = "Trainer.evaluate"
        if verbose not in (0, 1, 2):
            raise ValueError(f"{what}: verbose must be 0, 1 or 2, got {verbose!r}")
        data = make_data(x, y, sample_weight, what=what, batch_size=batch_size, loss=self.loss)
        data = parallel.shard_for_evaluation(data)  # under mpiexec: each rank its batches, sums merged
        cbs = CallbackList(callbacks or [], trainer=self)
        start = time.perf_counter()
        logs = evaluate_batches(self.model, self.eval_step, data, [_fresh(m) for m in self.metrics], cbs,
                                self.state, "evaluate", device=self.device, scalar_only=False)
        if verbose:
            print(f"evaluate - {format_duration(time.perf_counter() - start)} - {data.steps} steps - "
                  f"{format_logs(logs)}", flush=True)
        return logs

    def predict(self, x, batch_size: int | None = None):
        """The model's outputs for ``x`` (arrays, a Dataset or a DataLoader; targets in the batches are
        ignored) as a NumPy array — a tuple of arrays for a model with several outputs. Runs in eval
        mode under ``no_grad`` and restores the model's previous mode."""
        data = make_data(x, what="Trainer.predict", batch_size=batch_size, require_y=False)
        return stack_outputs(predict_batches(self.model, self.predict_step, data, self.state, self.device))

    # ------------------------------------------------------------------------------ the model and its batches
    @property
    def device(self) -> Device:
        """The model's device (that of its first parameter; CPU for a model without parameters)."""
        if self._device is not None:
            return self._device
        for p in self.model.parameters():
            return p.device
        return Device("cpu")

    def parameter_name(self, param) -> str:
        """The dotted name of ``param`` in the model (``"0.weight"``), or its place in the optimizer."""
        if self._param_names is None:
            self._param_names = {id(p): name for name, p in self.model.named_parameters()}
        if id(param) in self._param_names:
            return self._param_names[id(param)]
        for opt in self._optimizers():
            for g, group in enumerate(opt.param_groups):
                for j, p in enumerate(group["params"]):
                    if p is param:
                        return f"{type(opt).__name__}.param_groups[{g}][{j}]"
        return f"<parameter of shape {tuple(param.shape)}>"

    def _optimizers(self):
        return optimizers_in(self.state_objects())

    batch_size_of = staticmethod(steps.batch_size_of)

    def to_device(self, t):
        """``t`` (a Tensor or array) on the model's device (the device found when fit / evaluate /
        predict started)."""
        device = self.state.device
        return steps.move_to(t, device if device is not None else self.device)

    def unpack_batch(self, batch):
        """``(x, y, sample_weight)`` of a batch (y and weight None when absent), on the model's device,
        with the inputs checked for NaN / infinite values."""
        parts = steps.split_batch(batch)
        k = len(parts)
        x = self.to_device(parts[0])
        y = self.to_device(parts[1]) if k > 1 else None
        w = self.to_device(parts[2]) if k > 2 else None
        steps.check_finite(x, "inputs (x)", self.state)
        if y is not None and backend.is_floating(y.dtype):
            steps.check_finite(y, "targets (y)", self.state)
        return x, y, w

    def forward(self, x):
        """``model(x)``; an error gets the batch shape and, when the first layer's input size does not
        match, that layer's name and expected vs given size."""
        try:
            return self.model(x)
        except (ValueError, RuntimeError, TypeError, IndexError) as exc:
            message = steps.forward_error_message(self.model, exc, x, self.state.where())
            raise steps.rebuild(exc, message) from exc

    def compute_loss(self, pred, y, sample_weight=None, class_weight: bool = False):
        """The (weighted) mean loss of a batch. ``class_weight=True`` applies fit's class weights."""
        if y is None:
            raise ValueError("Trainer: the batch has no targets, but the loss needs them; batches must be (x, y) "
                             "(override train_step to train without targets)")
        state = self.state
        if self.loss.uses_class_indices:  # targets taken as they are: check the labels
            steps.check_class_targets(self.loss.name, pred, y, state)
        else:
            y = self.loss.prepare_target(pred, y)
        weight = None if sample_weight is None else sample_weight.array.reshape(-1)
        if class_weight and state.class_weight is not None:
            cw = steps.class_weights_for(self.loss.name, state.class_weight, pred, y)
            weight = cw if weight is None else weight * cw.astype(weight.dtype)
        try:
            return self.loss(pred, y, weight)
        except (ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise steps.rebuild(
                exc, f"Trainer: computing the loss {self.loss.name!r} for outputs of shape {pred.shape} and "
                     f"targets of shape {y.shape} ({y.dtype}) failed ({state.where()}): {exc}") from exc

    def update_metrics(self, pred, y, sample_weight=None) -> None:
        """Feed a batch to the metrics being tracked (``state.metrics``: training or validation ones)."""
        metrics = self.state.metrics
        if not metrics or y is None:
            return
        y = self.loss.prepare_target(pred, y)
        pred = pred.detach() if isinstance(pred, Tensor) else pred
        for metric in metrics:
            metric.update(pred, y, sample_weight)

    # ------------------------------------------------------------------------------ optimisation
    def backward(self, loss) -> None:
        """``loss.backward()``, scaled by ``state.loss_scale`` for gradient accumulation; the loss is
        kept in ``state.step_losses`` for the ``on_before_optimizer_step`` checks (TerminateOnNaN)."""
        state = self.state
        state.step_losses.append(Tensor._make(loss.array))  # detached
        (loss * state.loss_scale if state.loss_scale != 1.0 else loss).backward()

    def optimizer_step(self, optimizer=None) -> bool:
        """Apply the accumulated gradients with ``optimizer`` (default: the trainer's) when this batch
        ends an accumulation group: ``on_before_optimizer_step`` callbacks (they see the raw, unclipped
        gradients, and may cancel the step by setting ``stop_training``), clipping to
        ``state.grad_clip_norm``, ``step()``, ``zero_grad()`` and, with ``scheduler_interval="step"``,
        the scheduler. Returns whether the step was applied."""
        optimizer = self.optimizer if optimizer is None else optimizer
        if optimizer is None:
            raise ValueError("Trainer: no optimizer; pass one to Trainer(model, optimizer, ...)")
        state = self.state
        if not state.accumulation_boundary:
            return False
        if state.parallel is not None:  # under mpiexec: the mean gradient over the ranks
            state.parallel.average_gradients(optimizer)
        if self.callbacks.callbacks:  # (a CallbackList with no callbacks has nothing to call)
            self.callbacks.on_before_optimizer_step(optimizer)
        if state.parallel is not None and state.parallel.stops_before_step:  # TerminateOnNaN on one rank: all
            state.stop_training = state.parallel.agree(state.stop_training)
        if state.stop_training:
            state.step_losses = []
            return False
        if state.grad_clip_norm is not None:
            clip_grad_norm_([p for group in optimizer.param_groups for p in group["params"]], state.grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad()
        if optimizer is self.optimizer and self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        state.step_losses = []
        return True

    # ------------------------------------------------------------------------------ the steps
    def train_step(self, batch) -> dict:
        """One training batch: forward, (weighted) loss, backward, optimizer step, metrics. Returns the
        batch's logs, ``{"loss": loss}``; the Trainer averages every returned value over the epoch
        (weighted by batch size) and adds the metrics. Override for other training schemes."""
        x, y, w = self.unpack_batch(batch)
        pred = self.forward(x)
        loss = self.compute_loss(pred, y, w, class_weight=True)
        self.backward(loss)
        self.optimizer_step()
        self.update_metrics(pred, y)
        return {"loss": loss}

    def eval_step(self, batch) -> dict:
        """One validation / evaluation batch (eval mode, no graph): loss and metrics, no class weights."""
        x, y, w = self.unpack_batch(batch)
        pred = self.forward(x)
        loss = self.compute_loss(pred, y, w)
        self.update_metrics(pred, y)
        return {"loss": loss}

    def predict_step(self, batch):
        """The model's output for one batch (its x; targets in the batches are ignored)."""
        x, _, _ = self.unpack_batch(batch)
        return self.forward(x)
