"""Small helpers shared by the op families."""

from __future__ import annotations

import numpy as np

from deepwise import backend
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


def check_float(op, t):
    if t.dtype.kind not in "fc":
        raise TypeError(f"{op} needs a floating-point tensor, got {t.dtype}")


__all__ = ["backend", "check_float", "expand_reduced", "normalize_dim", "xp_of"]


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
