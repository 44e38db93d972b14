"""Reductions over ``dim`` (an int, a tuple, or None for all) with ``keepdim``, as in PyTorch.

Ties: ``max``/``min``/``amax``/``amin`` over several dims (or all) split the gradient evenly among
tied elements; ``max(dim)``/``min(dim)`` with a single dim send it all to the returned index (the
first occurrence).
"""

from __future__ import annotations

import builtins
from collections import namedtuple

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops._util import expand_reduced, normalize_dim, xp_of

values_indices = namedtuple("values_indices", ["values", "indices"])


def _T():
    from deepwise.tensor import Tensor  # noqa: PLC0415

    return Tensor


class Sum(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        return x.sum(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim)
        return xp_of(g).broadcast_to(g, ctx.shape), None, None

    @staticmethod
    def backward_graph(ctx, g):
        if not ctx.keepdim and ctx.axes:
            shp = list(ctx.shape)
            for a in ctx.axes:
                shp[a] = 1
            g = g.reshape(shp)
        return g.expand(ctx.shape), None, None


class Mean(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        ctx.shape, ctx.axes, ctx.keepdim = x.shape, axes, keepdim
        n = 1
        for a in axes:
            n *= x.shape[a]
        ctx.n = n
        return x.mean(axis=axes, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim) / g.dtype.type(builtins.max(ctx.n, 1))
        return xp_of(g).broadcast_to(g, ctx.shape), None, None

    @staticmethod
    def backward_graph(ctx, g):
        g, _, _ = Sum.backward_graph(ctx, g)
        return g / builtins.max(ctx.n, 1), None, None


class Var(Function):
    @staticmethod
    def forward(ctx, x, axes, correction, keepdim):
        n = 1
        for a in axes:
            n *= x.shape[a]
        mean = x.mean(axis=axes, keepdims=True)
        diff = x - mean
        denom = builtins.max(n - correction, 0)
        ctx.diff, ctx.denom, ctx.axes, ctx.keepdim, ctx.shape = diff, denom, axes, keepdim, x.shape
        with _errstate(xp_of(x)):
            return (diff * diff).sum(axis=axes, keepdims=keepdim) / x.dtype.type(denom)

    @staticmethod
    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim)
        with _errstate(xp_of(g)):
            return g * (2 * ctx.diff / g.dtype.type(ctx.denom)), None, None, None

    @staticmethod
    def backward_graph(ctx, g):
        x = ctx.inputs[0]
        g = _expand_reduced_t(g, ctx.shape, ctx.axes, ctx.keepdim)
        with _errstate(xp_of(g.data)):
            diff = x - x.mean(dim=ctx.axes, keepdim=True)
            return g * (2 * diff / float(ctx.denom)), None, None, None


def _expand_reduced_t(g, shape, axes, keepdim):
    """``expand_reduced`` for a Tensor gradient (backward_graph)."""
    if not keepdim and axes:
        g = g.reshape([1 if i in axes else n for i, n in enumerate(shape)])
    return g


class _errstate:
    def __init__(self, xp):
        self.xp = xp

    def __enter__(self):
        if self.xp.__name__ == "numpy":
            import numpy as np  # noqa: PLC0415

            self._ctx = np.errstate(divide="ignore", invalid="ignore", over="ignore")
            self._ctx.__enter__()

    def __exit__(self, *exc):
        if self.xp.__name__ == "numpy":
            self._ctx.__exit__(*exc)


class Prod(Function):
    """Gradient = product of the other elements, computed with exclusive cumulative products from
    both sides, so zeros in the input are handled exactly (no division by x)."""

    @staticmethod
    def forward(ctx, x, axis, keepdim):
        ctx.x, ctx.axis, ctx.keepdim = x, axis, keepdim
        if axis is None:
            return x.prod(keepdims=keepdim) if keepdim else x.prod()
        return x.prod(axis=axis, keepdims=keepdim)

    @staticmethod
    def backward(ctx, g):
        x, axis = ctx.x, ctx.axis
        xp = xp_of(x)
        if axis is None:
            flat = x.reshape(-1)
            others = _prod_of_others(flat, 0, xp).reshape(x.shape)
            return g.reshape(()) * others if g.ndim else g * others, None, None
        others = _prod_of_others(x, axis, xp)
        g = expand_reduced(g, x.shape, (axis,), ctx.keepdim)
        return g * others, None, None


def _prod_of_others(x, axis, xp):
    x = xp.moveaxis(x, axis, -1)
    ones = xp.ones(x.shape[:-1] + (1,), x.dtype)
    left = xp.cumprod(xp.concatenate([ones, x[..., :-1]], axis=-1), axis=-1)
    right = xp.flip(xp.cumprod(xp.concatenate([ones, xp.flip(x, -1)[..., :-1]], axis=-1), axis=-1), -1)
    return xp.moveaxis(left * right, -1, axis)


class AMax(Function):
    """max over axes; gradient split evenly among ties."""

    @staticmethod
    def forward(ctx, x, axes, keepdim, use_min):
        out = x.min(axis=axes, keepdims=True) if use_min else x.max(axis=axes, keepdims=True)
        mask = x == out
        ctx.mask = mask
        ctx.count = mask.sum(axis=axes, keepdims=True)
        ctx.axes, ctx.keepdim, ctx.shape = axes, keepdim, x.shape
        if not keepdim:
            out = out.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return out

    @staticmethod
    def backward(ctx, g):
        g = expand_reduced(g, ctx.shape, ctx.axes, ctx.keepdim)
        return g * ctx.mask / ctx.count.astype(g.dtype), None, None, None

    @staticmethod
    def backward_graph(ctx, g):
        T = _T()
        g = _expand_reduced_t(g, ctx.shape, ctx.axes, ctx.keepdim)
        mask, count = T._make(ctx.mask.astype(g.dtype)), T._make(ctx.count.astype(g.dtype))
        return g * mask / count, None, None, None  # the tie mask of forward is a constant


class MaxDim(Function):
    """max/min along one dim -> (values, indices); gradient goes to the index returned."""

    @staticmethod
    def forward(ctx, x, axis, keepdim, use_min):
        xp = xp_of(x)
        idx = x.argmin(axis=axis) if use_min else x.argmax(axis=axis)
        idx = xp.expand_dims(idx, axis)
        values = xp.take_along_axis(x, idx, axis=axis)
        ctx.idx, ctx.axis, ctx.shape, ctx.dtype = idx, axis, x.shape, x.dtype
        if not keepdim:
            values, idx = values.squeeze(axis), idx.squeeze(axis)
        ctx.keepdim = keepdim
        return values, idx.astype(backend.int64, copy=False)

    @staticmethod
    def backward(ctx, g, _g_idx):
        xp = xp_of(g)
        if not ctx.keepdim:
            g = xp.expand_dims(g, ctx.axis)
        out = xp.zeros(ctx.shape, g.dtype)
        xp.put_along_axis(out, ctx.idx, g, axis=ctx.axis)
        return out, None, None, None

    @staticmethod
    def backward_graph(ctx, g, _g_idx):
        from deepwise.ops.index import ScatterAdd  # noqa: PLC0415

        if not ctx.keepdim:
            g = g.reshape(ctx.idx.shape)
        zeros = _T()._make(xp_of(g.data).zeros(ctx.shape, g.dtype))
        # one index per slice, so adding into zeros puts g where forward found the max/min
        return ScatterAdd.apply(zeros, ctx.axis, ctx.idx, g), None, None, None


class LogSumExp(Function):
    @staticmethod
    def forward(ctx, x, axes, keepdim):
        xp = xp_of(x)
        m = x.max(axis=axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)  # all -inf slices give -inf, not NaN
        with _errstate(xp):  # log(0) of an all -inf slice is -inf, as intended; -inf from overflow too
            out = xp.log(xp.exp(x - m).sum(axis=axes, keepdims=True)) + m
        ctx.x, ctx.out, ctx.axes, ctx.keepdim = x, out, axes, keepdim
        if not keepdim:
            out = out.reshape([n for i, n in enumerate(x.shape) if i not in axes])
        return out

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        g = expand_reduced(g, ctx.x.shape, ctx.axes, ctx.keepdim)
        with _errstate(xp):  # x - out may overflow to -inf for extreme logits: exp gives the right 0
            return g * xp.exp(ctx.x - ctx.out), None, None

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.unary import exp  # noqa: PLC0415

        x = ctx.inputs[0]
        g = _expand_reduced_t(g, ctx.x.shape, ctx.axes, ctx.keepdim)
        with _errstate(xp_of(g.data)):
            return g * exp(x - LogSumExp.apply(x, ctx.axes, True)), None, None


class Cumsum(Function):
    @staticmethod
    def forward(ctx, x, axis):
        ctx.axis = axis
        return xp_of(x).cumsum(x, axis=axis)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        return xp.flip(xp.cumsum(xp.flip(g, ctx.axis), axis=ctx.axis), ctx.axis), None

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.shape import Flip  # noqa: PLC0415

        axes = (ctx.axis,)
        return Flip.apply(Cumsum.apply(Flip.apply(g, axes), ctx.axis), axes), None


# ----------------------------------------------------------------------------- functions
def _reduce_dims(dim, ndim, op):
    """Axes to reduce: an empty dim tuple/list means all dims, as None does (PyTorch's rule)."""
    if isinstance(dim, (tuple, list)) and not dim:
        dim = None
    return normalize_dim(dim, ndim, op)


def _float(x):
    return x if x.dtype.kind == "f" else x.float()


def sum(input, dim=None, keepdim=False, dtype=None):  # noqa: A001
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.kind in "bui":
        input = input.to(backend.int64)
    return Sum.apply(input, _reduce_dims(dim, input.ndim, "sum"), keepdim)


def mean(input, dim=None, keepdim=False, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    if input.dtype.kind != "f":
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
    from deepwise.ops.unary import sqrt  # noqa: PLC0415

    return sqrt(var(input, dim, unbiased, keepdim, correction))


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
    if isinstance(dim, _T()):  # max(a, b) elementwise
        from deepwise.ops import arithmetic  # noqa: PLC0415

        return arithmetic.minimum(input, dim) if use_min else arithmetic.maximum(input, dim)
    if input.data.size == 0:
        raise RuntimeError(f"{name}(): the tensor is empty, it has no {name}imum")
    if dim is None:
        return AMax.apply(input, tuple(range(input.ndim)), False, use_min)
    axis = normalize_dim(dim, input.ndim, name)[0] if input.ndim else None
    if axis is None:
        return values_indices(input, _T()._make(xp_of(input.data).zeros((), backend.int64)))
    return values_indices(*MaxDim.apply(input, axis, keepdim, use_min))


def max(input, dim=None, keepdim=False):  # noqa: A001
    """``max(x)`` -> a 0-d tensor; ``max(x, dim)`` -> (values, indices); ``max(x, y)`` elementwise."""
    return _max_min(input, dim, keepdim, False, "max")


def min(input, dim=None, keepdim=False):  # noqa: A001
    return _max_min(input, dim, keepdim, True, "min")


def logsumexp(input, dim=None, keepdim=False):
    """log(sum(exp(x))) along ``dim``, shifted by the max so it never overflows."""
    x = _float(input)
    return LogSumExp.apply(x, _reduce_dims(dim, x.ndim, "logsumexp"), keepdim)


def norm(input, p="fro", dim=None, keepdim=False):
    """Vector p-norm over ``dim`` (all elements by default): p = 2/'fro', 1, inf, -inf, or any float."""
    from deepwise.ops import arithmetic, unary  # noqa: PLC0415

    x = _float(input)
    if p in ("fro", 2, 2.0):
        # sqrt(sum(x^2)); the gradient of sqrt at 0 is made 0 (as PyTorch does) by a safe where
        sq = sum(x * x, dim, keepdim)
        return _safe_sqrt(sq)
    if p in (1, 1.0):
        return sum(unary.abs(x), dim, keepdim)
    if p == float("inf"):
        return amax(unary.abs(x), dim, keepdim)
    if p == float("-inf"):
        return amin(unary.abs(x), dim, keepdim)
    p = float(p)
    return arithmetic.pow(sum(arithmetic.pow(unary.abs(x), p), dim, keepdim), 1.0 / p)


class _SafeSqrt(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = xp_of(x).sqrt(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        y = ctx.y
        return xp.where(y > 0, g / (2 * xp.where(y > 0, y, 1)), 0).astype(g.dtype, copy=False)

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.unary import sqrt  # noqa: PLC0415

        return g / (2 * sqrt(ctx.inputs[0]))


def _safe_sqrt(x):
    return _SafeSqrt.apply(x)


def cumsum(input, dim, dtype=None):
    if dtype is not None:
        input = input.to(dtype)
    elif input.dtype.kind in "bui":
        input = input.to(backend.int64)
    return Cumsum.apply(input, normalize_dim(dim, input.ndim, "cumsum")[0])


def _index_reduce(name):
    def fn(input, dim=None, keepdim=False):
        xp = xp_of(input.data)
        if dim is None:
            out = getattr(input.data.reshape(-1), name)()
            if keepdim:
                out = xp.asarray(out).reshape((1,) * input.ndim)
            return _T()._make(xp.asarray(out, dtype=backend.int64))
        axis = normalize_dim(dim, input.ndim, name)[0]
        out = getattr(input.data, name)(axis=axis, keepdims=keepdim)
        return _T()._make(out.astype(backend.int64, copy=False))

    fn.__name__ = name
    fn.__doc__ = f"Index of the {name[3:]}imum (first occurrence), over all elements or along ``dim``."
    return fn


argmax = _index_reduce("argmax")
argmin = _index_reduce("argmin")


def _bool_reduce(name):
    def fn(input, dim=None, keepdim=False):
        axes = normalize_dim(dim, input.ndim, name)
        return _T()._make(xp_of(input.data).asarray(getattr(input.data, name)(axis=axes, keepdims=keepdim)))

    fn.__name__ = name
    fn.__doc__ = f"``{name}`` over ``dim`` (a bool tensor)."
    return fn


any = _bool_reduce("any")  # noqa: A001
all = _bool_reduce("all")  # noqa: A001
