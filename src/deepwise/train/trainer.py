"""``Trainer``: Keras' ``fit`` / ``evaluate`` / ``predict`` around a deepwise (PyTorch-style) model.

    trainer = dw.Trainer(model, dw.optim.Adam(model.parameters(), lr=1e-3), loss="cross_entropy",
                         metrics=["accuracy"])
    history = trainer.fit(x, y, epochs=20, batch_size=64, validation_split=0.1,
                          callbacks=[dw.callbacks.EarlyStopping(patience=3, restore_best_weights=True)])
    trainer.evaluate(x_test, y_test)          # {"loss": ..., "accuracy": ...}
    trainer.predict(x_test)                   # NumPy array of outputs

One epoch: ``on_epoch_begin`` -> for each batch: ``on_train_batch_begin``, ``train_step(batch)``,
``on_train_batch_end`` -> validation (``on_test_begin/end``) -> ``lr`` logged -> the scheduler's epoch
step -> ``on_epoch_end`` -> the History row -> checkpoints. ``train_step`` / ``eval_step`` /
``predict_step`` are methods to override (see ``deepwise.train.steps``).

Checkpoints and resume (``deepwise.train.checkpoint``): ``fit(checkpoint_dir=d)`` keeps
``d/last.ckpt`` up to date — after every epoch, and with ``checkpoint_every=N`` also every N training
batches (at the first batch that ends a gradient-accumulation group). ``fit(resume_from=d_or_file,
epochs=E)`` continues to epoch E exactly as if never stopped: weights, optimizer and scheduler
state, callback states, History, the random generator, and in the middle of an epoch that epoch's
data order (the generator state at its start is saved and the finished batches are drawn again and
skipped) and its running loss and metric sums. Ctrl-C (SIGINT, main thread) during ``fit`` stops
after the current batch (or accumulation group), writes a checkpoint (``last.ckpt`` in
``checkpoint_dir``, else ``./deepwise_interrupted.ckpt``), prints how to resume, runs
``on_train_end`` and returns the History with ``history.interrupted = True`` (as Keras returns
rather than raises). A second Ctrl-C aborts at once with KeyboardInterrupt.
"""

from __future__ import annotations

import copy
import os

from deepwise import random as dw_random
from deepwise.backend import Device
from deepwise.data import DataLoader
from deepwise.train import checkpoint as ckpt_io
from deepwise.train import metrics as metrics_mod
from deepwise.train.callback_base import CallbackList, takes_metric
from deepwise.train.callbacks import ProgressBar
from deepwise.train.data import make_data, split_fit_data
from deepwise.train.data import validation_data as _validation_data
from deepwise.train.evaluation import EvaluationMixin, Tracker
from deepwise.train.history import History
from deepwise.train.losses import Loss, class_weight_vector
from deepwise.train.resume import CheckpointMixin
from deepwise.train.steps import StepsMixin

__all__ = ["Trainer"]

_RESERVED = ("loss", "lr", "epoch")


def _check_model(model):
    for attr in ("parameters", "named_parameters", "state_dict", "load_state_dict", "train", "eval", "named_modules"):
        if not hasattr(model, attr):
            raise TypeError(f"Trainer: model must be a deepwise nn.Module (it has no {attr}()), got "
                            f"{type(model).__name__}")
    if not callable(model):
        raise TypeError(f"Trainer: model {type(model).__name__} is not callable")


class Trainer(StepsMixin, CheckpointMixin, EvaluationMixin):
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
    """

    def __init__(self, model, optimizer=None, loss="cross_entropy", metrics=None, scheduler=None,
                 scheduler_interval: str = "epoch", device=None):
        _check_model(model)
        self.model = model
        self._device = None
        self._run_device = None
        self._loop_data = None
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
        # loop state, read by callbacks
        self.stop_training = False
        self.history: History | None = None
        self.callbacks = CallbackList()
        self.epoch = 0
        self.epochs = 0
        self.batch_index = 0
        self.global_step = 0
        self.steps_per_epoch = None
        self.epoch_samples = 0
        self.epoch_steps = 0
        self.step_losses: list = []
        self.log_names: list[str] | None = None
        # internals
        self._active_metrics = self.metrics
        self._class_weight = None
        self._grad_clip_norm = None
        self._is_boundary = True
        self._loss_scale = 1.0
        self._accum = 1
        self._phase = None
        self._phase_batch = 0
        self._param_names = None
        self._pending_checkpoints: list[str] = []
        self._interrupt_requested = False
        self._next_epoch = 0
        self._fit_settings: dict = {}
        self._epoch_rng_state = None
        self._tracker = None

    # ------------------------------------------------------------------------------ fit
    sample_shape = None  # shape of one input sample, seen in the first training batch (for summary())

    def summary(self, input_shape=None, **kwargs):
        """``dw.summary`` of the model: its layers, output shapes, parameters and memory. ``input_shape``
        (one sample, no batch dim) defaults to what ``fit`` last saw."""
        from deepwise.diagnostics import summary  # noqa: PLC0415

        input_shape = input_shape or self.sample_shape
        if input_shape is None:
            raise ValueError("Trainer.summary: pass input_shape=(...) (one sample, without the batch dim) "
                             "or call fit first so the trainer has seen the data")
        return summary(self.model, input_shape, **kwargs)

    def fit(self, x, y=None, epochs: int = 1, batch_size: int | None = None, validation_data=None,
            validation_split: float = 0.0, shuffle: bool | None = None, callbacks=None, class_weight=None,
            sample_weight=None, grad_clip_norm: float | None = None, grad_accumulation_steps: int = 1,
            verbose: int = 1, initial_epoch: int = 0, resume_from=None, checkpoint_dir=None,
            checkpoint_every="epoch", validation_batch_size: int | None = None) -> History:
        """Train for epochs ``initial_epoch .. epochs - 1`` and return the History (see the module
        docstring for the order of events, checkpoints and resume).

        ``x``: arrays / Tensors (with ``y``), a Dataset of (x, y[, weight]) samples, or a DataLoader.
        ``batch_size`` (default 32) and ``shuffle`` (default True) apply to arrays and Datasets.
        ``validation_split``: the fraction of samples held out, picked by a permutation from the seeded
        generator. ``class_weight``: dict or sequence, classification losses only. ``grad_clip_norm``:
        clip the global gradient norm before each step. ``grad_accumulation_steps``: step once every
        k batches with the mean gradient (the epoch's last group may be shorter; its mean is over its
        own batches). ``verbose``: 0 silent, 1 progress bar, 2 one line per epoch.
        """
        what = "Trainer.fit"
        if self.optimizer is None:
            raise ValueError(f"{what}: the Trainer has no optimizer; create it with Trainer(model, optimizer, ...)")
        epochs = self._check_int(what, "epochs", epochs, 1)
        initial_epoch = self._check_int(what, "initial_epoch", initial_epoch, 0)
        accum = self._check_int(what, "grad_accumulation_steps", grad_accumulation_steps, 1)
        if verbose not in (0, 1, 2):
            raise ValueError(f"{what}: verbose must be 0, 1 or 2, got {verbose!r}")
        if grad_clip_norm is not None and not (isinstance(grad_clip_norm, (int, float)) and grad_clip_norm > 0):
            raise ValueError(f"{what}: grad_clip_norm must be a positive number or None, got {grad_clip_norm!r}")
        if checkpoint_every != "epoch":
            if checkpoint_dir is None:
                raise ValueError(f"{what}: checkpoint_every={checkpoint_every!r} needs checkpoint_dir=")
            self._check_int(what, "checkpoint_every", checkpoint_every, 1)
        if validation_split and validation_data is not None:
            raise ValueError(f"{what}: pass validation_data or validation_split, not both")
        if any(not m.scalar for m in self.metrics):
            names = [m.name for m in self.metrics if not m.scalar]
            raise ValueError(f"{what}: metrics {names} give arrays, not numbers, so they cannot be logged per epoch; "
                             "compute them with trainer.evaluate(...)")
        ck = ckpt_io.load_training_checkpoint(resume_from) if resume_from is not None else None
        if ck is not None and initial_epoch:
            raise ValueError(f"{what}: initial_epoch comes from the checkpoint when resuming; do not pass both")

        # ---- data
        split_state = ck.settings.get("split_rng_state") if ck is not None else None
        if split_state is None:
            split_state = dw_random.get_rng_state()
        is_loader = isinstance(x, DataLoader)
        train = make_data(x, y, sample_weight, what=what, batch_size=batch_size,
                          shuffle=shuffle if (shuffle is not None or is_loader) else True, loss=self.loss)
        val = None
        if validation_split:
            train, val = split_fit_data(train, validation_split, what=what, batch_size=batch_size or 32,
                                        shuffle=True if shuffle is None else shuffle, split_state=split_state,
                                        advance_global=ck is None)
        elif validation_data is not None:
            val = _validation_data(validation_data, what=f"{what} (validation_data)",
                                   batch_size=validation_batch_size or batch_size or 32, loss=self.loss)
        self._class_weight = None
        vec = class_weight_vector(class_weight, self.loss)
        if vec is not None:
            self._class_weight = (vec, isinstance(class_weight, dict))

        # ---- settings, callbacks, history
        self._fit_settings = {
            "batch_size": batch_size, "n_train": train.n_samples, "steps_per_epoch": train.steps,
            "grad_accumulation_steps": accum, "validation_split": validation_split, "split_rng_state": split_state,
        }
        if ck is not None and ck.position.get("batch", 0):
            self._check_resume_settings(ck, what)
        cbs = list(callbacks or [])
        if verbose and not any(isinstance(cb, ProgressBar) for cb in cbs):
            cbs.insert(0, ProgressBar(verbose))
        self.callbacks = CallbackList(cbs, trainer=self)
        self.log_names = ["loss", *(m.name for m in self.metrics)]
        if val is not None:
            self.log_names += ["val_" + n for n in self.log_names]
        self.log_names.append("lr")
        history = History.from_dict(ck.history) if ck is not None else History()
        history.set_columns(self.log_names)
        history.params = {"epochs": epochs, "batch_size": batch_size or (32 if train.kind != "loader" else None),
                          "steps": train.steps, "samples": train.n_samples}
        self.history = history
        self._val_metrics = [self._fresh(m) for m in self.metrics]
        self._train_metrics = self.metrics
        self._tracker = Tracker(self._train_metrics)

        # ---- state
        self.epochs = epochs
        self.stop_training = False
        self._accum = accum
        self._grad_clip_norm = None if grad_clip_norm is None else float(grad_clip_norm)
        self._param_names = None
        self._pending_checkpoints = []
        self._interrupt_requested = False
        skip = 0
        if ck is not None:
            self._restore(ck, what)
            start_epoch = int(ck.position["epoch"])
            skip = int(ck.position.get("batch", 0))
            self.global_step = int(ck.position["global_step"])
        else:
            start_epoch = initial_epoch
            self.global_step = 0
        self._next_epoch = start_epoch
        self._checkpoint_dir = None if checkpoint_dir is None else os.fspath(checkpoint_dir)
        self._checkpoint_every = checkpoint_every
        self._checkpoint_due = False
        for opt in self._optimizers():
            opt.zero_grad()

        previous_handler = self._install_sigint()
        previous_device, self._run_device = self._run_device, self.device
        logs: dict = {}
        try:
            self.model.train()
            self.callbacks.on_train_begin({})
            if ck is not None:
                self.callbacks.load_state_dicts(ck.callbacks)
                dw_random.set_rng_state(ck.rng_state)
            for epoch in range(start_epoch, epochs):
                resume = ck if (ck is not None and epoch == start_epoch and skip) else None
                epoch_logs = self._fit_epoch(epoch, train, val, resume, skip)
                if epoch_logs is None:  # interrupted in the middle of the epoch
                    break
                logs = epoch_logs
                if self.stop_training or self._interrupt_requested:
                    break
        finally:
            self._restore_sigint(previous_handler)
            self._phase, self._loop_data = None, None
            self._run_device = previous_device
        self.callbacks.on_train_end(logs)
        return history

    @staticmethod
    def _check_int(what, name, value, low):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{what}: {name} must be an int >= {low}, got {value!r}")
        return value

    @staticmethod
    def _fresh(metric):
        m = copy.copy(metric)
        m.reset()
        return m

    def _check_resume_settings(self, ck, what):
        saved = ck.settings
        for key in ("batch_size", "n_train", "steps_per_epoch", "grad_accumulation_steps", "validation_split"):
            if saved.get(key) != self._fit_settings.get(key):
                raise ValueError(f"{what}: the checkpoint {ck.path} was taken in the middle of an epoch with "
                                 f"{key}={saved.get(key)!r}, but this fit has {key}={self._fit_settings.get(key)!r}; "
                                 "resume with the same data and settings (or from an end-of-epoch checkpoint)")

    # ------------------------------------------------------------------------------ one epoch
    def _accumulation(self, b: int, steps):
        accum = self._accum
        if accum == 1:
            return 1, True
        start = (b // accum) * accum
        size = accum if steps is None else min(accum, steps - start)
        return size, (b - start + 1) == size

    def _fit_epoch(self, epoch, train, val, resume, skip):
        self.epoch = epoch
        self._phase, self._loop_data = "train", train
        loader = train.loader
        steps = train.steps
        self.steps_per_epoch = steps
        set_epoch = getattr(loader, "set_epoch", None)
        if set_epoch is not None:
            set_epoch(epoch)
        tracker = self._tracker
        tracker.reset()
        self._active_metrics = self._train_metrics
        if resume is not None:
            self.model.train()
            self._epoch_rng_state = resume.position["epoch_rng_state"]
            dw_random.set_rng_state(self._epoch_rng_state)
            iterator = iter(loader)
            for k in range(skip):
                try:
                    next(iterator)
                except StopIteration:
                    raise ValueError(f"Trainer.fit: the checkpoint {resume.path} was taken after batch {skip} of "
                                     f"epoch {epoch + 1}, but the data now has only {k} batches") from None
            dw_random.set_rng_state(resume.rng_state)
            tracker.load_state_dict(resume.position["progress"])
            start = skip
        else:
            self.callbacks.on_epoch_begin(epoch, {})
            self.model.train()  # after the hook: the epoch trains in train mode whatever a callback did
            self._epoch_rng_state = dw_random.get_rng_state()
            iterator = iter(loader)
            start = 0
        self.epoch_samples, self.epoch_steps = tracker.count, tracker.steps
        # the batch hooks (and the running logs they get) only when some callback does something in them
        callbacks = self.callbacks
        batch_begin = callbacks.implements("on_train_batch_begin")
        batch_end = callbacks.implements("on_train_batch_end")
        every = self._checkpoint_every if isinstance(self._checkpoint_every, int) else None
        accumulate = self._accum > 1
        boundary = True
        self._is_boundary, self._loss_scale = True, 1.0
        pending = False
        for b, batch in enumerate(iterator, start=start):
            self.batch_index = self._phase_batch = b
            n = self.batch_size_of(batch)
            if accumulate:
                size, boundary = self._accumulation(b, steps)
                self._is_boundary, self._loss_scale = boundary, 1.0 / size
            if batch_begin:
                callbacks.on_train_batch_begin(b, {"batch": b, "size": n})
            if self.sample_shape is None:
                first = batch[0] if isinstance(batch, (tuple, list)) else batch
                self.sample_shape = tuple(first.shape[1:]) if hasattr(first, "shape") else None
            step_logs = self.train_step(batch)
            tracker.add(step_logs, n)
            self.global_step += 1
            pending = not boundary
            self.epoch_samples, self.epoch_steps = tracker.count, tracker.steps
            if batch_end:
                callbacks.on_train_batch_end(b, tracker.logs())
            if self.stop_training:
                break
            if every is not None and self.global_step % every == 0:
                self._checkpoint_due = True
            if not pending:
                if self._interrupt_requested:
                    self._interrupt_checkpoint(mid_epoch=True)
                    return None
                if self._checkpoint_due:
                    self.save_checkpoint(os.path.join(self._checkpoint_dir, ckpt_io.CHECKPOINT_NAME), _mid_epoch=True)
                    self._checkpoint_due = False
        if tracker.steps == 0:
            raise ValueError("Trainer.fit: the training data yielded no batches this epoch")
        if pending:
            if self.stop_training:  # stopped inside an accumulation group: its partial gradients are dropped
                for opt in self._optimizers():
                    opt.zero_grad()
            else:  # a loader of unknown length ended inside a group: apply it
                self._is_boundary = True
                self.optimizer_step()
        self._is_boundary, self._loss_scale = True, 1.0

        logs = tracker.logs()
        if val is not None:
            logs.update(self._evaluate_loader(val, self._val_metrics, self.callbacks, "validation", prefix="val_"))
        logs["lr"] = float(self.optimizer.param_groups[0]["lr"])
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            if takes_metric(self.scheduler):
                self.scheduler.step(logs["val_loss"] if "val_loss" in logs else logs["loss"])
            else:
                self.scheduler.step()
        self.callbacks.on_epoch_end(epoch, logs)
        self.history.record(epoch, logs)
        self._next_epoch = epoch + 1
        if self._checkpoint_dir is not None:
            self.save_checkpoint(os.path.join(self._checkpoint_dir, ckpt_io.CHECKPOINT_NAME))
            self._checkpoint_due = False
        for path in self._pending_checkpoints:
            self.save_checkpoint(path)
        self._pending_checkpoints = []
        if self._interrupt_requested:
            self._interrupt_checkpoint(mid_epoch=False)
        return logs
