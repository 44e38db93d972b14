"""Callbacks that write or show what happens: CSVLogger, TerminateOnNaN, ProgressBar.

Re-exported by ``deepwise.train.callbacks``.
"""

from __future__ import annotations

import csv
import io
import math
import os
import sys

from deepwise import backend
from deepwise.io import atomic_write_text
from deepwise.train import progress
from deepwise.train.callback_base import Callback

__all__ = ["CSVLogger", "ProgressBar", "TerminateOnNaN"]


def _csv_value(value) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (int, str)):
        return str(value)
    size = getattr(value, "size", None)
    if size == 1:
        return repr(float(value.item()))
    return ""


class CSVLogger(Callback):
    """Append one row per epoch (``epoch`` plus every log value) to a CSV file, flushed each epoch.

    The columns are those of the first epoch logged. ``append=False`` starts a new file at the first
    epoch; ``append=True`` adds to an existing one (writing the header only to an empty file). On
    resume the file is cut back to the rows that were written when the checkpoint was taken, then
    appended to — so a run killed between a row and its checkpoint does not leave a duplicate row.
    """

    rank_zero_only = True  # it prints or writes files: under mpiexec, rank 0 alone

    def __init__(self, filename, separator: str = ",", append: bool = False):
        self.filename = os.fspath(filename)
        self.separator = separator
        self.append = bool(append)
        self.rows = 0
        self.columns = None
        self._resumed = False
        self._file = None

    def on_train_begin(self, logs=None):
        self._close()  # a file left open by a fit that raised
        self.rows = 0
        self.columns = None
        self._resumed = False

    def _close(self):
        if self._file is not None:
            self._file.close()
            self._file = None

    def state_dict(self):
        return {"rows": self.rows, "columns": self.columns}

    def load_state_dict(self, state):
        self.rows = int(state["rows"])
        self.columns = None if state.get("columns") is None else list(state["columns"])
        self._resumed = True

    def _open(self):
        if self._resumed and self.columns is not None:
            lines = []
            if os.path.exists(self.filename):
                with open(self.filename, newline="", encoding="utf-8") as f:
                    lines = f.read().splitlines(keepends=True)
            keep = lines[:1 + self.rows]
            if keep and keep[-1] and not keep[-1].endswith("\n"):
                keep[-1] += "\n"
            atomic_write_text(self.filename, "".join(keep))
            self._file = open(self.filename, "a", newline="", encoding="utf-8")
            self._needs_header = not keep
            return
        exists = os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        directory = os.path.dirname(os.path.abspath(self.filename))
        os.makedirs(directory, exist_ok=True)
        self._file = open(self.filename, "a" if self.append else "w", newline="", encoding="utf-8")
        self._needs_header = not (self.append and exists)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self._file is None:
            self._open()
        if self.columns is None:
            self.columns = [k for k, v in logs.items() if _csv_value(v) != ""]
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=self.separator, lineterminator="\n")
        if self._needs_header:
            writer.writerow(["epoch", *self.columns])
            self._needs_header = False
        writer.writerow([epoch, *(_csv_value(logs.get(c, "")) for c in self.columns)])
        self._file.write(buf.getvalue())
        self._file.flush()
        self.rows += 1

    def on_train_end(self, logs=None):
        self._close()


# ---------------------------------------------------------------------------------------------
class TerminateOnNaN(Callback):
    """Stop training as soon as the loss or a gradient is NaN or infinite — before the optimizer
    step, so the bad update never reaches the weights.

    The check runs in ``on_before_optimizer_step`` (every loss computed since the last step, then
    every gradient) and, for train steps that never call the optimizer through the Trainer, on the
    batch loss. The message names the epoch, the batch and the first parameter (by name) whose
    gradient is not finite; it is printed and kept in ``self.message`` (``self.parameter`` holds the
    name, or None when the loss itself went bad).
    """

    def __init__(self, verbose: int = 1):
        self.verbose = verbose
        self.message = None
        self.parameter = None

    def on_train_begin(self, logs=None):
        self.message = None
        self.parameter = None

    def _stop(self, message, parameter=None):
        self.message = message
        self.parameter = parameter
        self.trainer.state.stop_training = True
        if self.verbose:
            print(message)

    def _where(self) -> str:
        state = self.trainer.state
        return f"epoch {state.epoch + 1}, batch {state.batch_index}"

    def on_before_optimizer_step(self, optimizer):
        if self.message is not None:
            return
        for loss in self.trainer.state.step_losses:
            value = float(loss)
            if not math.isfinite(value):
                self._stop(f"TerminateOnNaN: the loss is {value} at {self._where()}; training stopped before "
                           "the optimizer step (the weights are those of the previous step)")
                return
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [p.grad.array for p in params]
        xp = backend.get_array_module(grads[0])
        # a sum is finite only if every element is: one cheap reduction per parameter, one sync in all
        sums = xp.stack([g.sum(dtype=xp.float64) if backend.is_floating(g.dtype) else xp.float64(0) for g in grads])
        if bool(xp.isfinite(sums).all()):
            return
        for p, g in zip(params, grads):
            if not bool(xp.isfinite(g).all()):
                name = self.trainer.parameter_name(p)
                kind = "NaN" if bool(xp.isnan(g).any()) else "infinite"
                self._stop(f"TerminateOnNaN: the gradient of parameter {name!r} (shape {tuple(g.shape)}) is "
                           f"{kind} at {self._where()}; training stopped before the optimizer step (the weights "
                           "are those of the previous step)", parameter=name)
                return

    def on_train_batch_end(self, batch, logs=None):
        if self.message is not None or not logs or "loss" not in logs:
            return
        value = float(logs["loss"])
        if not math.isfinite(value):
            self._stop(f"TerminateOnNaN: the loss is {value} at {self._where()}; training stopped")


# ---------------------------------------------------------------------------------------------
class ProgressBar(Callback):
    """Shows progress: ``verbose=1`` a live bar per epoch that fits the terminal (steps, ETA,
    samples/s, the running loss and metrics; at the epoch's end every log, validation and lr
    included), or, when standard output is not a terminal, one line per epoch plus a heartbeat line
    every ``heartbeat`` seconds within an epoch (None: none); ``verbose=2`` the lines even on a
    terminal. ``use_tqdm=True`` draws the live bar with tqdm. The Trainer adds one for
    ``fit(verbose=1|2)`` unless the callbacks already include a ProgressBar. After a Ctrl-C that
    ``fit(checkpoint_on_interrupt=...)`` caught, the live line is ended before anything else is printed."""

    rank_zero_only = True  # it prints or writes files: under mpiexec, rank 0 alone

    def __init__(self, verbose: int = 1, use_tqdm: bool | None = False,
                 heartbeat: float | None = progress.HEARTBEAT_SECONDS):
        if verbose not in (1, 2):
            raise ValueError(f"ProgressBar: verbose must be 1 (bar) or 2 (one line per epoch), got {verbose!r}")
        if heartbeat is not None and not (isinstance(heartbeat, (int, float)) and heartbeat > 0):
            raise ValueError(f"ProgressBar: heartbeat must be a positive number of seconds or None, got {heartbeat!r}")
        self.verbose = verbose
        self.use_tqdm = use_tqdm
        self.heartbeat = heartbeat
        self._bar = None
        self._line_mode = True

    def on_train_begin(self, logs=None):
        isatty = getattr(sys.stdout, "isatty", None)
        self._line_mode = self.verbose == 2 or not (isatty is not None and isatty())
        self._bar = None

    def _begin(self, epoch):
        state = self.trainer.state
        if self._line_mode:
            self._bar = progress.EpochLines(epoch, state.epochs, state.steps_per_epoch, stream=sys.stdout,
                                            heartbeat=self.heartbeat)
        else:
            self._bar = progress.EpochBar(epoch, state.epochs, state.steps_per_epoch, stream=sys.stdout,
                                          use_tqdm=self.use_tqdm)

    def on_epoch_begin(self, epoch, logs=None):
        self._begin(epoch)

    def on_train_batch_end(self, batch, logs=None):
        if self._bar is None:  # resumed in the middle of an epoch
            self._begin(self.trainer.state.epoch)
        self._bar.update(batch + 1, self.trainer.state.epoch_samples, logs or {})
        if self.trainer.state.interrupted:  # Ctrl-C: its message comes next, on a line of its own
            self._bar.end_line()

    def on_epoch_end(self, epoch, logs=None):
        if self._bar is None:
            self._begin(epoch)
        self._bar.close(logs or {}, steps=self.trainer.state.epoch_steps)
        self._bar = None

    def on_train_end(self, logs=None):
        if self._bar is not None:  # training ended inside an epoch (Ctrl-C)
            self._bar.end_line()
            self._bar = None


# ---------------------------------------------------------------------------------------------
