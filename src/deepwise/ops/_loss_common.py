"""What every loss shares: reductions, argument checks and conversions."""

from __future__ import annotations

import warnings

import numpy as np

from deepwise import backend
from deepwise.ops._util import xp_of

_REDUCTIONS = ("none", "mean", "sum")


def _T():
    from deepwise.tensor import Tensor  # noqa: PLC0415

    return Tensor


def _quiet():
    """0/0 (an all-ignored batch) is NaN as in PyTorch, without NumPy's warning."""
    return np.errstate(divide="ignore", invalid="ignore")


# ------------------------------------------------------------------------------------- reductions
def _reduction(op, reduction, size_average=None, reduce=None, allowed=_REDUCTIONS):
    if size_average is not None or reduce is not None:
        reduction = "none" if reduce is False else ("sum" if size_average is False else "mean")
        warnings.warn(f"{op}: size_average and reduce are deprecated, use reduction='{reduction}'",
                      stacklevel=3)
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")
    return reduction


def _reduce(loss, reduction, denom=None):
    """Reduce a per-element loss; ``denom`` overrides the element count for 'mean'."""
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    with _quiet():
        return total / (loss.size if denom is None else denom)


def _spread(g, shape, reduction, denom=None):
    """The upstream gradient of a reduced loss, as one value per element of ``shape``."""
    xp = xp_of(g)
    if reduction == "none":
        return g
    if reduction == "mean":
        with _quiet():
            g = g / (int(np.prod(shape)) if denom is None else denom)
    return xp.broadcast_to(g, shape)


def _tensor(x, op, what):
    if not isinstance(x, _T()):
        raise TypeError(f"{op}: {what} must be a Tensor, got {type(x).__name__}")
    return x


def _floats(op, input, target):
    """Input and target as tensors of one floating dtype (float32 stays float32)."""
    _tensor(input, op, "input")
    _tensor(target, op, "target")
    if input.dtype.kind != "f":
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    dt = backend.result_dtype(input.dtype, target.dtype)
    return input.to(dt), target.to(dt)


def _array(w, op, name, like, shape=None):
    """An optional weight-like argument as an array of ``like``'s dtype and device (no gradient)."""
    if w is None:
        return None
    w = w.data if isinstance(w, _T()) else w
    if not backend.is_array(w):
        w = np.asarray(w)
    w = backend.to_device(w, backend.device_of(like.data))
    if shape is not None and tuple(w.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(w.shape)}")
    return w.astype(like.dtype, copy=False)


def _check_same_shape(op, input, target, what="target"):
    if input.shape != target.shape:
        raise ValueError(f"{op}: {what} of shape {target.shape} must have the input's shape {input.shape}")


def _warn_broadcast(op, input, target):
    if input.shape != target.shape:
        warnings.warn(f"{op}: target of shape {target.shape} differs from input of shape {input.shape}; "
                      "they will be broadcast, which is likely a mistake", stacklevel=4)


# ------------------------------------------------------------------------ losses of (input - target)
