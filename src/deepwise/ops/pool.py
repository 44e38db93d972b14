"""Pooling over NCHW images: max and average (plus the 1-D wrappers).

Windows are never gathered per pixel. A pool with a kh*kw window loops over the kh*kw kernel offsets;
each step reads one strided slice of the padded input covering every (N, C, OH, OW) output at once.

Max pooling keeps, per output, the offset k (0 <= k < kh*kw, row-major over the window) of its maximum.
Ties go to the FIRST offset in that scan order (a later element must be strictly greater to win), and a
NaN wins over every number (the first NaN does not stay: a later NaN takes over, as in PyTorch). The
backward pass routes each output's gradient to that one input; ``return_indices`` gives PyTorch's flat
``h * W + w`` index into each (H, W) input plane.

Adaptive pools are in ``deepwise.ops.adaptive_pool``.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend, threads
from deepwise.autograd.function import Function
from deepwise.autograd.mode import is_grad_enabled
from deepwise.ops import dual
from deepwise.ops._util import xp_of
from deepwise.ops.conv import int_tuple
from deepwise.ops.conv_kernels import as_strided


# ------------------------------------------------------------------------------------ geometry
def _pool_out(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:  # the last window must start inside input or left pad
        out -= 1
    return out


def _settings(op, input, kernel_size, stride, padding, dilation, ceil_mode):
    if input.ndim not in (3, 4):
        raise RuntimeError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                           f"{tuple(input.shape)}")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: needs a floating-point input, got {input.dtype}")
    k = int_tuple(kernel_size, 2, "kernel_size", op)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) else \
        int_tuple(stride, 2, "stride", op)
    p = int_tuple(padding, 2, "padding", op)
    d = int_tuple(dilation, 2, "dilation", op)
    if min(k) < 1 or min(s) < 1 or min(d) < 1 or min(p) < 0:
        raise ValueError(f"{op}: kernel_size, stride and dilation must be positive and padding >= 0, got "
                         f"kernel_size={k}, stride={s}, padding={p}, dilation={d}")
    if any(pi > ki // 2 for pi, ki in zip(p, k)):
        raise ValueError(f"{op}: padding {p} must be at most half of the kernel size {k}")
    out = []
    for size, ki, si, pi, di, axis in zip(input.shape[-2:], k, s, p, d, ("height", "width")):
        o = _pool_out(size, ki, si, pi, di, ceil_mode)
        if o < 1:
            raise RuntimeError(f"{op}: window {ki} (dilation {di}) does not fit the padded input {axis} "
                               f"{size + 2 * pi} (input {tuple(input.shape)}, padding {pi})")
        out.append(o)
    return k, s, p, d, tuple(out)


def _channels_first(a):
    """True when an (N, C, H, W) array is stored channels first, then batch (the conv kernels' output
    layout); pooling keeps that layout so elementwise ops downstream see matching strides."""
    return a.shape[0] > 1 and a.shape[1] > 1 and a.strides[1] > a.strides[0]


def _new(xp, shape, dtype, cn, fill=0):
    """A filled (N, C, H, W) array (left uninitialised when ``fill`` is None), stored (C, N, H, W)
    when ``cn``."""
    mem = (shape[1], shape[0]) + tuple(shape[2:]) if cn else tuple(shape)
    buf = xp.empty(mem, dtype=dtype) if fill is None else xp.full(mem, fill, dtype=dtype)
    return buf.transpose(1, 0, 2, 3) if cn else buf


def _padded(x, pads, out_hw, k, s, d, fill):
    """x padded by ``pads`` on the top/left and as far as the last window reaches on the bottom/right."""
    n, c, h, w = x.shape
    hp = max(h + pads[0], (out_hw[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1)
    wp = max(w + pads[1], (out_hw[1] - 1) * s[1] + d[1] * (k[1] - 1) + 1)
    if hp == h and wp == w:
        return x
    buf = _new(xp_of(x), (n, c, hp, wp), x.dtype, _channels_first(x), fill)
    buf[:, :, pads[0]:pads[0] + h, pads[1]:pads[1] + w] = x
    return buf


def _offsets(k, s, d, out_hw):
    """(flat offset, slice rows, slice cols) for each kernel offset, row-major over the window."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = k, s, d, out_hw
    for i in range(kh):
        for j in range(kw):
            yield (i * kw + j, slice(i * dh, i * dh + sh * (oh - 1) + 1, sh),
                   slice(j * dw, j * dw + sw * (ow - 1) + 1, sw))


# ------------------------------------------------------------------------------------ max pool
def _max_2x2(x, out_hw):
    """The common 2x2 / stride 2 pool. One copy gathers the four window corners into contiguous
    planes (strided stride-2 ufuncs are ~10x slower than contiguous ones); then a pairwise tree,
    columns first, then rows: ties keep the earlier element at both steps, so the first in scan
    order wins. The result keeps x's storage order of (N, C); a big input is cut along its outer
    storage axis into one range per thread of the intra-op pool."""
    xp = xp_of(x)
    order = (1, 0, 2, 3) if _channels_first(x) else (0, 1, 2, 3)  # x's storage order of (N, C)
    a = x.transpose(order)
    best = xp.empty(a.shape[:2] + tuple(out_hw), dtype=x.dtype)
    arg = xp.empty(best.shape, dtype=np.uint8)

    def part(i, j):
        _max_2x2_into(xp, a[i:j], best[i:j], arg[i:j])

    threads.run_split(part, a.shape[0], x.size, xp)
    return best.transpose(order), arg.transpose(order)


def _max_2x2_into(xp, a, best, arg):
    """``_max_2x2`` of ``a`` (stored in its own axis order) into ``best`` and ``arg``."""
    s0, s1, sh, sw = a.strides
    corners = xp.empty((2, 2) + best.shape, dtype=a.dtype)
    corners[...] = as_strided(xp, a, corners.shape, (sh, sw, s0, s1, 2 * sh, 2 * sw))
    (tl, tr), (bl, br) = corners
    right_top, right_bottom = tr > tl, br > bl
    top, bottom = xp.maximum(tl, tr), xp.maximum(bl, br)
    bottom_wins = bottom > top
    xp.maximum(top, bottom, out=best)
    right_bottom ^= right_top  # right_top becomes where(bottom_wins, right_bottom, right_top)
    right_bottom &= bottom_wins
    right_top ^= right_bottom
    xp.bitwise_or(right_top.view(np.uint8), bottom_wins.view(np.uint8) << 1, out=arg)


def _max_forward(x, k, s, p, d, out_hw, need_arg=True):
    """Window maxima and (when ``need_arg``) the window offset of each, first occurrence on ties."""
    xp = xp_of(x)
    if k == (2, 2) and s == (2, 2) and p == (0, 0) and d == (1, 1) and need_arg:
        best, arg = _max_2x2(x, out_hw)
        xpad = x
    else:
        best, arg, xpad = _max_windows(x, k, s, p, d, out_hw, need_arg)
    if need_arg:
        nan = best != best
        if nan.any():  # a NaN beats every number; among NaNs the last one is kept, as in PyTorch
            for off, rows, cols in _offsets(k, s, d, out_hw):
                v = xpad[:, :, rows, cols]
                xp.copyto(arg, off, where=nan & (v != v), casting="unsafe")
    return best, arg


def _max_windows(x, k, s, p, d, out_hw, need_arg):
    """Any window: a running max over the kh*kw kernel offsets."""
    xp = xp_of(x)
    xpad = _padded(x, p, out_hw, k, s, d, -np.inf)
    best = arg = None
    for off, rows, cols in _offsets(k, s, d, out_hw):
        v = xpad[:, :, rows, cols]
        if best is None:
            best = v.copy(order="K")
            if need_arg:
                arg = xp.zeros_like(best, dtype=np.uint8 if k[0] * k[1] <= 256 else np.int32)
            continue
        if need_arg:
            xp.copyto(arg, off, where=v > best, casting="unsafe")  # strictly greater: first tie stays
        xp.maximum(best, v, out=best)  # NaN propagates
    return best, arg, xpad


def _flat_indices(arg, x_hw, k, s, p, d, out_hw):
    """Window offsets -> PyTorch's flat h*W + w index into the unpadded input plane (int64)."""
    xp = xp_of(arg)
    arg = arg.astype(np.int64)
    rows = xp.arange(out_hw[0]).reshape(-1, 1) * s[0] - p[0] + (arg // k[1]) * d[0]
    cols = xp.arange(out_hw[1]) * s[1] - p[1] + (arg % k[1]) * d[1]
    return rows * x_hw[1] + cols


def _max_scatter(g, arg, x_shape, k, s, p, d):
    """Backward of max pool: each output's gradient goes to the input at its argmax."""
    xp = xp_of(g)
    out_hw = g.shape[2:]
    n, c, h, w = x_shape
    hp = max(h + p[0], (out_hw[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1)
    wp = max(w + p[1], (out_hw[1] - 1) * s[1] + d[1] * (k[1] - 1) + 1)
    cn = _channels_first(arg)
    if cn != _channels_first(g) and min(g.shape[:2]) > 1:  # one copy; then every ufunc runs contiguous
        g = g.transpose(1, 0, 2, 3).copy().transpose(1, 0, 2, 3) if cn else xp.ascontiguousarray(g)
    disjoint = s[0] >= d[0] * (k[0] - 1) + 1 and s[1] >= d[1] * (k[1] - 1) + 1
    tiled = k == s and d == (1, 1) and (hp, wp) == (out_hw[0] * k[0], out_hw[1] * k[1])
    buf = _new(xp, (n, c, hp, wp), g.dtype, cn, None if tiled else 0)  # tiled: every element is written
    if disjoint:  # every input is in at most one window: write, no accumulation (cut along the
        # outer storage axis, one range per thread of the intra-op pool)
        axis = 1 if cn else 0

        def part(i, j):
            at = (slice(None), slice(i, j)) if axis else (slice(i, j),)
            gp, ap, bp = g[at], arg[at], buf[at]
            for off, rows, cols in _offsets(k, s, d, out_hw):
                xp.multiply(gp, ap == off, out=bp[:, :, rows, cols])

        threads.run_split(part, g.shape[axis], buf.size, xp)
    else:
        for off, rows, cols in _offsets(k, s, d, out_hw):
            buf[:, :, rows, cols] += g * (arg == off)
    return buf[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


def _max_gather(h, arg, k, s, p, d, out_hw):
    """Adjoint of ``_max_scatter``: each output picks the input-shaped ``h`` at its argmax."""
    xp = xp_of(h)
    hpad = _padded(h, p, out_hw, k, s, d, 0)
    out = xp.zeros(arg.shape, dtype=h.dtype)
    for off, rows, cols in _offsets(k, s, d, out_hw):
        xp.copyto(out, hpad[:, :, rows, cols], where=arg == off)
    return out


class MaxPool2dFn(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, d, out_hw, return_indices):
        need_arg = return_indices or (ctx.needs_input_grad[0] and is_grad_enabled())
        y, arg = _max_forward(x, k, s, p, d, out_hw, need_arg)
        ctx.save_for_backward(arg)
        ctx.x_shape, ctx.settings = x.shape, (k, s, p, d)
        if return_indices:
            return y, _flat_indices(arg, x.shape[2:], k, s, p, d, out_hw)
        return y

    @staticmethod
    def backward(ctx, g, *_):
        (arg,) = ctx.saved  # a constant: the window offset of each output's maximum
        return (dual.apply(_MaxScatter, g, arg, x_shape=ctx.x_shape, settings=ctx.settings),) + (None,) * 6


class _MaxScatter(Function):
    """Max pool's backward as an op: each output's gradient put at its argmax (linear in g); its own
    backward is the gather ``_MaxGather``, whose backward is this again -- so any order works."""

    @staticmethod
    def forward(ctx, g, arg, x_shape, settings):
        ctx.save_for_backward(arg)
        ctx.settings, ctx.out_hw = settings, g.shape[2:]
        return _max_scatter(g, arg, x_shape, *settings)

    @staticmethod
    def backward(ctx, h):
        (arg,) = ctx.saved
        return dual.apply(_MaxGather, h, arg, settings=ctx.settings, out_hw=ctx.out_hw), None


class _MaxGather(Function):
    """The adjoint of ``_MaxScatter``: each output picks the input-shaped ``h`` at its argmax."""

    @staticmethod
    def forward(ctx, h, arg, settings, out_hw):
        ctx.save_for_backward(arg)
        ctx.x_shape, ctx.settings = h.shape, settings
        return _max_gather(h, arg, *settings, out_hw)

    @staticmethod
    def backward(ctx, g):
        (arg,) = ctx.saved
        return dual.apply(_MaxScatter, g, arg, x_shape=ctx.x_shape, settings=ctx.settings), None


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over kh*kw windows of an (N, C, H, W) input (padding counts as -inf).

    Ties go to the first element of the window in row-major scan order; ``return_indices=True`` also
    returns the argmax as flat ``h * W + w`` indices into each input plane (int64), as in PyTorch."""
    k, s, p, d, out_hw = _settings("max_pool2d", input, kernel_size, stride, padding, dilation, ceil_mode)
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    out = MaxPool2dFn.apply(input, k, s, p, d, out_hw, bool(return_indices))
    if unbatched:
        out = tuple(o.squeeze(0) for o in out) if return_indices else out.squeeze(0)
    return out


def max_pool1d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False):
    """Max over windows of the last dim of an (N, C, L) input; indices index L."""
    if input.ndim not in (2, 3):
        raise RuntimeError(f"max_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape "
                           f"{tuple(input.shape)}")

    def one(v, name, first):
        return (first, int_tuple(v, 1, name, "max_pool1d")[0])

    k = one(kernel_size, "kernel_size", 1)
    s = k if stride is None else one(stride, "stride", 1)
    out = max_pool2d(input.unsqueeze(-2), k, s, one(padding, "padding", 0), one(dilation, "dilation", 1),
                     ceil_mode, return_indices)
    if return_indices:
        return out[0].squeeze(-2), out[1].squeeze(-2)
    return out.squeeze(-2)


# ------------------------------------------------------------------------------------ avg pool
def _avg_divisor(x_hw, k, s, p, out_hw, count_include_pad, divisor_override, xp, dtype):
    """(OH, OW) divisors. With padding counted, a window is clipped to the padded input (not to the
    ceil-mode overhang); without, only real input elements count."""
    if divisor_override:
        return xp.asarray(np.full(out_hw, divisor_override, dtype=dtype))
    sizes = []
    for size, ki, si, pi, o in zip(x_hw, k, s, p, out_hw):
        start = np.arange(o) * si - pi
        end = np.minimum(start + ki, size + pi)
        if not count_include_pad:
            start, end = np.maximum(start, 0), np.minimum(end, size)
        sizes.append(end - start)
    return xp.asarray(np.outer(sizes[0], sizes[1]).astype(dtype))


class AvgPool2dFn(Function):
    @staticmethod
    def forward(ctx, x, k, s, p, out_hw, div):
        ctx.x_shape, ctx.settings = x.shape, (k, s, p, div)
        return _avg_forward(x, k, s, p, out_hw, div)

    @staticmethod
    def backward(ctx, g):
        return (dual.apply(_AvgScatter, g, x_shape=ctx.x_shape, settings=ctx.settings),) + (None,) * 5


def _avg_forward(x, k, s, p, out_hw, div):
    xpad = _padded(x, p, out_hw, k, s, (1, 1), 0)
    y = None
    for _, rows, cols in _offsets(k, s, (1, 1), out_hw):
        v = xpad[:, :, rows, cols]
        if y is None:
            y = v.copy(order="K")
        else:
            y += v
    y /= div
    return y


def _avg_scatter(g, x_shape, k, s, p, div):
    xp = xp_of(g)
    out_hw = g.shape[2:]
    n, c, h, w = x_shape
    hp = max(h + p[0], (out_hw[0] - 1) * s[0] + k[0])
    wp = max(w + p[1], (out_hw[1] - 1) * s[1] + k[1])
    buf = _new(xp, (n, c, hp, wp), g.dtype, _channels_first(g))
    gd = g / div
    for _, rows, cols in _offsets(k, s, (1, 1), out_hw):
        buf[:, :, rows, cols] += gd
    return buf[:, :, p[0]:p[0] + h, p[1]:p[1] + w]


class _AvgScatter(Function):
    """Average pool's backward as an op (linear in g); its backward is the average pool again."""

    @staticmethod
    def forward(ctx, g, x_shape, settings):
        ctx.settings, ctx.out_hw = settings, g.shape[2:]
        return _avg_scatter(g, x_shape, *settings)

    @staticmethod
    def backward(ctx, h):
        k, s, p, div = ctx.settings
        return dual.apply(AvgPool2dFn, h, k, s, p, ctx.out_hw, div)


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    """Mean over kh*kw windows of an (N, C, H, W) input; zero padding is counted in the mean when
    ``count_include_pad`` (PyTorch's default)."""
    k, s, p, _, out_hw = _settings("avg_pool2d", input, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (isinstance(divisor_override, bool) or int(divisor_override) < 1):
        raise ValueError(f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}")
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    xp = xp_of(input.array)
    div = _avg_divisor(input.shape[2:], k, s, p, out_hw, count_include_pad, divisor_override, xp, input.dtype)
    out = AvgPool2dFn.apply(input, k, s, p, out_hw, div)
    return out.squeeze(0) if unbatched else out


def avg_pool1d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    if input.ndim not in (2, 3):
        raise RuntimeError(f"avg_pool1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape "
                           f"{tuple(input.shape)}")
    k = (1, int_tuple(kernel_size, 1, "kernel_size", "avg_pool1d")[0])
    s = k if stride is None else (1, int_tuple(stride, 1, "stride", "avg_pool1d")[0])
    p = (0, int_tuple(padding, 1, "padding", "avg_pool1d")[0])
    return avg_pool2d(input.unsqueeze(-2), k, s, p, ceil_mode, count_include_pad).squeeze(-2)


__all__ = ["avg_pool1d", "avg_pool2d", "max_pool1d", "max_pool2d"]
