"""Small helpers shared by the op families."""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd.mode import is_grad_enabled
from deepwise.backend import get_array_module


def normalize_dim(dim, ndim, op="op"):
    """``dim`` (int, tuple, or None = all) -> tuple of non-negative axes; errors name the op."""
    if dim is None:
        return tuple(range(ndim))
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    out = []
    for d in dims:
        d = int(d)
        if not -max(ndim, 1) <= d < max(ndim, 1):
            raise IndexError(f"{op}: dim {d} is out of range for a tensor of {ndim} dimensions")
        out.append(d % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim} repeats a dimension")
    return tuple(out)


def expand_reduced(grad, shape, axes, keepdim):
    """Reshape a reduced gradient so it broadcasts back over the reduced ``axes``."""
    if not keepdim and axes:
        shp = list(shape)
        for a in axes:
            shp[a] = 1
        grad = grad.reshape(shp)
    return grad


def xp_of(*arrays):
    return get_array_module(*arrays)


def rounded_to(dtype, out):
    """``out`` (computed in float32) in ``dtype``: the one rounding of a bfloat16 matmul, whose NumPy
    product is float32 already; no copy when it has that dtype."""
    return out if out.dtype == dtype else out.astype(dtype)


def _float32_of(a):
    return a.astype(backend.float32) if getattr(a, "dtype", None) is not None and backend.is_bfloat16(a.dtype) else a


_IN_FLOAT32 = {}  # op class -> its twin for nodes whose input was bfloat16 (made on first use)


def _twin(cls):
    """``cls`` with a backward that widens bfloat16 gradients to float32 first (its forward saved float32)."""
    twin = _IN_FLOAT32.get(cls)
    if twin is None:
        backward = cls.backward

        def in_float32_backward(ctx, *grads):
            if is_grad_enabled():  # create_graph: the float32 arrays forward saved are not the inputs' tensors
                raise RuntimeError(f"{cls.__name__}: double backward (create_graph=True) through a bfloat16 "
                                   "input is not supported; compute in float32 for higher-order gradients")
            return backward(ctx, *[_float32_of(g) for g in grads])

        twin = _IN_FLOAT32[cls] = type(cls.__name__, (cls,), {"backward": staticmethod(in_float32_backward),
                                                               "__module__": cls.__module__,
                                                               "__qualname__": cls.__qualname__})
    return twin


def in_float32(cls, ctx, *args, **kwargs):
    """Run op ``cls``'s forward on bfloat16 arrays in float32, as PyTorch's CPU kernels do for
    convolutions, softmax, log_softmax, logsumexp, variance, the norms, attention and cross entropy
    (they accumulate in float32 and round once). An op's forward starts with
    ``if x.dtype.kind == "V": return in_float32(Op, ctx, x, ...)``, so other dtypes pay that one test.
    Forward runs on float32 copies of the bfloat16 arguments and each floating output is rounded to
    bfloat16 once; what it saves stays float32, and the node's op becomes a twin of ``cls`` whose
    backward widens the bfloat16 gradients and runs in float32 too (the engine then rounds each input's
    gradient to that input's dtype)."""
    dtype = args[0].dtype
    if not backend.is_bfloat16(dtype):  # another kind-"V" (structured) dtype
        raise TypeError(f"{cls.__name__}: needs a floating-point input, got {dtype}")
    ctx.fn = _twin(cls)
    out = cls.forward(ctx, *[_float32_of(a) for a in args], **kwargs)
    if isinstance(out, tuple):
        return tuple([o.astype(dtype) if o.dtype == backend.float32 else o for o in out])
    return out.astype(dtype) if out.dtype == backend.float32 else out


def check_float(op, t):
    if t.dtype.kind not in "fc" and not backend.is_floating(t.dtype):
        raise TypeError(f"{op} needs a floating-point tensor, got {t.dtype}")


__all__ = ["backend", "check_float", "expand_reduced", "in_float32", "normalize_dim", "rounded_to", "xp_of"]


def scatter_add_rows(n, index, rows):
    """An (n, D) array whose row i is the sum of ``rows[k]`` over every k with ``index[k] == i``.

    On NumPy this sorts the indices once (stable) and sums each run of equal indices with
    ``add.reduceat``: 3-5x faster than ``add.at`` and deterministic (each row sums in index order)."""
    xp = xp_of(rows)
    out = xp.zeros((n,) + rows.shape[1:], dtype=rows.dtype)
    if index.size == 0:
        return out
    if xp is not np:
        xp.add.at(out, index, rows)
        return out
    order = np.argsort(index, kind="stable")
    ordered = index[order]
    starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1])))
    out[ordered[starts]] = np.add.reduceat(rows[order], starts, axis=0)
    return out
