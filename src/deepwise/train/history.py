"""``History``: what ``Trainer.fit`` returns — one value per epoch for every logged quantity.

    history = trainer.fit(x, y, epochs=10, validation_split=0.1, metrics=["accuracy"])
    history.history["val_loss"]      # [0.61, 0.42, ...] Python floats, one per epoch
    history.epoch                    # [0, 1, ..., 9]
    history.to_csv("history.csv")    # epoch,loss,accuracy,val_loss,val_accuracy,lr

The columns are fixed when a run starts (loss, the metrics, their ``val_`` versions, lr); a value a
callback adds to the epoch logs becomes a column too. Every column has exactly one entry per epoch
(NaN where an epoch did not log it), so the table is always rectangular.
"""

from __future__ import annotations

import csv
import io
import math
from numbers import Real

from deepwise.io import atomic_write_text

__all__ = ["History"]


def _as_float(name, value) -> float | None:
    """A loggable number as a Python float; None for values that are not one number."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, Real):
        return float(value)
    size = getattr(value, "size", None)
    if size == 1 and hasattr(value, "item"):
        try:
            return float(value.item())
        except (TypeError, ValueError):
            return None
    return None


class History:
    """Per-epoch logs of a training run (Keras' ``History``).

    Attributes:
        history: dict name -> list of Python floats, one per recorded epoch.
        epoch: the epoch indices recorded (0-based, as the Trainer counts them).
        params: the run's settings (epochs, batch_size, steps per epoch, ...).
    """

    def __init__(self, columns=(), params=None):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.params: dict = dict(params or {})
        self.interrupted = False
        self.set_columns(columns)

    def set_columns(self, columns) -> None:
        """Declare columns up front (a run's fixed set). Existing columns keep their values; a new one
        is filled with NaN for the epochs already recorded."""
        for name in columns:
            if name not in self.history:
                self.history[name] = [math.nan] * len(self.epoch)

    def record(self, epoch: int, logs: dict) -> None:
        """Append one epoch. Values that are not single numbers (a confusion matrix) are skipped."""
        values = {}
        for name, value in logs.items():
            number = _as_float(name, value)
            if number is not None:
                values[name] = number
        self.set_columns(values)
        self.epoch.append(int(epoch))
        for name, column in self.history.items():
            column.append(values.get(name, math.nan))

    def __len__(self) -> int:
        return len(self.epoch)

    def __getitem__(self, name: str) -> list[float]:
        return self.history[name]

    def __contains__(self, name) -> bool:
        return name in self.history

    def best(self, monitor: str = "val_loss", mode: str = "min") -> tuple[int, float]:
        """(epoch, value) of the best value of ``monitor`` (``mode`` "min" or "max"), NaNs ignored."""
        if monitor not in self.history:
            raise KeyError(f"History.best: no column {monitor!r}; the columns are {list(self.history)}")
        if mode not in ("min", "max"):
            raise ValueError(f"History.best: mode must be 'min' or 'max', got {mode!r}")
        pairs = [(e, v) for e, v in zip(self.epoch, self.history[monitor]) if not math.isnan(v)]
        if not pairs:
            raise ValueError(f"History.best: {monitor!r} has no recorded values")
        pick = min if mode == "min" else max
        return pick(pairs, key=lambda ev: ev[1])

    # -------------------------------------------------------------------------- serialisation
    def to_dict(self) -> dict:
        """A JSON-serialisable copy: ``{"epoch": [...], "history": {...}, "params": {...}}``."""
        return {
            "epoch": list(self.epoch),
            "history": {k: list(v) for k, v in self.history.items()},
            "params": dict(self.params),
        }

    @classmethod
    def from_dict(cls, data: dict) -> History:
        if not isinstance(data, dict) or "epoch" not in data or "history" not in data:
            raise ValueError("History.from_dict: expected a dict with 'epoch' and 'history' (from to_dict())")
        h = cls(params=data.get("params"))
        h.epoch = [int(e) for e in data["epoch"]]
        for name, values in data["history"].items():
            if len(values) != len(h.epoch):
                raise ValueError(f"History.from_dict: column {name!r} has {len(values)} values for "
                                 f"{len(h.epoch)} epochs")
            h.history[name] = [float(v) for v in values]
        return h

    def to_csv(self, path, separator: str = ",") -> None:
        """Write ``epoch`` plus one column per logged name, one row per epoch, atomically."""
        buf = io.StringIO()
        writer = csv.writer(buf, delimiter=separator, lineterminator="\n")
        names = list(self.history)
        writer.writerow(["epoch", *names])
        for i, epoch in enumerate(self.epoch):
            writer.writerow([epoch, *(repr(self.history[n][i]) for n in names)])
        atomic_write_text(path, buf.getvalue())

    def __repr__(self):
        return f"History({len(self.epoch)} epochs; columns {list(self.history)})"
