"""Loss modules: ``criterion = CrossEntropyLoss(); loss = criterion(logits, target)``.

Each wraps its function in ``deepwise.ops.loss`` with the settings given at construction; class
weights and ``pos_weight`` are buffers (in ``state_dict``, moved by ``to()``), as in PyTorch.
"""

from __future__ import annotations

import warnings

from deepwise import backend
from deepwise.nn.module import Module
from deepwise.ops import loss as F
from deepwise.tensor import Tensor


def _legacy_reduction(name, size_average, reduce, reduction):
    if size_average is None and reduce is None:
        return reduction
    reduction = "none" if reduce is False else ("sum" if size_average is False else "mean")
    warnings.warn(f"{name}: size_average and reduce are deprecated, use reduction='{reduction}'", stacklevel=3)
    return reduction


def _as_buffer(name, value, what):
    if value is None:
        return None
    if not isinstance(value, Tensor):
        value = Tensor(value)
    if not backend.is_floating(value.dtype):
        raise TypeError(f"{name}: {what} must be floating point, got {value.dtype}")
    return value.detach()


class _Loss(Module):
    """Holds ``reduction``; the repr lists the settings that differ from the defaults."""

    _defaults: dict = {}
    _reductions = ("none", "mean", "sum")

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        reduction = _legacy_reduction(type(self).__name__, size_average, reduce, reduction)
        if reduction not in self._reductions:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {self._reductions}, got {reduction!r}")
        self.reduction = reduction

    def extra_repr(self) -> str:
        settings = {"reduction": "mean", **self._defaults}
        return ", ".join(f"{k}={getattr(self, k)!r}" for k, default in settings.items()
                         if getattr(self, k) != default)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer(type(self).__name__, weight, "weight"))


class MSELoss(_Loss):
    """Mean squared error: mean((input - target)^2)."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error: mean(|input - target|)."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below ``beta``, linear above (0.5 d^2 / beta, or |d| - 0.5 beta)."""

    _defaults = {"beta": 1.0}

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", beta: float = 1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below ``delta``, linear above (0.5 d^2, or delta (|d| - 0.5 delta))."""

    _defaults = {"delta": 1.0}

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """Softmax cross-entropy of logits (N, C, ...) against class indices or class probabilities."""

    _defaults = {"ignore_index": -100, "label_smoothing": 0.0}

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__(weight, size_average, reduce, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}")
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C, ...) at integer class targets."""

    _defaults = {"ignore_index": -100}

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class BCELoss(_WeightedLoss):
    """Binary cross-entropy of probabilities in [0, 1] (logs clamped at -100)."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross-entropy in one stable expression; ``pos_weight`` scales positives."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean", pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", _as_buffer("BCEWithLogitsLoss", weight, "weight"))
        self.register_buffer("pos_weight", _as_buffer("BCEWithLogitsLoss", pos_weight, "pos_weight"))

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, weight=self.weight, reduction=self.reduction,
                                                  pos_weight=self.pos_weight)


class KLDivLoss(_Loss):
    """KL divergence of log-probability ``input`` from ``target`` ('batchmean' is the true KL)."""

    _defaults = {"log_target": False}
    _reductions = ("none", "mean", "sum", "batchmean")

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean", log_target: bool = False):
        super().__init__(size_average, reduce, reduction)
        self.log_target = log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


__all__ = [
    "BCELoss", "BCEWithLogitsLoss", "CrossEntropyLoss", "HuberLoss", "KLDivLoss", "L1Loss", "MSELoss",
    "NLLLoss", "SmoothL1Loss",
]
