"""The ``Metric`` base class and the array helpers the metrics share (see ``deepwise.train.metrics``)."""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.tensor import Tensor

__all__ = ["Metric", "as_array", "safe_div", "sample_weights", "to_host", "weighted_sum"]


def as_array(value):
    """Tensor / array / array-like -> array (device kept); a Tensor's graph is never touched."""
    if isinstance(value, Tensor):
        return value.array
    if backend.is_array(value):
        return value
    return np.asarray(value)


def to_host(arr) -> np.ndarray:
    return backend.to_device(arr, backend.Device("cpu")) if backend.is_array(arr) else np.asarray(arr)


def sample_weights(weight, n, xp, what):
    """Per-sample weights as a float64 (N,) array, or None."""
    if weight is None:
        return None
    w = as_array(weight)
    w = xp.asarray(w).astype(xp.float64).reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{what}: got {w.shape[0]} sample weights for a batch of {n} samples")
    return w


def weighted_sum(values, w, xp):
    """Sum over a batch of per-element values (N, ...) weighted per sample, and the matching total weight.
    Booleans (hits) are counted exactly as integers; other values are summed in float64."""
    if w is None:
        total = values.sum() if values.dtype == bool else values.sum(dtype=xp.float64)
        return total, float(values.size)
    v = values.reshape(values.shape[0], -1).astype(xp.float64)
    return (v.sum(axis=1) * w).sum(), w.sum() * v.shape[1]


class Metric:
    """Base class: subclasses implement ``update``, ``result`` and ``reset`` and list the names of
    their running-state attributes in ``_state`` (numbers or arrays), which ``state_dict`` saves.

    ``scalar`` is False for metrics whose result is not one number (``ConfusionMatrix``): those can be
    computed by ``Trainer.evaluate`` but not logged per epoch.
    """

    name = "metric"
    scalar = True
    _state: tuple[str, ...] = ()

    def __init__(self, name: str | None = None):
        if name is not None:
            if not isinstance(name, str) or not name:
                raise ValueError(f"{type(self).__name__}: name must be a non-empty string, got {name!r}")
            self.name = name
        self.reset()

    def update(self, pred, target, weight=None) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement update(pred, target, weight=None)")

    def result(self):
        raise NotImplementedError(f"{type(self).__name__} must implement result()")

    def reset(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} must implement reset()")

    def state_dict(self) -> dict:
        """The running values as host NumPy arrays / Python numbers (a snapshot, safe to keep)."""
        out = {}
        for key in self._state:
            value = getattr(self, key)
            if backend.is_array(value):
                value = np.array(to_host(value))
            out[key] = value
        return out

    def load_state_dict(self, state: dict) -> None:
        missing = [k for k in self._state if k not in state]
        if missing:
            raise ValueError(f"{type(self).__name__}.load_state_dict: the state lacks {missing}")
        for key in self._state:
            value = state[key]
            if isinstance(value, Tensor):
                value = value.array
            if backend.is_array(value) or isinstance(value, np.generic):
                value = np.array(to_host(value))
                if value.ndim == 0:  # running sums come back as Python numbers
                    value = value.item()
            setattr(self, key, value)

    def merge_state_dicts(self, states: list) -> dict:
        """One state from the ``state_dict()``s of the same metric run on disjoint parts of the data
        (the ranks of a data-parallel job): by default each running value is summed (counts, totals,
        confusion matrices), None meaning "nothing seen yet". A metric whose state does not add up
        overrides this (``R2Score`` merges means and spreads with Chan's formula)."""
        out = {}
        for key in self._state:
            values = [s[key] for s in states if s.get(key) is not None]
            if not values:
                out[key] = None
            elif isinstance(values[0], (bool, np.bool_)):
                out[key] = any(bool(v) for v in values)
            else:
                total = values[0]
                for v in values[1:]:
                    total = total + v
                out[key] = total
        return out

    def __call__(self, pred, target, weight=None):
        """Update with one batch and return the running result."""
        self.update(pred, target, weight)
        return self.result()

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r})"


def safe_div(num, den):
    num, den = float(num), float(den)
    return num / den if den != 0 else float("nan")
