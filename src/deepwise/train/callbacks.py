"""Callbacks: code that runs at fixed points of ``Trainer.fit`` (Keras' hook names).

    on_train_begin(logs) / on_train_end(logs)
    on_epoch_begin(epoch, logs) / on_epoch_end(epoch, logs)         epoch counts from 0
    on_train_batch_begin(batch, logs) / on_train_batch_end(batch, logs)   batch: index in the epoch
    on_test_begin(logs) / on_test_end(logs), on_test_batch_begin/end  (validation and evaluate)
    on_before_optimizer_step(optimizer)    gradients are ready, the update is not applied yet

``self.trainer`` is the Trainer (``self.model`` its model); ``self.trainer.state`` is where the loop
is and what this fit was asked to do (``deepwise.train.loop.LoopState``: ``epoch``, ``batch_index``,
``global_step``, ``logs``, ``epochs``, ``steps_per_epoch``, ``grad_clip_norm``, ...). Setting
``trainer.state.stop_training = True`` (or ``trainer.stop_training``, Keras' spelling) ends training
after the current batch (the epoch still finishes: validation and on_epoch_end run); setting it in
``on_before_optimizer_step`` also cancels that step, so a bad update never reaches the weights.
Epoch logs hold ``loss``, the metrics, their ``val_`` versions and ``lr``; batch logs hold the
running (epoch so far) loss and metrics.

A callback with state implements ``state_dict()`` / ``load_state_dict()``: a Trainer checkpoint keeps
it, and ``fit(resume_from=...)`` restores it right after ``on_train_begin``. A checkpoint taken in
the middle of an epoch resumes without calling ``on_epoch_begin`` again for that epoch.
"""

from __future__ import annotations

import math
import os

import numpy as np

from deepwise import io as dw_io
from deepwise.train.callback_base import (
    HOOKS,
    Callback,
    CallbackList,
    check_monitor_planned,
    copy_weights,
    monitor_mode,
    monitored_value,
    takes_metric,
)
from deepwise.train.callbacks_logging import CSVLogger, ProgressBar, TerminateOnNaN
from deepwise.train.history import History

__all__ = [
    "Callback", "CallbackList", "CSVLogger", "EarlyStopping", "History", "LambdaCallback", "LearningRateScheduler",
    "ModelCheckpoint", "ProgressBar", "ReduceLROnPlateau", "TerminateOnNaN",
]


# ---------------------------------------------------------------------------------------------
class EarlyStopping(Callback):
    """Stop when ``monitor`` has stopped improving (Keras semantics).

    Each epoch (from ``start_from_epoch`` on) counts one more epoch without improvement, or resets
    the count when the value beats the best so far by more than ``min_delta`` (and beats ``baseline``
    when one is given). Training stops when the count reaches ``patience``. With
    ``restore_best_weights`` the model gets the weights of the best epoch back when training ends —
    however it ends: stopped early, at the last epoch, by TerminateOnNaN or by a Ctrl-C that
    ``fit(checkpoint_on_interrupt=...)`` caught (an exception out of fit, KeyboardInterrupt
    included, skips ``on_train_end``).

    After training: ``stopped_epoch`` (0 if it never stopped), ``best``, ``best_epoch``.
    """

    def __init__(self, monitor: str = "val_loss", min_delta: float = 0.0, patience: int = 0, verbose: int = 0,
                 mode: str = "auto", baseline: float | None = None, restore_best_weights: bool = False,
                 start_from_epoch: int = 0):
        if patience < 0 or int(patience) != patience:
            raise ValueError(f"EarlyStopping: patience must be an int >= 0, got {patience!r}")
        self.monitor = monitor
        self.mode = monitor_mode("EarlyStopping", monitor, mode)
        self.min_delta = abs(float(min_delta))
        self.patience = int(patience)
        self.verbose = verbose
        self.baseline = None if baseline is None else float(baseline)
        self.restore_best_weights = bool(restore_best_weights)
        self.start_from_epoch = int(start_from_epoch)
        self._reset()

    def _reset(self):
        self.wait = 0
        self.stopped_epoch = 0
        self.best = None
        self.best_epoch = 0
        self.best_weights = None

    def _improves(self, value, reference) -> bool:
        if math.isnan(value):
            return False
        if reference is None:
            return True
        if self.mode == "min":
            return value + self.min_delta < reference
        return value - self.min_delta > reference

    def on_train_begin(self, logs=None):
        check_monitor_planned("EarlyStopping", self.monitor, self.trainer)
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = monitored_value("EarlyStopping", self.monitor, logs)
        if epoch < self.start_from_epoch:
            return
        if self.restore_best_weights and self.best_weights is None:
            self.best_weights = copy_weights(self.model)  # so there is always something to restore
            self.best_epoch = epoch
        self.wait += 1
        if self._improves(current, self.best):
            self.best = current
            self.best_epoch = epoch
            if self.restore_best_weights:
                self.best_weights = copy_weights(self.model)
            if self.baseline is None or self._improves(current, self.baseline):
                self.wait = 0
            return
        if self.wait >= self.patience and epoch > 0:
            self.stopped_epoch = epoch
            self.trainer.state.stop_training = True

    def on_train_end(self, logs=None):
        if self.stopped_epoch > 0 and self.verbose:
            print(f"Epoch {self.stopped_epoch + 1}: early stopping (no improvement of {self.monitor} for "
                  f"{self.wait} epochs)")
        if self.restore_best_weights and self.best_weights is not None:
            if self.verbose:
                print(f"Restoring the weights of epoch {self.best_epoch + 1} ({self.monitor} = {self.best:.6g})")
            self.model.load_state_dict(self.best_weights)

    def state_dict(self):
        return {"wait": self.wait, "stopped_epoch": self.stopped_epoch, "best": self.best,
                "best_epoch": self.best_epoch, "best_weights": self.best_weights}

    def load_state_dict(self, state):
        self.wait = int(state["wait"])
        self.stopped_epoch = int(state["stopped_epoch"])
        self.best = None if state["best"] is None else float(state["best"])
        self.best_epoch = int(state["best_epoch"])
        weights = state.get("best_weights")
        self.best_weights = None if weights is None else {k: np.array(v) for k, v in weights.items()}


# ---------------------------------------------------------------------------------------------
class ModelCheckpoint(Callback):
    """Save the model at the end of each epoch.

    ``filepath`` may hold ``{epoch}`` (1-based, as Keras) and any log value, e.g.
    ``"ckpt/model-{epoch:02d}-{val_loss:.3f}.safetensors"``. With ``save_best_only`` a file is written
    only when ``monitor`` beats the best value so far (the best is kept across resume). With
    ``save_weights_only=True`` (default) the file is ``dw.io.save(model.state_dict())`` (safetensors,
    atomic; load it with ``model.load_state_dict(dw.load(path))``); with False it is a full training
    checkpoint (weights, optimizer, progress...) that ``fit(resume_from=path)`` continues from, written
    after every callback has run for the epoch.
    """

    rank_zero_only = True  # it prints or writes files: under mpiexec, rank 0 alone

    def __init__(self, filepath, monitor: str = "val_loss", verbose: int = 0, save_best_only: bool = False,
                 mode: str = "auto", save_weights_only: bool = True, initial_value_threshold: float | None = None):
        self.filepath = os.fspath(filepath)
        self.monitor = monitor
        self.verbose = verbose
        self.save_best_only = bool(save_best_only)
        self.save_weights_only = bool(save_weights_only)
        self.mode = monitor_mode("ModelCheckpoint", monitor, mode)
        self.best = None if initial_value_threshold is None else float(initial_value_threshold)
        self.saved: list[str] = []

    def _better(self, value) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        return value < self.best if self.mode == "min" else value > self.best

    def on_train_begin(self, logs=None):
        if self.save_best_only:
            check_monitor_planned("ModelCheckpoint", self.monitor, self.trainer)

    def _path(self, epoch, logs) -> str:
        try:
            return self.filepath.format(epoch=epoch + 1, **(logs or {}))
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(f"ModelCheckpoint: cannot fill in filepath {self.filepath!r} ({exc!r}); it may use "
                             f"{{epoch}} and the log names {list(logs or {})}") from None

    def on_epoch_end(self, epoch, logs=None):
        if self.save_best_only:
            current = monitored_value("ModelCheckpoint", self.monitor, logs)
            if not self._better(current):
                return
            previous, self.best = self.best, current
            if self.verbose:
                print(f"Epoch {epoch + 1}: {self.monitor} improved from {previous} to {current:.6g}, saving")
        path = self._path(epoch, logs)
        if self.save_weights_only:
            dw_io.save(self.model.state_dict(), path)
        else:
            self.trainer.request_checkpoint(path)
        self.saved.append(path)
        if self.verbose and not self.save_best_only:
            print(f"Epoch {epoch + 1}: saved {path}")

    def state_dict(self):
        return {"best": self.best}

    def load_state_dict(self, state):
        self.best = None if state.get("best") is None else float(state["best"])


# ---------------------------------------------------------------------------------------------
class ReduceLROnPlateau(Callback):
    """Multiply the learning rate by ``factor`` when ``monitor`` has not improved (by more than
    ``min_delta``, relative to the best) for ``patience`` epochs; then wait ``cooldown`` epochs before
    counting again; never go below ``min_lr``. Acts on every param group of the trainer's optimizer
    (or of ``optimizer=``). Keras semantics."""

    def __init__(self, monitor: str = "val_loss", factor: float = 0.1, patience: int = 10, verbose: int = 0,
                 mode: str = "auto", min_delta: float = 1e-4, cooldown: int = 0, min_lr: float = 0.0,
                 optimizer=None):
        if not 0.0 < float(factor) < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1) (it multiplies the rate), got {factor!r}")
        self.monitor = monitor
        self.factor = float(factor)
        self.patience = int(patience)
        self.verbose = verbose
        self.mode = monitor_mode("ReduceLROnPlateau", monitor, mode)
        self.min_delta = float(min_delta)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.optimizer = optimizer
        self._reset()

    def _reset(self):
        self.best = math.inf if self.mode == "min" else -math.inf
        self.wait = 0
        self.cooldown_counter = 0

    def _improves(self, value) -> bool:
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def on_train_begin(self, logs=None):
        check_monitor_planned("ReduceLROnPlateau", self.monitor, self.trainer)
        self._reset()

    def on_epoch_end(self, epoch, logs=None):
        current = monitored_value("ReduceLROnPlateau", self.monitor, logs)
        if math.isnan(current):
            return
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self._improves(current):
            self.best = current
            self.wait = 0
            return
        if self.cooldown_counter > 0:
            return
        self.wait += 1
        if self.wait >= self.patience:
            optimizer = self.optimizer if self.optimizer is not None else self.trainer.optimizer
            reduced = False
            for group in optimizer.param_groups:
                old = float(group["lr"])
                if old > self.min_lr:
                    group["lr"] = max(old * self.factor, self.min_lr)
                    reduced = True
            if reduced:
                if self.verbose:
                    lrs = ", ".join(f"{g['lr']:.4g}" for g in optimizer.param_groups)
                    print(f"Epoch {epoch + 1}: ReduceLROnPlateau reducing the learning rate to {lrs}")
                self.cooldown_counter = self.cooldown
                self.wait = 0

    def state_dict(self):
        return {"best": self.best, "wait": self.wait, "cooldown_counter": self.cooldown_counter}

    def load_state_dict(self, state):
        self.best = float(state["best"])
        self.wait = int(state["wait"])
        self.cooldown_counter = int(state["cooldown_counter"])


# ---------------------------------------------------------------------------------------------
class LearningRateScheduler(Callback):
    """Set the learning rate every epoch.

    ``schedule`` is either a function ``fn(epoch, lr) -> new lr`` (called at the start of each epoch
    with the current rate of param group 0; the result goes to every group), or a deepwise
    ``optim.lr_scheduler`` object, stepped at the end of each epoch (a ReduceLROnPlateau-style
    scheduler gets ``logs[monitor]``). The scheduler's state is kept in checkpoints.
    """

    def __init__(self, schedule, verbose: int = 0, monitor: str = "val_loss"):
        self.is_object = hasattr(schedule, "step") and hasattr(schedule, "state_dict")
        if not self.is_object and not callable(schedule):
            raise TypeError("LearningRateScheduler: schedule must be a function fn(epoch, lr) -> lr or an "
                            f"optim.lr_scheduler object, got {type(schedule).__name__}")
        self.schedule = schedule
        self.verbose = verbose
        self.monitor = monitor
        self.needs_metric = self.is_object and takes_metric(schedule)

    def _optimizer(self):
        return getattr(self.schedule, "optimizer", None) or self.trainer.optimizer

    def on_train_begin(self, logs=None):
        if self.needs_metric:
            check_monitor_planned("LearningRateScheduler", self.monitor, self.trainer)

    def on_epoch_begin(self, epoch, logs=None):
        if self.is_object:
            return
        optimizer = self._optimizer()
        lr = self.schedule(epoch, float(optimizer.param_groups[0]["lr"]))
        try:
            lr = float(lr)
        except (TypeError, ValueError):
            raise TypeError(f"LearningRateScheduler: the schedule returned {lr!r}; it must return a number") from None
        if not math.isfinite(lr) or lr < 0:
            raise ValueError(f"LearningRateScheduler: the schedule returned lr={lr} for epoch {epoch}; "
                             "it must be finite and >= 0")
        for group in optimizer.param_groups:
            group["lr"] = lr
        if self.verbose:
            print(f"Epoch {epoch + 1}: LearningRateScheduler setting the learning rate to {lr:.6g}")

    def on_epoch_end(self, epoch, logs=None):
        if not self.is_object:
            return
        if self.needs_metric:
            self.schedule.step(monitored_value("LearningRateScheduler", self.monitor, logs))
        else:
            self.schedule.step()

    def state_dict(self):
        return {"schedule": self.schedule.state_dict()} if self.is_object else {}

    def load_state_dict(self, state):
        if self.is_object and "schedule" in state:
            self.schedule.load_state_dict(state["schedule"])


# ---------------------------------------------------------------------------------------------
class LambdaCallback(Callback):
    """A callback from plain functions, one per hook, e.g.
    ``LambdaCallback(on_epoch_end=lambda epoch, logs: print(epoch, logs["loss"]))``.

    Hook functions take the hook's arguments: ``(epoch, logs)``, ``(batch, logs)``, ``(logs)`` or
    ``(optimizer)``. Unknown hook names raise."""

    def __init__(self, **hooks):
        unknown = [name for name in hooks if name not in HOOKS]
        if unknown:
            raise TypeError(f"LambdaCallback: unknown hook(s) {unknown}; the hooks are {list(HOOKS)}")
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback: {name} must be callable, got {type(fn).__name__}")
            setattr(self, name, fn)
