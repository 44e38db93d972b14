"""The Trainer's loss: a name or a function, plus sample and class weighting.

Names: ``"cross_entropy"`` (logits vs integer class labels, or probability rows), ``"nll"``
(log-probabilities vs labels), ``"bce_with_logits"`` (logits vs 0/1 targets), ``"mse"``,
``"mae"`` / ``"l1"``, ``"huber"``, ``"smooth_l1"``. A function ``fn(pred, target) -> scalar Tensor``
works too; to be weighted it must accept ``reduction="none"``.

Weighting follows Keras: with per-sample weights ``w`` (``sample_weight`` times
``class_weight[label]``) the batch loss is ``sum_i w_i * loss_i / N`` (N = batch size), so weights
scale each sample's contribution and the epoch loss is the mean over samples of ``w_i * loss_i``.
A sample's loss is the mean over its elements (outputs, time steps, pixels).
"""

from __future__ import annotations

import inspect

import numpy as np

from deepwise import backend
from deepwise.nn import functional as F
from deepwise.tensor import Tensor

__all__ = ["CLASSIFICATION_LOSSES", "LOSS_NAMES", "Loss"]

LOSS_NAMES = ("cross_entropy", "nll", "bce_with_logits", "mse", "mae", "l1", "huber", "smooth_l1")
CLASSIFICATION_LOSSES = ("cross_entropy", "nll", "bce_with_logits")
_INDEX_LOSSES = ("cross_entropy", "nll")
_IGNORE_INDEX = -100


def _functional(name):
    return {
        "cross_entropy": F.cross_entropy, "nll": F.nll_loss, "bce_with_logits": F.binary_cross_entropy_with_logits,
        "mse": F.mse_loss, "mae": F.l1_loss, "l1": F.l1_loss, "huber": F.huber_loss,
        "smooth_l1": F.smooth_l1_loss,
    }[name]


def _accepts_reduction(fn) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False
    return "reduction" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


class Loss:
    """``Loss(spec)(pred, target, weight=None) -> scalar Tensor``; ``name`` is the loss name (or the
    function's name) and ``is_classification`` says whether class weights apply."""

    def __init__(self, spec):
        if isinstance(spec, str):
            key = spec.lower()
            if key not in LOSS_NAMES:
                raise ValueError(f"Trainer: unknown loss {spec!r}; the names are {', '.join(LOSS_NAMES)} "
                                 "(or pass a function fn(pred, target) -> scalar Tensor)")
            self.name = key
            self.fn = None
            self.builtin = True
            self.weightable = True
        elif callable(spec):
            self.name = getattr(spec, "__name__", type(spec).__name__)
            self.fn = spec
            self.builtin = False
            self.weightable = _accepts_reduction(spec)
        else:
            raise TypeError(f"Trainer: loss must be a name or a function fn(pred, target), got {type(spec).__name__}")

    @property
    def is_classification(self) -> bool:
        return self.builtin and self.name in CLASSIFICATION_LOSSES

    @property
    def uses_class_indices(self) -> bool:
        return self.builtin and self.name in _INDEX_LOSSES

    def _call(self, pred, target, reduction):
        fn = self.fn
        if fn is None:
            fn = self.fn = _functional(self.name)
        if reduction == "mean" and not self.builtin:
            return fn(pred, target)
        return fn(pred, target, reduction=reduction)

    def prepare_target(self, pred: Tensor, target: Tensor) -> Tensor:
        """Targets in the form the loss wants: float of the prediction's dtype and shape for
        regression and binary losses (a (N,) target for (N, 1) outputs is reshaped)."""
        if not self.builtin or self.name in _INDEX_LOSSES:
            return target
        if target.shape != pred.shape and target.numel() == pred.numel() and target.shape[:1] == pred.shape[:1]:
            target = target.reshape(pred.shape)
        if target.dtype != pred.dtype and backend.is_floating(pred.dtype):
            target = target.to(pred.dtype)
        return target

    def __call__(self, pred, target, weight=None):
        if weight is None:
            return self._call(pred, target, "mean")
        if not self.weightable:
            raise TypeError(f"Trainer: loss function {self.name!r} does not accept reduction='none', so it cannot "
                            "be weighted by sample_weight / class_weight; add a `reduction` argument to it")
        per_element = self._call(pred, target, "none")
        n = per_element.shape[0] if per_element.ndim else 1
        if per_element.ndim == 0:
            raise ValueError(f"Trainer: loss {self.name!r} with reduction='none' returned a scalar; weighting needs "
                             "one loss per sample")
        per_sample = per_element.reshape(n, -1).mean(dim=1) if per_element.ndim > 1 else per_element
        w = weight if isinstance(weight, Tensor) else Tensor._make(weight)
        w = w.to(per_sample.dtype).reshape(-1)
        if w.shape[0] != n:
            raise ValueError(f"Trainer: {w.shape[0]} sample weights for a batch of {n} samples")
        return (per_sample * w).sum() / n

    def __repr__(self):
        return f"Loss({self.name!r})"


def class_weight_vector(class_weight, loss: Loss):
    """``class_weight`` (dict class -> weight, or a sequence indexed by class) as a float32 array, or
    None. Classes missing from a dict get weight 1. Raises for losses without classes."""
    if class_weight is None:
        return None
    if not loss.is_classification:
        raise ValueError(f"Trainer.fit: class_weight applies only to classification losses "
                         f"({', '.join(CLASSIFICATION_LOSSES)}), but the loss is {loss.name!r}; for regression use "
                         "sample_weight")
    if isinstance(class_weight, dict):
        if not class_weight:
            raise ValueError("Trainer.fit: class_weight is an empty dict")
        keys = []
        for k in class_weight:
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 0:
                raise ValueError(f"Trainer.fit: class_weight keys must be class indices (ints >= 0), got {k!r}")
            keys.append(int(k))
        vec = np.ones(max(keys) + 1, dtype=np.float32)
        for k, v in class_weight.items():
            vec[int(k)] = float(v)
    else:
        if isinstance(class_weight, Tensor):
            class_weight = class_weight.array
        vec = np.asarray(backend.to_device(class_weight, backend.Device("cpu")) if backend.is_array(class_weight)
                         else class_weight, dtype=np.float32).reshape(-1)
        if vec.size == 0:
            raise ValueError("Trainer.fit: class_weight is empty")
    if not np.all(np.isfinite(vec)) or np.any(vec < 0):
        raise ValueError(f"Trainer.fit: class_weight values must be finite and >= 0, got {vec.tolist()}")
    return vec
