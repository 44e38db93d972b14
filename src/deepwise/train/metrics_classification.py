"""Classification metrics: Accuracy, TopKAccuracy, Precision, Recall, F1Score, ConfusionMatrix.

Re-exported by ``deepwise.train.metrics`` (read its docstring for the conventions).
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise.train.metric_base import Metric, as_array, safe_div, sample_weights, to_host, weighted_sum

__all__ = ["Accuracy", "ConfusionMatrix", "F1Score", "Precision", "Recall", "TopKAccuracy"]


def _is_multiclass(p) -> bool:
    return p.ndim >= 2 and p.shape[1] > 1


def _class_indices(p, t, xp, what, threshold, from_logits):
    """(predicted class, true class) as flat int64 arrays, and the number of classes (2 for binary)."""
    if _is_multiclass(p):
        n_classes = int(p.shape[1])
        pred = p.argmax(axis=1)
        if t.shape == p.shape and backend.is_floating(t.dtype):
            t = t.argmax(axis=1)  # one-hot or probability rows
        if t.shape != pred.shape:
            raise ValueError(f"{what}: targets of shape {tuple(t.shape)} do not match predictions of shape "
                             f"{tuple(p.shape)} (expected class indices of shape {tuple(pred.shape)})")
        if backend.is_floating(t.dtype):
            raise TypeError(f"{what}: class targets must be integers, got {t.dtype}")
        return pred.reshape(-1).astype(xp.int64), t.reshape(-1).astype(xp.int64), n_classes
    if p.size != t.size:
        raise ValueError(f"{what}: {t.size} targets for {p.size} binary predictions "
                         f"(shapes {tuple(t.shape)} and {tuple(p.shape)})")
    cut = math.log(threshold / (1.0 - threshold)) if from_logits else threshold
    pred = (p.reshape(-1) > cut).astype(xp.int64)
    truth = (t.reshape(-1) > 0.5).astype(xp.int64)
    return pred, truth, 2


def _check_threshold(what, threshold):
    if not 0.0 < float(threshold) < 1.0:
        raise ValueError(f"{what}: threshold must be in (0, 1), got {threshold!r}")
    return float(threshold)


class Accuracy(Metric):
    """Fraction of correct predictions: argmax over dim 1 for class scores, ``> threshold`` (of the
    probability, or of ``sigmoid(logit)`` with ``from_logits=True``) for binary outputs."""

    name = "accuracy"
    _state = ("correct", "total")

    def __init__(self, threshold: float = 0.5, from_logits: bool = False, name: str | None = None):
        self.threshold = _check_threshold("Accuracy", threshold)
        self.from_logits = bool(from_logits)
        super().__init__(name)

    def reset(self):
        self.correct = 0.0
        self.total = 0.0

    def update(self, pred, target, weight=None):
        p, t = as_array(pred), as_array(target)
        xp = backend.get_array_module(p)
        t = xp.asarray(t)
        if _is_multiclass(p):
            guess = p.argmax(axis=1)
            if t.shape == p.shape and backend.is_floating(t.dtype):
                t = t.argmax(axis=1)
            if t.shape != guess.shape:
                raise ValueError(f"{self.name}: targets of shape {tuple(t.shape)} do not match predictions "
                                 f"of shape {tuple(p.shape)} (expected class indices of shape "
                                 f"{tuple(guess.shape)})")
            hits = guess == t
        else:
            pred_cls, true_cls, _ = _class_indices(p, t, xp, self.name, self.threshold, self.from_logits)
            hits = (pred_cls == true_cls).reshape(p.shape[0] if p.ndim else 1, -1)
        w = sample_weights(weight, hits.shape[0], xp, self.name)
        s, n = weighted_sum(hits, w, xp)
        self.correct = self.correct + s
        self.total = self.total + n

    def result(self) -> float:
        return safe_div(self.correct, self.total)


class TopKAccuracy(Metric):
    """Fraction of samples whose true class is among the ``k`` highest scores."""

    _state = ("correct", "total")

    def __init__(self, k: int = 5, name: str | None = None):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"TopKAccuracy: k must be a positive int, got {k!r}")
        self.k = int(k)
        super().__init__(name if name is not None else f"top{self.k}_accuracy")

    def reset(self):
        self.correct = 0.0
        self.total = 0.0

    def update(self, pred, target, weight=None):
        p, t = as_array(pred), as_array(target)
        xp = backend.get_array_module(p)
        if p.ndim != 2:
            raise ValueError(f"{self.name}: expects class scores of shape (N, C), got {tuple(p.shape)}")
        n, c = p.shape
        if self.k > c:
            raise ValueError(f"{self.name}: k={self.k} but the predictions have only {c} classes")
        t = xp.asarray(t)
        if t.shape == p.shape and backend.is_floating(t.dtype):
            t = t.argmax(axis=1)
        t = t.reshape(-1)
        if t.shape[0] != n:
            raise ValueError(f"{self.name}: {t.shape[0]} targets for {n} predictions")
        # the true class is in the top k iff fewer than k classes score strictly higher
        true_score = xp.take_along_axis(p, t.astype(xp.int64)[:, None], axis=1)
        hits = (p > true_score).sum(axis=1) < self.k
        w = sample_weights(weight, n, xp, self.name)
        s, m = weighted_sum(hits, w, xp)
        self.correct = self.correct + s
        self.total = self.total + m

    def result(self) -> float:
        return safe_div(self.correct, self.total)


class _ConfusionBased(Metric):
    """Accumulates a (weighted) confusion matrix: rows are true classes, columns predicted ones."""

    _state = ("matrix",)

    def __init__(self, num_classes: int | None = None, threshold: float = 0.5, from_logits: bool = False,
                 name: str | None = None):
        if num_classes is not None and (isinstance(num_classes, bool) or int(num_classes) < 2):
            raise ValueError(f"{type(self).__name__}: num_classes must be an int >= 2, got {num_classes!r}")
        self.num_classes = None if num_classes is None else int(num_classes)
        self.threshold = _check_threshold(type(self).__name__, threshold)
        self.from_logits = bool(from_logits)
        super().__init__(name)

    def reset(self):
        self.matrix = None

    def update(self, pred, target, weight=None):
        p, t = as_array(pred), as_array(target)
        xp = backend.get_array_module(p)
        pred_cls, true_cls, n_classes = _class_indices(p, xp.asarray(t), xp, self.name, self.threshold,
                                                       self.from_logits)
        c = self.num_classes if self.num_classes is not None else n_classes
        if self.matrix is not None and self.matrix.shape[0] != c:
            raise ValueError(f"{self.name}: this batch has {c} classes, earlier batches had {self.matrix.shape[0]}")
        if true_cls.size:
            lo, hi = int(true_cls.min()), int(true_cls.max())
            if lo < 0 or hi >= c:
                bad = lo if lo < 0 else hi
                raise ValueError(f"{self.name}: target class {bad} is out of range for {c} classes")
            if int(pred_cls.max()) >= c:
                raise ValueError(f"{self.name}: the predictions have more than num_classes={c} classes")
        w = sample_weights(weight, p.shape[0], xp, self.name)
        if w is not None:
            per_row = true_cls.size // p.shape[0]
            w = xp.repeat(w, per_row)
        counts = xp.bincount(true_cls * c + pred_cls, weights=w, minlength=c * c).reshape(c, c)
        counts = counts.astype(xp.float64)
        if self.matrix is None:
            self.matrix = counts
        else:
            self.matrix = backend.to_device(self.matrix, backend.device_of(counts)) + counts

    def _stats(self):
        """Per class: true positives, predicted count, true count (host float64 arrays)."""
        m = to_host(self.matrix).astype(np.float64)
        return np.diag(m), m.sum(axis=0), m.sum(axis=1)


class _PrecisionRecallF1(_ConfusionBased):
    """Shared averaging: ``"macro"`` (unweighted mean over the classes present in targets or
    predictions), ``"micro"`` (from the pooled counts) or ``"binary"`` (class 1 only). The default,
    None, is "binary" for binary outputs and "macro" for class scores. 0/0 counts as 0, as in
    scikit-learn."""

    _averages = ("macro", "micro", "binary")
    _state = ("matrix", "binary_outputs")

    def __init__(self, average: str | None = None, num_classes: int | None = None, threshold: float = 0.5,
                 from_logits: bool = False, name: str | None = None):
        if average is not None and average not in self._averages:
            raise ValueError(f"{type(self).__name__}: average must be one of {self._averages} or None, "
                             f"got {average!r}")
        self.average = average
        super().__init__(num_classes, threshold, from_logits, name)

    def _per_class(self, tp, predicted, actual):
        raise NotImplementedError

    def result(self) -> float:
        if self.matrix is None:
            return float("nan")
        tp, predicted, actual = self._stats()
        c = tp.shape[0]
        average = self.average
        if average is None:
            average = "binary" if c == 2 and self.binary_outputs else "macro"
        if average == "binary":
            if c != 2:
                raise ValueError(f"{self.name}: average='binary' needs 2 classes, got {c}")
            return float(self._per_class(tp[1:], predicted[1:], actual[1:])[0])
        if average == "micro":
            return float(self._per_class(tp.sum(keepdims=True), predicted.sum(keepdims=True),
                                         actual.sum(keepdims=True))[0])
        present = (predicted + actual) > 0
        if not present.any():
            return float("nan")
        return float(self._per_class(tp, predicted, actual)[present].mean())

    def update(self, pred, target, weight=None):
        self.binary_outputs = not _is_multiclass(as_array(pred))
        super().update(pred, target, weight)

    def reset(self):
        super().reset()
        self.binary_outputs = False


def _ratio(num, den):
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


class Precision(_PrecisionRecallF1):
    """Of the samples predicted as a class, the fraction that belong to it."""

    name = "precision"

    def _per_class(self, tp, predicted, actual):
        return _ratio(tp, predicted)


class Recall(_PrecisionRecallF1):
    """Of the samples of a class, the fraction predicted as it."""

    name = "recall"

    def _per_class(self, tp, predicted, actual):
        return _ratio(tp, actual)


class F1Score(_PrecisionRecallF1):
    """Harmonic mean of precision and recall per class (``2 tp / (predicted + actual)``), then averaged."""

    name = "f1"

    def _per_class(self, tp, predicted, actual):
        return _ratio(2.0 * tp, predicted + actual)


class ConfusionMatrix(_ConfusionBased):
    """The (C, C) matrix of counts (sums of sample weights when weighted): row = true class, column =
    predicted class. Its result is an array, so it is for ``Trainer.evaluate``, not per-epoch logs."""

    name = "confusion_matrix"
    scalar = False

    def result(self) -> np.ndarray:
        if self.matrix is None:
            c = self.num_classes or 0
            return np.zeros((c, c), dtype=np.int64)
        m = to_host(self.matrix)
        return m.astype(np.int64) if np.all(m == np.round(m)) else m
