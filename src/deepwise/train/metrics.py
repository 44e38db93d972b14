"""Metrics streamed over batches: ``update(pred, target, weight=None)`` per batch, ``result()`` at any
time, ``reset()`` between epochs.

Each metric keeps running sums (on the predictions' device, in float64), never per-batch averages,
so the result over an epoch is exact whatever the batch sizes, including an uneven last batch:
accuracy is ``sum(w * correct) / sum(w)``, MSE is ``sum(w * err**2) / sum(w * outputs)`` and so on.

    acc = Accuracy()
    for xb, yb in loader:
        acc.update(model(xb), yb)
    acc.result()          # a Python float

Predictions of shape (N, C, ...) with C > 1 are class scores (logits, probabilities or
log-probabilities: only their argmax over dim 1 matters); targets are class indices (N, ...) or
one-hot / probability rows of the predictions' shape. Predictions of shape (N,) or (N, 1) are binary:
a probability compared with ``threshold``, or with ``from_logits=True`` a logit (``sigmoid(x) >
threshold``). A plain function ``fn(pred, target) -> float`` becomes a metric averaged over samples
(each batch's value weighted by its batch size).

Every metric has ``state_dict()`` / ``load_state_dict()`` so a checkpoint taken in the middle of an
epoch resumes with the same running values.
"""

from __future__ import annotations

import re

from deepwise.tensor import Tensor
from deepwise.train.metric_base import Metric, as_array
from deepwise.train.metrics_classification import (
    Accuracy,
    ConfusionMatrix,
    F1Score,
    Precision,
    Recall,
    TopKAccuracy,
)
from deepwise.train.metrics_regression import (
    MeanAbsoluteError,
    MeanSquaredError,
    R2Score,
    RootMeanSquaredError,
)

__all__ = [
    "Accuracy", "ConfusionMatrix", "F1Score", "MeanAbsoluteError", "MeanMetricWrapper", "MeanSquaredError",
    "Metric", "Precision", "R2Score", "Recall", "RootMeanSquaredError", "TopKAccuracy", "get",
]


# ------------------------------------------------------------------------------ custom functions
class MeanMetricWrapper(Metric):
    """A function ``fn(pred, target) -> float`` (or 0-d Tensor) as a metric: the batch values averaged
    with each batch weighted by its size (sample weights are not passed to ``fn``)."""

    _state = ("total", "count")

    def __init__(self, fn, name: str | None = None):
        if not callable(fn):
            raise TypeError(f"MeanMetricWrapper: fn must be callable, got {type(fn).__name__}")
        self.fn = fn
        super().__init__(name if name is not None else getattr(fn, "__name__", type(fn).__name__))

    def reset(self):
        self.total = 0.0
        self.count = 0

    def update(self, pred, target, weight=None):
        value = self.fn(pred, target)
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"metric {self.name!r} returned a tensor of shape {value.shape}; a metric "
                                 "function must return one number")
            value = value.item()
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TypeError(f"metric {self.name!r} returned {type(value).__name__}; a metric function must "
                            "return one number") from None
        n = int(as_array(pred).shape[0]) if as_array(pred).ndim else 1
        self.total += value * n
        self.count += n

    def result(self) -> float:
        return self.total / self.count if self.count else float("nan")


# ------------------------------------------------------------------------------------ by name
_BINARY_LOSSES = ("bce_with_logits",)

_NAMES = {
    "accuracy": Accuracy, "acc": Accuracy,
    "precision": Precision, "recall": Recall, "f1": F1Score, "f1_score": F1Score,
    "confusion_matrix": ConfusionMatrix,
    "mae": MeanAbsoluteError, "mean_absolute_error": MeanAbsoluteError,
    "mse": MeanSquaredError, "mean_squared_error": MeanSquaredError,
    "rmse": RootMeanSquaredError, "r2": R2Score, "r2_score": R2Score,
}
_TOP_K = re.compile(r"^top_?(\d+)_accuracy$")


def get(identifier, loss: str | None = None) -> Metric:
    """A Metric from a name (``"accuracy"``, ``"top5_accuracy"`` / ``"top_k_accuracy"`` (k=5),
    ``"precision"``, ``"recall"``, ``"f1"``, ``"mae"``, ``"mse"``, ``"rmse"``, ``"r2"``,
    ``"confusion_matrix"``), a Metric instance or class, or a function ``fn(pred, target)``.

    ``loss`` is the Trainer's loss name: with ``"bce_with_logits"`` the classification metrics made
    from names compare logits (``from_logits=True``)."""
    if isinstance(identifier, Metric):
        return identifier
    if isinstance(identifier, type) and issubclass(identifier, Metric):
        return identifier()
    if isinstance(identifier, str):
        key = identifier.lower()
        logits = loss in _BINARY_LOSSES
        if key == "top_k_accuracy":
            return TopKAccuracy(5, name=identifier)
        match = _TOP_K.match(key)
        if match:
            return TopKAccuracy(int(match.group(1)), name=identifier)
        cls = _NAMES.get(key)
        if cls is None:
            known = sorted(set(_NAMES) | {"top_k_accuracy", "top<k>_accuracy"})
            raise ValueError(f"unknown metric {identifier!r}; known names: {', '.join(known)} (or pass a Metric "
                             "or a function fn(pred, target) -> float)")
        if cls in (Accuracy, Precision, Recall, F1Score, ConfusionMatrix):
            return cls(from_logits=logits, name=identifier)
        return cls(name=identifier)
    if callable(identifier):
        return MeanMetricWrapper(identifier)
    raise TypeError(f"a metric must be a name, a Metric or a function fn(pred, target), got "
                    f"{type(identifier).__name__}")
