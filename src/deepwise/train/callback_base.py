"""The callback base class, the list that dispatches hooks, and helpers for monitoring a log value.

See ``deepwise.train.callbacks`` for the hooks and the ready-made callbacks.
"""

from __future__ import annotations

import inspect

__all__ = [
    "HOOKS", "Callback", "CallbackList", "check_monitor_planned", "copy_weights", "monitor_mode", "monitored_value",
    "takes_metric",
]

_MAX_HINTS = ("acc", "precision", "recall", "f1", "r2", "auc")


def monitor_mode(who: str, monitor: str, mode: str) -> str:
    """'min' or 'max'. ``auto`` picks max for names containing acc/precision/recall/f1/r2/auc."""
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"{who}: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(h in monitor.lower() for h in _MAX_HINTS) else "min"


def check_monitor_planned(who: str, monitor: str, trainer) -> None:
    """Raise in ``on_train_begin`` when the fit will not log ``monitor`` (``trainer.state.log_names``;
    a callback used without a Trainer is not checked)."""
    planned = trainer.state.log_names if trainer is not None else None
    if planned and monitor not in planned:
        hint = ""
        if monitor.startswith("val_"):
            hint = " (pass validation_data= or validation_split= to fit, or monitor the training value)"
        raise ValueError(f"{who} monitors {monitor!r}, but this fit logs only {list(planned)}{hint}")


def monitored_value(who: str, monitor: str, logs: dict | None) -> float:
    logs = logs or {}
    if monitor not in logs:
        raise KeyError(f"{who}: the epoch logs have no {monitor!r}; they hold {list(logs)}")
    return float(logs[monitor])


def copy_weights(model) -> dict:
    """A snapshot of the model's state dict (parameters and buffers) as arrays on their device."""
    return {name: t.array.copy() for name, t in model.state_dict().items()}


def takes_metric(scheduler) -> bool:
    """True for schedulers whose step() needs a value (ReduceLROnPlateau-style: step(metrics))."""
    try:
        params = list(inspect.signature(scheduler.step).parameters.values())
    except (TypeError, ValueError):
        return False
    return any(p.default is inspect.Parameter.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
               for p in params)


class Callback:
    """Base class: override the hooks you need; all default to doing nothing.

    ``rank_zero_only``: under ``mpiexec``, run this callback on rank 0 alone (it prints or writes
    files: a progress bar, a checkpoint or log writer). Callbacks that change training
    (EarlyStopping, learning-rate schedules) run on every rank, on the same merged logs."""

    trainer = None
    rank_zero_only = False

    def set_trainer(self, trainer) -> None:
        self.trainer = trainer

    @property
    def model(self):
        return None if self.trainer is None else self.trainer.model

    def on_train_begin(self, logs=None): ...
    def on_train_end(self, logs=None): ...
    def on_epoch_begin(self, epoch, logs=None): ...
    def on_epoch_end(self, epoch, logs=None): ...
    def on_train_batch_begin(self, batch, logs=None): ...
    def on_train_batch_end(self, batch, logs=None): ...
    def on_test_begin(self, logs=None): ...
    def on_test_end(self, logs=None): ...
    def on_test_batch_begin(self, batch, logs=None): ...
    def on_test_batch_end(self, batch, logs=None): ...
    def on_before_optimizer_step(self, optimizer): ...

    def state_dict(self) -> dict:
        """What must survive a resume (numbers, strings, lists, dicts, arrays). Default: nothing."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned (called after ``on_train_begin`` on resume)."""


HOOKS = (
    "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end", "on_train_batch_begin",
    "on_train_batch_end", "on_test_begin", "on_test_end", "on_test_batch_begin", "on_test_batch_end",
    "on_before_optimizer_step",
)


class CallbackList:
    """Calls a hook on every callback in order. Each callback's state is keyed by its class name
    (``EarlyStopping``, then ``EarlyStopping_1`` for a second one, ...)."""

    def __init__(self, callbacks=(), trainer=None):
        self.callbacks = []
        for cb in callbacks or ():
            if isinstance(cb, type):
                raise TypeError(f"callbacks: got the class {cb.__name__}; pass an instance, {cb.__name__}(...)")
            if not isinstance(cb, Callback):
                raise TypeError(f"callbacks: {cb!r} is a {type(cb).__name__}, not a deepwise Callback")
            self.callbacks.append(cb)
        if trainer is not None:
            for cb in self.callbacks:
                cb.set_trainer(trainer)

    def __iter__(self):
        return iter(self.callbacks)

    def __len__(self):
        return len(self.callbacks)

    def keys(self) -> list[str]:
        seen: dict[str, int] = {}
        keys = []
        for cb in self.callbacks:
            base = type(cb).__name__
            n = seen.get(base, 0)
            seen[base] = n + 1
            keys.append(base if n == 0 else f"{base}_{n}")
        return keys

    def state_dicts(self) -> dict:
        return {key: cb.state_dict() for key, cb in zip(self.keys(), self.callbacks)}

    def load_state_dicts(self, states: dict) -> None:
        """Callbacks are matched by key; one absent from the checkpoint starts fresh."""
        for key, cb in zip(self.keys(), self.callbacks):
            if key in states:
                cb.load_state_dict(states[key])

    def implements(self, hook: str) -> bool:
        """Whether some callback does something in ``hook``: its class redefines the method, or the
        instance carries its own (``LambdaCallback``). The Trainer asks once per epoch and skips the
        per-batch hooks (and building their logs) when no callback listens."""
        default = getattr(Callback, hook)
        return any(getattr(getattr(cb, hook), "__func__", None) is not default for cb in self.callbacks)

    def _call(self, hook, *args):
        for cb in self.callbacks:
            getattr(cb, hook)(*args)

    def on_train_begin(self, logs=None):
        self._call("on_train_begin", logs)

    def on_train_end(self, logs=None):
        self._call("on_train_end", logs)

    def on_epoch_begin(self, epoch, logs=None):
        self._call("on_epoch_begin", epoch, logs)

    def on_epoch_end(self, epoch, logs=None):
        self._call("on_epoch_end", epoch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._call("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._call("on_train_batch_end", batch, logs)

    def on_test_begin(self, logs=None):
        self._call("on_test_begin", logs)

    def on_test_end(self, logs=None):
        self._call("on_test_end", logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._call("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._call("on_test_batch_end", batch, logs)

    def on_before_optimizer_step(self, optimizer):
        self._call("on_before_optimizer_step", optimizer)


