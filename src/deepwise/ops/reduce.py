"""Reductions over ``dim`` (an int, a tuple, or None for all) with ``keepdim``, as in PyTorch.

Ties: ``max``/``min``/``amax``/``amin`` over several dims (or all) split the gradient evenly among
tied elements; ``max(dim)``/``min(dim)`` with a single dim send it all to the returned index (the
first occurrence).
"""

from __future__ import annotations

import builtins

import numpy as np  # floating-point error states only, never tensor data

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import arithmetic, dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import expand_reduced, in_float32, normalize_dim, xp_of
from deepwise.ops.index import GatherBackward, values_indices
from deepwise.ops.shape import movedim, pad
from deepwise.tensor import Tensor


def _quiet():
    """Let inf and NaN through silently (log 0 of an all -inf slice, a variance over no degrees of
    freedom): those are the intended values."""
    return np.errstate(divide="ignore", invalid="ignore", over="ignore")


def _acc(dtype):
    """The accumulator dtype of a reduction: float32 for float16 and bfloat16 data (as PyTorch and
    cuDNN accumulate), else the data's own (None)."""
    return backend.float32 if dtype == backend.float16 or (dtype.kind == "V" and backend.is_bfloat16(dtype)) else None


def _in(dtype, out):
    """A float32-accumulated result back in the data's dtype."""
    return out if out.dtype == dtype else out.astype(dtype)


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return _in(x.dtype, x.sum(axis=axes, keepdims=keepdim, dtype=_acc(x.dtype)))

    @staticmethod
    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim)
        return dual.broadcast_to(g, ctx.shape), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        ctx.n = n = _count(x.shape, axes)
        # the sum over the count, as ndarray.mean computes it, without mean's Python-level wrapper
        total = x.sum(axis=axes, keepdims=keepdim, dtype=_acc(x.dtype))
        if n == 0:
            with _quiet():  # the mean of nothing is NaN, as in PyTorch
                return _in(x.dtype, total / total.dtype.type(0))
        return _in(x.dtype, total / total.dtype.type(n))

    @staticmethod
    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim) / g.dtype.type(builtins.max(ctx.n, 1))
        return dual.broadcast_to(g, ctx.shape), None, None


def _count(shape, axes):
    n = 1
    for a in axes:
        n *= shape[a]
    return n


class Var(Function):
    """Fused: forward keeps ``x - mean`` for a one-pass first-order backward; higher orders
    differentiate ``composite``, the same variance written with other ops."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(Var, ctx, x, axes, correction, keepdim)
        acc = _acc(x.dtype)
        diff = x - _in(x.dtype, x.mean(axis=axes, keepdims=True, dtype=acc))
        denom = builtins.max(_count(x.shape, axes) - correction, 0)
        ctx.save_for_backward(diff)
        ctx.denom, ctx.axes, ctx.keepdim, ctx.shape = denom, axes, keepdim, x.shape
        with _quiet():
            total = (diff * diff).sum(axis=axes, keepdims=keepdim, dtype=acc)
            return _in(x.dtype, total / total.dtype.type(denom))

    @staticmethod
    def backward(ctx, g):
        (diff,) = ctx.saved
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim)
        with _quiet():
            return g * (2 * diff / g.dtype.type(ctx.denom)), None, None, None

    @staticmethod
    def composite(x, axes, correction, keepdim):
        diff = x - x.mean(dim=axes, keepdim=True)
        denom = builtins.max(_count(x.shape, axes) - correction, 0)
        with _quiet():
            return (diff * diff).sum(dim=axes, keepdim=keepdim) / float(denom)


class Prod(Function):
    """Fused: the gradient is the product of the other elements, from exclusive cumulative
    products from both sides, so zeros in the input are handled exactly (no division by x).
    Higher orders differentiate ``composite``: the same product as a tree of multiplications."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, axis, keepdim):
        ctx.save_for_backward(x)
        ctx.axis, ctx.keepdim = axis, keepdim
        if axis is None:
            return x.prod(keepdims=keepdim) if keepdim else x.prod()
        return x.prod(axis=axis, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        axis = ctx.axis
        xp = xp_of(x)
        if axis is None:
            flat = x.reshape(-1)
            others = _prod_of_others(flat, 0, xp).reshape(x.shape)
            return g.reshape(()) * others if g.ndim else g * others, None, None
        others = _prod_of_others(x, axis, xp)
        g = expand_reduced(g, x.shape, (axis,), ctx.keepdim)
        return g * others, None, None

    @staticmethod
    def composite(x, axis, keepdim):
        y = x.reshape(-1) if axis is None else movedim(x, axis, -1)
        while y.shape[-1] > 1:  # multiply neighbours in pairs: log2(n) multiplications
            if y.shape[-1] % 2:
                y = pad(y, (0, 1), value=1.0)
            pairs = y.reshape(*y.shape[:-1], y.shape[-1] // 2, 2)
            y = pairs[..., 0] * pairs[..., 1]
        if y.shape[-1] == 0:  # the empty product
            y = pad(y, (0, 1), value=1.0)
        if axis is None:
            return y.reshape((1,) * x.ndim if keepdim else ())
        return movedim(y, -1, axis) if keepdim else y.squeeze(-1)


def _prod_of_others(x, axis, xp):
    x = xp.moveaxis(x, axis, -1)
    ones = xp.ones(x.shape[:-1] + (1,), x.dtype)
    left = xp.cumprod(xp.concatenate([ones, x[..., :-1]], axis=-1), axis=-1)
    right = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(x, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return xp.moveaxis(left * right, -1, axis)


class AMax(Function):
    """max over axes; gradient split evenly among ties (the tie mask is a constant)."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, use_min):
        out = x.min(axis=axes, keepdims=True) if use_min else x.max(axis=axes, keepdims=True)
        mask = x == out
        ctx.save_for_backward(mask, mask.sum(axis=axes, keepdims=True))
        ctx.axes, ctx.keepdim, ctx.shape = axes, keepdim, x.shape
        if not keepdim:
            out = out.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return out

    @staticmethod
    def backward(ctx, g):
        mask, count = ctx.saved
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim)
        return g * mask / dual.cast(count, g.dtype), None, None, None


class MaxDim(Function):
    """max/min along one dim -> (values, indices); gradient goes to the index returned."""

    @staticmethod
    def forward(ctx, x, axis, keepdim, use_min):
        xp = xp_of(x)
        idx = x.argmin(axis=axis) if use_min else x.argmax(axis=axis)
        idx = xp.expand_dims(idx, axis)
        values = xp.take_along_axis(x, idx, axis=axis)
        ctx.save_for_backward(idx)
        ctx.axis, ctx.shape = axis, x.shape
        if not keepdim:
            values, idx = values.squeeze(axis), idx.squeeze(axis)
        return values, idx.astype(backend.int64, copy=False)

    @staticmethod
    def backward(ctx, g, _g_idx):
        (idx,) = ctx.saved  # one index per slice: g is put where forward found the max/min
        g = dual.reshape(g, idx.shape)
        return dual.apply(GatherBackward, g, ctx.axis, idx, ctx.shape, unique=True), None, None, None


class LogSumExp(Function):
    """The gradient is exp(x - out): the softmax, written with the saved input and output."""

    @staticmethod
    def forward(ctx, x, axes, keepdim):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(LogSumExp, ctx, x, axes, keepdim)
        xp = xp_of(x)
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf slices give -inf, not NaN
        with _quiet():  # log(0) of an all -inf slice is -inf, as intended; -inf from overflow too
            out = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
        ctx.axes, ctx.keepdim = axes, keepdim
        if not keepdim:
            out = out.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        ctx.save_for_backward(x, out)
        return out

    @staticmethod
    def backward(ctx, g):
        x, out = ctx.saved
        g = expand_reduced(g, x.shape, ctx.axes, ctx.keepdim)
        out = expand_reduced(out, x.shape, ctx.axes, ctx.keepdim)
        with _quiet():  # x - out may overflow to -inf for extreme logits: exp gives the right 0
            return g * dual.exp(x - out), None, None


class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return xp_of(x).cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, g):
        axes = (ctx.axis,)
        return dual.flip(dual.cumsum(dual.flip(g, axes), ctx.axis), axes), None


class SafeSqrt(Function):
    """sqrt whose gradient at 0 is 0 (not inf): the 2-norm's last step, so the norm of a zero
    vector has gradient 0 at every order, as in PyTorch."""

    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        positive = y > 0
        return dual.where(positive, g / (2 * dual.where(positive, y, 1)), 0)


# ----------------------------------------------------------------------------- functions
def _reduce_dims(dim, ndim, op):
    """Axes to reduce: an empty dim tuple/list means all dims, as None does (PyTorch's rule)."""
    if isinstance(dim, (tuple, list)) and not dim:
        dim = None
    return normalize_dim(dim, ndim, op)


def _float(x):
    return x if (x.dtype.kind == "f" or backend.is_floating(x.dtype)) else x.float()


@autocast_op("sum")
def sum(input, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.kind in "bui":
        input = input.to(backend.int64)
    return Sum.apply(input, _reduce_dims(dim, input.ndim, "sum"), keepdim)


def mean(input, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"mean: needs a floating-point tensor, got {input.dtype}; call .float() first")
    return Mean.apply(input, _reduce_dims(dim, input.ndim, "mean"), keepdim)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def var(input, dim=None, unbiased=None, keepdim=False, correction=None):
    """Variance; ``correction`` (or unbiased=True, the default) subtracts 1 from the count."""
    x = _float(input)
    if isinstance(dim, bool):  # var(x, False) is the old (input, unbiased) form
        dim, unbiased = None, dim
    return Var.apply(x, _reduce_dims(dim, x.ndim, "var"), _correction(unbiased, correction), keepdim)


def std(input, dim=None, unbiased=None, keepdim=False, correction=None):
    return var(input, dim, unbiased, keepdim, correction).sqrt()


@autocast_op("prod")
def prod(input, dim=None, keepdim=False):
    if dim is not None and not isinstance(dim, int):
        raise TypeError("prod: dim must be a single int (as in PyTorch)")
    axis = None if dim is None else normalize_dim(dim, input.ndim, "prod")[0]
    return Prod.apply(input, axis, keepdim)


def amax(input, dim=None, keepdim=False):
    return AMax.apply(input, _reduce_dims(dim, input.ndim, "amax"),
                      keepdim, False)


def amin(input, dim=None, keepdim=False):
    return AMax.apply(input, _reduce_dims(dim, input.ndim, "amin"),
                      keepdim, True)


def _max_min(input, dim, keepdim, use_min, name):
    if isinstance(dim, Tensor):  # max(a, b) elementwise
        return arithmetic.minimum(input, dim) if use_min else arithmetic.maximum(input, dim)
    if input.array.size == 0:
        raise RuntimeError(f"{name}(): the tensor is empty, it has no {name}imum")
    if dim is None:
        return AMax.apply(input, tuple(range(input.ndim)), False, use_min)
    axis = normalize_dim(dim, input.ndim, name)[0] if input.ndim else None
    if axis is None:
        return values_indices(input, Tensor._make(xp_of(input.array).zeros((), backend.int64)))
    return values_indices(*MaxDim.apply(input, axis, keepdim, use_min))


def max(input, dim=None, keepdim=False):
    """``max(x)`` -> a 0-d tensor; ``max(x, dim)`` -> (values, indices); ``max(x, y)`` elementwise."""
    return _max_min(input, dim, keepdim, False, "max")


def min(input, dim=None, keepdim=False):
    return _max_min(input, dim, keepdim, True, "min")


@autocast_op("logsumexp")
def logsumexp(input, dim=None, keepdim=False):
    """log(sum(exp(x))) along ``dim``, shifted by the max so it never overflows."""
    x = _float(input)
    return LogSumExp.apply(x, _reduce_dims(dim, x.ndim, "logsumexp"), keepdim)


@autocast_op("norm")
def norm(input, p="fro", dim=None, keepdim=False):
    """Vector p-norm over ``dim`` (all elements by default): p = 2/'fro', 1, inf, -inf, or any float."""
    x = _float(input)
    if p in ("fro", 2, 2.0):
        # sqrt(sum(x^2)); the gradient of sqrt at 0 is made 0 (as PyTorch does) by a safe where
        return SafeSqrt.apply(sum(x * x, dim, keepdim))
    if p in (1, 1.0):
        return sum(x.abs(), dim, keepdim)
    if p == float("inf"):
        return amax(x.abs(), dim, keepdim)
    if p == float("-inf"):
        return amin(x.abs(), dim, keepdim)
    p = float(p)
    return arithmetic.pow(sum(arithmetic.pow(x.abs(), p), dim, keepdim), 1.0 / p)


@autocast_op("cumsum")
def cumsum(input, dim, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.kind in "bui":
        input = input.to(backend.int64)
    return Cumsum.apply(input, normalize_dim(dim, input.ndim, "cumsum")[0])


def _index_reduce(name):
    def fn(input, dim=None, keepdim=False):
        xp = xp_of(input.array)
        if dim is None:
            out = getattr(input.array.reshape(-1), name)()
            if keepdim:
                out = xp.asarray(out).reshape((1,) * input.ndim)
            return Tensor._make(xp.asarray(out, dtype=backend.int64))
        axis = normalize_dim(dim, input.ndim, name)[0]
        out = getattr(input.array, name)(axis=axis, keepdims=keepdim)
        return Tensor._make(out.astype(backend.int64, copy=False))

    fn.__name__ = name
    fn.__doc__ = f"Index of the {name[3:]}imum (first occurrence), over all elements or along ``dim``."
    return fn


argmax = _index_reduce("argmax")
argmin = _index_reduce("argmin")


def _bool_reduce(name):
    def fn(input, dim=None, keepdim=False):
        axes = normalize_dim(dim, input.ndim, name)
        return Tensor._make(xp_of(input.array).asarray(getattr(input.array, name)(axis=axes, keepdims=keepdim)))

    fn.__name__ = name
    fn.__doc__ = f"``{name}`` over ``dim`` (a bool tensor)."
    return fn


any = _bool_reduce("any")
all = _bool_reduce("all")
