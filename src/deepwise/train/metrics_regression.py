"""Regression metrics: MeanAbsoluteError, MeanSquaredError, RootMeanSquaredError, R2Score.

Re-exported by ``deepwise.train.metrics`` (read its docstring for the conventions).
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise.train.metric_base import Metric, as_array, safe_div, sample_weights, to_host, weighted_sum

__all__ = ["MeanAbsoluteError", "MeanSquaredError", "R2Score", "RootMeanSquaredError"]


def _regression_arrays(pred, target, what):
    p, t = as_array(pred), as_array(target)
    xp = backend.get_array_module(p)
    t = xp.asarray(t)
    if t.shape != p.shape:
        if t.size != p.size:
            raise ValueError(f"{what}: targets of shape {tuple(t.shape)} do not match predictions of shape "
                             f"{tuple(p.shape)}")
        t = t.reshape(p.shape)
    if p.ndim == 0:
        p, t = p.reshape(1), t.reshape(1)
    return p.astype(xp.float64), t.astype(xp.float64), xp


class _MeanError(Metric):
    _state = ("total", "count")

    def reset(self):
        self.total = 0.0
        self.count = 0.0

    def _error(self, d, xp):
        raise NotImplementedError

    def update(self, pred, target, weight=None):
        p, t, xp = _regression_arrays(pred, target, self.name)
        w = sample_weights(weight, p.shape[0], xp, self.name)
        s, n = weighted_sum(self._error(p - t, xp), w, xp)
        self.total = self.total + s
        self.count = self.count + n

    def result(self) -> float:
        return safe_div(self.total, self.count)


class MeanAbsoluteError(_MeanError):
    name = "mae"

    def _error(self, d, xp):
        return xp.abs(d)


class MeanSquaredError(_MeanError):
    name = "mse"

    def _error(self, d, xp):
        return d * d


class RootMeanSquaredError(MeanSquaredError):
    """The square root of the mean squared error over all samples seen (not a mean of batch RMSEs)."""

    name = "rmse"

    def result(self) -> float:
        return math.sqrt(super().result()) if self.count else float("nan")


class R2Score(Metric):
    """Coefficient of determination ``1 - SS_res / SS_tot`` per output column, averaged uniformly
    over columns. Column sums are merged batch by batch with Chan's update (stable, exact up to
    rounding); a constant column scores 1.0 if predicted exactly, else 0.0 (scikit-learn's rule)."""

    name = "r2"
    _state = ("weight", "mean", "m2", "sse")

    def reset(self):
        self.weight = None
        self.mean = None
        self.m2 = None
        self.sse = None

    def update(self, pred, target, weight=None):
        p, t, xp = _regression_arrays(pred, target, self.name)
        p2 = p.reshape(p.shape[0], -1)
        t2 = t.reshape(t.shape[0], -1)
        w = sample_weights(weight, p2.shape[0], xp, self.name)
        w2 = xp.ones((p2.shape[0], 1)) if w is None else w[:, None]
        nb = w2.sum(axis=0) * xp.ones(t2.shape[1])
        if nb.size == 0 or float(nb.max()) == 0.0:
            return
        mean_b = (w2 * t2).sum(axis=0) / nb
        m2_b = (w2 * (t2 - mean_b) ** 2).sum(axis=0)
        sse_b = (w2 * (t2 - p2) ** 2).sum(axis=0)
        if self.weight is None:
            self.weight, self.mean, self.m2, self.sse = nb, mean_b, m2_b, sse_b
            return
        if self.weight.shape != nb.shape:
            raise ValueError(f"{self.name}: this batch has {nb.shape[0]} outputs, earlier ones had "
                             f"{self.weight.shape[0]}")
        na = backend.to_device(self.weight, backend.device_of(nb))
        mean_a = backend.to_device(self.mean, backend.device_of(nb))
        n = na + nb
        delta = mean_b - mean_a
        self.mean = mean_a + delta * (nb / n)
        self.m2 = backend.to_device(self.m2, backend.device_of(nb)) + m2_b + delta ** 2 * (na * nb / n)
        self.sse = backend.to_device(self.sse, backend.device_of(nb)) + sse_b
        self.weight = n

    def merge_state_dicts(self, states: list) -> dict:
        """Column weights, means and spreads of disjoint parts merged with Chan's parallel formula."""
        weight = mean = m2 = sse = None
        for s in states:
            if s.get("weight") is None:
                continue
            nb, mean_b = np.asarray(s["weight"], np.float64), np.asarray(s["mean"], np.float64)
            m2_b, sse_b = np.asarray(s["m2"], np.float64), np.asarray(s["sse"], np.float64)
            if weight is None:
                weight, mean, m2, sse = nb, mean_b, m2_b, sse_b
                continue
            n = weight + nb
            delta = mean_b - mean
            mean = mean + delta * (nb / n)
            m2 = m2 + m2_b + delta ** 2 * (weight * nb / n)
            sse = sse + sse_b
            weight = n
        return {"weight": weight, "mean": mean, "m2": m2, "sse": sse}

    def result(self) -> float:
        if self.weight is None:
            return float("nan")
        m2, sse = to_host(self.m2), to_host(self.sse)
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(m2 > 0, 1.0 - sse / np.where(m2 > 0, m2, 1.0), np.where(sse == 0, 1.0, 0.0))
        return float(scores.mean())
