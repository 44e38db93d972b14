"""Loss functions, PyTorch's names, arguments and reductions.

Regression losses here, classification losses in ``loss_classification.py``; each loss is one
``Function``: forward computes the per-element loss and reduces it ('none', 'sum', 'mean');
backward scales the closed-form derivative by the reduction, in one formula that create_graph
differentiates again. ``cross_entropy`` fuses log-softmax, the negative log-likelihood and label
smoothing in one node, so its gradient is ``softmax - target distribution`` and logits of any size
stay finite; its higher derivatives come from a composite of other ops.
"""

from __future__ import annotations

from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._loss_common import (
    check_reduction,
    float_pair,
    reduce_loss,
    spread_grad,
    warn_broadcast,
    weight_array,
)
from deepwise.ops._util import xp_of


def _sub(x, y):
    return x - y


class _DiffLoss(Function):
    """A loss ``f(input - target)``, optionally times an elementwise weight. Subclasses give
    ``value(d, p, xp)`` (forward, on arrays) and ``deriv(d, p)`` (f', written with ``dual`` so the
    one backward serves create_graph too; ``p``: beta or delta)."""

    @staticmethod
    def forward(ctx, x, y, *, weight, param, reduction, mean_by_weight):
        d = x - y
        loss = ctx.fn.value(d, param, xp_of(x))
        if weight is not None:
            loss = loss * weight
        denom = weight.sum() if (weight is not None and mean_by_weight) else None
        ctx.save_for_backward(x, y, d, weight)
        ctx.p, ctx.reduction, ctx.denom = param, reduction, denom
        return reduce_loss(loss, reduction, denom)

    @staticmethod
    def backward(ctx, g):
        x, y, d, w = ctx.saved
        d = dual.recompute(d, _sub, x, y)
        gd = spread_grad(g, d.shape, ctx.reduction, ctx.denom) * ctx.fn.deriv(d, ctx.p)
        if w is not None:
            gd = gd * w
        gx = dual.sum_to(gd, x.shape) if ctx.needs_input_grad[0] else None
        gy = -dual.sum_to(gd, y.shape) if ctx.needs_input_grad[1] else None
        return gx, gy


class MSELoss(_DiffLoss):
    @staticmethod
    def value(d, p, xp):
        return d * d

    @staticmethod
    def deriv(d, p):
        return 2 * d


class L1Loss(_DiffLoss):
    @staticmethod
    def value(d, p, xp):
        return xp.abs(d)

    @staticmethod
    def deriv(d, p):
        return dual.sign(d)


class SmoothL1Loss(_DiffLoss):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta."""

    @staticmethod
    def value(d, beta, xp):
        a = xp.abs(d)
        return xp.where(a < beta, (0.5 / beta) * d * d, a - 0.5 * beta)

    @staticmethod
    def deriv(d, beta):
        return dual.where(dual.abs(d) < beta, d / beta, dual.sign(d))


class HuberLoss(_DiffLoss):
    """0.5 d^2 where |d| < delta, else delta (|d| - 0.5 delta)."""

    @staticmethod
    def value(d, delta, xp):
        a = xp.abs(d)
        return xp.where(a < delta, 0.5 * d * d, delta * (a - 0.5 * delta))

    @staticmethod
    def deriv(d, delta):
        return dual.clip(d, -delta, delta)


def _diff_loss(fn, op, input, target, reduction, weight=None, param=None, mean_by_weight=True):
    input, target = float_pair(op, input, target)
    warn_broadcast(op, input, target)
    if weight is not None:
        weight = weight_array(weight, op, "weight", input, input.shape)
    return fn.apply(input, target, weight=weight, param=param, reduction=reduction,
                    mean_by_weight=mean_by_weight)


@autocast_op("mse_loss")
def mse_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean squared error; with ``weight`` (input's shape), 'mean' divides by the sum of weights."""
    reduction = check_reduction("mse_loss", reduction, size_average, reduce)
    return _diff_loss(MSELoss, "mse_loss", input, target, reduction, weight)


@autocast_op("l1_loss")
def l1_loss(input, target, size_average=None, reduce=None, reduction="mean", weight=None):
    """Mean absolute error; with ``weight`` (input's shape), 'mean' divides by the sum of weights."""
    reduction = check_reduction("l1_loss", reduction, size_average, reduce)
    return _diff_loss(L1Loss, "l1_loss", input, target, reduction, weight)


@autocast_op("smooth_l1_loss")
def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    reduction = check_reduction("smooth_l1_loss", reduction, size_average, reduce)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be >= 0, got {beta}")
    if beta == 0:
        return _diff_loss(L1Loss, "smooth_l1_loss", input, target, reduction)
    return _diff_loss(SmoothL1Loss, "smooth_l1_loss", input, target, reduction, param=float(beta))


@autocast_op("huber_loss")
def huber_loss(input, target, reduction="mean", delta=1.0, weight=None):
    """Huber loss; with ``weight`` (input's shape), 'mean' is the mean of the weighted losses."""
    reduction = check_reduction("huber_loss", reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be > 0, got {delta}")
    return _diff_loss(HuberLoss, "huber_loss", input, target, reduction, weight, float(delta),
                      mean_by_weight=False)


# the classification losses live beside this file; every loss is deepwise.ops.loss.<name>
from deepwise.ops.loss_classification import (  # noqa: E402
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    kl_div,
    nll_loss,
)

__all__ = [
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss",
    "kl_div", "l1_loss", "mse_loss", "nll_loss", "smooth_l1_loss",
]
