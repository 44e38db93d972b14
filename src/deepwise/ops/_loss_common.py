"""What every loss shares: reductions, argument checks and conversions.

``reduce_loss`` and ``spread_grad`` take arrays or Tensors and answer in kind (see
``deepwise.ops.dual``), so a loss's one backward formula and its composite can both use them.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from deepwise import backend
from deepwise.ops import dual
from deepwise.tensor import Tensor

REDUCTIONS = ("none", "mean", "sum")


def quiet():
    """0/0 (an all-ignored batch) is NaN as in PyTorch, without NumPy's warning."""
    return np.errstate(divide="ignore", invalid="ignore")


# ------------------------------------------------------------------------------------- reductions
def check_reduction(op, reduction, size_average=None, reduce=None, allowed=REDUCTIONS):
    """The ``reduction`` to use (from the deprecated size_average/reduce when given); errors name the op."""
    if size_average is not None or reduce is not None:
        reduction = "none" if reduce is False else ("sum" if size_average is False else "mean")
        warnings.warn(f"{op}: size_average and reduce are deprecated, use reduction='{reduction}'",
                      stacklevel=3)
    if reduction not in allowed:
        raise ValueError(f"{op}: reduction must be one of {', '.join(map(repr, allowed))}, got {reduction!r}")
    return reduction


def reduce_loss(loss, reduction, denom=None):
    """Reduce a per-element loss; ``denom`` overrides the element count for 'mean'."""
    if reduction == "none":
        return loss
    if loss.dtype.kind == "V":  # bfloat16: accumulated in float32 (dual.sum), rounded once
        total = dual.sum(loss)
        if reduction == "mean":
            total = total / (math.prod(loss.shape) if denom is None else denom)
        return total if total.dtype == loss.dtype else total.astype(loss.dtype)
    total = loss.sum()
    if reduction == "sum":
        return total
    with quiet():
        return total / (math.prod(loss.shape) if denom is None else denom)


def spread_grad(g, shape, reduction, denom=None):
    """The upstream gradient of a reduced loss, as one value per element of ``shape``."""
    if reduction == "none":
        return g
    if reduction == "mean":
        with quiet():
            g = g / (math.prod(shape) if denom is None else denom)
    return g if tuple(g.shape) == tuple(shape) else dual.broadcast_to(g, shape)


def check_tensor(x, op, what):
    if not isinstance(x, Tensor):
        raise TypeError(f"{op}: {what} must be a Tensor, got {type(x).__name__}")
    return x


def float_pair(op, input, target):
    """Input and target as tensors of one floating dtype (float32 stays float32)."""
    check_tensor(input, op, "input")
    check_tensor(target, op, "target")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    dt = backend.result_dtype(input.dtype, target.dtype)
    return input.to(dt), target.to(dt)


def weight_array(w, op, name, like, shape=None):
    """An optional weight-like argument as an array of ``like``'s dtype and device (no gradient)."""
    if w is None:
        return None
    w = w.array if isinstance(w, Tensor) else w
    if not backend.is_array(w):
        w = np.asarray(w)
    w = backend.to_device(w, backend.device_of(like.array))
    if shape is not None and tuple(w.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(w.shape)}")
    return w.astype(like.dtype, copy=False)


def check_same_shape(op, input, target, what="target"):
    if input.shape != target.shape:
        raise ValueError(f"{op}: {what} of shape {target.shape} must have the input's shape {input.shape}")


def warn_broadcast(op, input, target):
    if input.shape != target.shape:
        try:
            np.broadcast_shapes(tuple(input.shape), tuple(target.shape))
        except ValueError:
            raise RuntimeError(f"{op}: input of shape {tuple(input.shape)} and target of shape "
                               f"{tuple(target.shape)} cannot be broadcast together; give the target the "
                               "input's shape") from None
        warnings.warn(f"{op}: target of shape {target.shape} differs from input of shape {input.shape}; "
                      "they will be broadcast, which is likely a mistake", stacklevel=4)
