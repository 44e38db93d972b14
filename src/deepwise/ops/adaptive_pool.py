"""Adaptive pooling over NCHW images: the windows [floor(i*H/OH), ceil((i+1)*H/OH)) divide each
input plane into the requested output size (plus the 1-D wrappers).

Adaptive average pooling is a separable linear map, computed as two small matrix products (see
``deepwise.ops.interpolate``); adaptive max gathers the (clipped) windows with index arrays and, like
``max_pool2d``, sends each output's gradient to its argmax (first in scan order on ties; a NaN wins).
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._util import xp_of
from deepwise.ops.interpolate import Separable, averaging_matrix


def _adaptive_size(op, input, output_size):
    if input.ndim not in (3, 4):
        raise RuntimeError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                           f"{tuple(input.shape)}")
    if isinstance(output_size, (tuple, list)):
        if len(output_size) != 2:
            raise ValueError(f"{op}: output_size must be an int or a pair, got {output_size!r}")
        out = tuple(input.shape[-2 + i] if v is None else int(v) for i, v in enumerate(output_size))
    else:
        out = (int(output_size),) * 2
    if min(out) < 1:
        raise ValueError(f"{op}: output_size must be positive, got {output_size!r}")
    if min(input.shape[-2:]) < 1:
        raise RuntimeError(f"{op}: input {tuple(input.shape)} has an empty spatial dim")
    return out


def adaptive_windows(size, out):
    """Start and end of each adaptive window: [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    return (i * size) // out, -((-(i + 1) * size) // out)


def adaptive_avg_pool2d(input, output_size):
    """Average over the adaptive windows that divide (H, W) into ``output_size`` (int or pair; None
    keeps that dim)."""
    out = _adaptive_size("adaptive_avg_pool2d", input, output_size)
    h, w = input.shape[-2:]
    xp = xp_of(input.array)
    ah = None if out[0] == h else averaging_matrix(h, out[0], xp, input.dtype)
    aw = None if out[1] == w else averaging_matrix(w, out[1], xp, input.dtype)
    if ah is None and aw is None:
        return input * 1.0
    return Separable.apply(input, ah=ah, aw=aw)


def adaptive_avg_pool1d(input, output_size):
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    return adaptive_avg_pool2d(input.unsqueeze(-2), (1, size)).squeeze(-2)


def _window_index(size, out, xp):
    """(out, kmax) input indices of each window, short windows padded by repeating their last index
    (a repeat never changes a max, and comes after the original in scan order)."""
    start, end = adaptive_windows(size, out)
    kmax = int((end - start).max())
    idx = start[:, None] + np.arange(kmax)[None, :]
    idx = np.minimum(idx, (end - 1)[:, None])
    return xp.asarray(idx)


class AdaptiveMaxPool2dFn(Function):
    @staticmethod
    def forward(ctx, x, out_hw, return_indices):
        xp = xp_of(x)
        n, c, h, w = x.shape
        ih, iw = _window_index(h, out_hw[0], xp), _window_index(w, out_hw[1], xp)
        kh, kw = ih.shape[1], iw.shape[1]
        # (N, C, OH, kh, OW, kw) -> (N, C, OH, OW, kh*kw)
        win = x[:, :, ih[:, :, None, None], iw[None, None, :, :]]
        win = win.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, out_hw[0], out_hw[1], kh * kw)
        nan = xp.isnan(win)
        if nan.any():  # a NaN wins, as in max_pool2d: pick the last NaN of the window
            rev = nan[..., ::-1]
            arg = (kh * kw - 1) - rev.argmax(axis=-1)
            arg = xp.where(nan.any(axis=-1), arg, xp.where(nan, -np.inf, win).argmax(axis=-1))
        else:
            arg = win.argmax(axis=-1)
        y = xp.take_along_axis(win, arg[..., None], axis=-1)[..., 0]
        flat = ih[xp.arange(out_hw[0])[:, None], arg // kw] * w + iw[xp.arange(out_hw[1]), arg % kw]
        ctx.save_for_backward(flat)
        ctx.x_shape = x.shape
        # the indices output is a view: the saved array stays a constant under create_graph, not an output
        return (y, flat.view()) if return_indices else y

    @staticmethod
    def backward(ctx, g, *_):
        (flat,) = ctx.saved  # a constant: each output's argmax as a flat index into its plane
        return dual.apply(_IndexScatter, g, flat, x_shape=ctx.x_shape), None, None


class _IndexScatter(Function):
    """Adaptive max pool's backward as an op: g added into each (n, c) plane at ``flat`` (linear in
    g); its backward is the gather ``_IndexGather``, whose backward is this again."""

    @staticmethod
    def forward(ctx, g, flat, x_shape):
        ctx.save_for_backward(flat)
        return _index_scatter(g, flat, x_shape)

    @staticmethod
    def backward(ctx, h):
        (flat,) = ctx.saved
        return dual.apply(_IndexGather, h, flat), None


class _IndexGather(Function):
    """The adjoint of ``_IndexScatter``: the element of each (n, c) plane of ``h`` at ``flat``."""

    @staticmethod
    def forward(ctx, h, flat):
        ctx.save_for_backward(flat)
        ctx.x_shape = h.shape
        n, c = h.shape[:2]
        picked = xp_of(h).take_along_axis(h.reshape(n, c, -1), flat.reshape(n, c, -1), axis=2)
        return picked.reshape(flat.shape)

    @staticmethod
    def backward(ctx, g):
        (flat,) = ctx.saved
        return dual.apply(_IndexScatter, g, flat, x_shape=ctx.x_shape), None


def _index_scatter(g, flat, x_shape):
    """Add g[n, c, i, j] into plane (n, c) at flat[n, c, i, j]: a bincount over global indices."""
    xp = xp_of(g)
    n, c, h, w = x_shape
    base = (xp.arange(n * c) * (h * w)).reshape(n, c, 1, 1)
    total = xp.bincount((flat + base).ravel(), weights=g.ravel(), minlength=n * c * h * w)
    return total.astype(g.dtype, copy=False).reshape(x_shape)


def adaptive_max_pool2d(input, output_size, return_indices=False):
    """Max over adaptive windows (see ``adaptive_avg_pool2d``); ties go to the first element in scan
    order; ``return_indices`` gives flat h*W + w indices as in PyTorch."""
    out = _adaptive_size("adaptive_max_pool2d", input, output_size)
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"adaptive_max_pool2d: needs a floating-point input, got {input.dtype}")
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    res = AdaptiveMaxPool2dFn.apply(input, out, bool(return_indices))
    if unbatched:
        res = tuple(r.squeeze(0) for r in res) if return_indices else res.squeeze(0)
    return res


def adaptive_max_pool1d(input, output_size, return_indices=False):
    size = output_size[0] if isinstance(output_size, (tuple, list)) else output_size
    res = adaptive_max_pool2d(input.unsqueeze(-2), (1, size), return_indices)
    if return_indices:
        return res[0].squeeze(-2), res[1].squeeze(-2)
    return res.squeeze(-2)


__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_windows",
]
