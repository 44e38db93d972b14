"""Normalisation: batch, layer and group norm, each one fused ``Function`` with a closed-form backward.

All three normalise ``x`` to ``xhat = (x - mean) * invstd`` over some axes (m elements per statistic)
and return ``xhat * weight + bias``. With ``dxhat = grad * weight`` the input gradient is

    dx = invstd / m * (m * dxhat - sum(dxhat) - xhat * sum(dxhat * xhat))

(sums over the normalised axes), so backward needs only ``xhat`` and ``invstd`` from forward.

That backward works on arrays (contiguous rows, one BLAS dot per row), so each op is an
``array_backward`` kernel whose higher derivatives (``create_graph=True``) come from its
``composite``: the same normalisation written with other ops, differentiated instead.
"""

from __future__ import annotations

import math

from deepwise import backend, threads
from deepwise.autograd.function import Function
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import in_float32, xp_of
from deepwise.tensor import Tensor


def _rows(a, axes):
    """``a`` as a 2-D (statistics, m) view when the normalised ``axes`` and the storage allow it
    without a copy: (rows, keepdims shape of a statistic, function mapping (statistics, m) rows back
    to ``a``'s axes); else None. Two cases: the trailing axes of a C-contiguous array (layer and
    group norm) and every axis but the channel axis 1 of an array stored channels first (a conv
    output, see ``deepwise.ops.conv``)."""
    nd = a.ndim
    if axes == tuple(range(nd - len(axes), nd)) and a.flags.c_contiguous:
        lead = a.shape[:nd - len(axes)]
        return a.reshape(math.prod(lead), -1), lead + (1,) * len(axes), lambda r: r.reshape(a.shape)
    if nd >= 2 and axes == (0,) + tuple(range(2, nd)):
        t = a.swapaxes(0, 1)
        if t.flags.c_contiguous:
            stat = (1, a.shape[1]) + (1,) * (nd - 2)
            return t.reshape(a.shape[1], -1), stat, lambda r: r.reshape(t.shape).swapaxes(0, 1)
    return None


def _row_dot(a, b):
    """Per-row dot products of two (rows, m) arrays: one BLAS dot per row, no (rows, m) temporary."""
    return xp_of(a).matmul(a[:, None, :], b[:, :, None]).reshape(-1, 1)


def _standardize(x, axes, eps, xp):
    """(xhat, invstd, biased var, mean), statistics kept with ``keepdims``."""
    found = _rows(x, axes)
    if found is not None:  # contiguous rows: fewer passes over the data, rows shared by the threads
        rows, stat, full = found
        n, m = rows.shape
        xc = xp.empty_like(rows)
        mean, var, invstd = (xp.empty((n, 1), dtype=rows.dtype) for _ in range(3))

        def part(i, j):
            mean[i:j] = rows[i:j].mean(axis=1, keepdims=True)
            xp.subtract(rows[i:j], mean[i:j], out=xc[i:j])
            var[i:j] = _row_dot(xc[i:j], xc[i:j]) / m
            invstd[i:j] = 1 / xp.sqrt(var[i:j] + eps)
            xc[i:j] *= invstd[i:j]

        threads.run_split(part, n, rows.size, xp)
        return full(xc), invstd.reshape(stat), var.reshape(stat), mean.reshape(stat)
    mean = x.mean(axis=axes, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=axes, keepdims=True)
    invstd = 1 / xp.sqrt(var + eps)
    xc *= invstd
    return xc, invstd, var, mean


def _per_channel(x, *stats):
    """Whether ``x`` is big enough to share over threads and every statistic (None allowed) holds one
    value per channel, shape (1, C, 1, ...): then a range of channels is a part of its own."""
    if x.ndim < 2 or x.size < threads.SPLIT_MIN:
        return False
    return all(a is None or (a.ndim == x.ndim and a.shape[0] == 1 and a.shape[1] == x.shape[1]) for a in stats)


def _affine(xhat, w, b):
    if w is None:
        return xhat if b is None else xhat + b
    if _per_channel(xhat, w, b):  # one weight per channel: the channels are shared by the threads
        xp = xp_of(xhat)
        y = xp.empty_like(xhat)

        def part(i, j):
            xp.multiply(xhat[:, i:j], w[:, i:j], out=y[:, i:j])
            if b is not None:
                y[:, i:j] += b[:, i:j]

        threads.run_split(part, xhat.shape[1], xhat.size, xp)
        return y
    y = xhat * w
    if b is not None:
        y += b
    return y


def _sums(g, xhat, axes):
    """(sum(g), sum(g * xhat)) over ``axes``, keepdims."""
    fg, fx = _rows(g, axes), _rows(xhat, axes)
    if fg is not None and fx is not None:
        (rg, stat, _), (rx, _, _) = fg, fx
        xp = xp_of(rg)
        s1, s2 = xp.empty(rg.shape[0], dtype=rg.dtype), xp.empty((rg.shape[0], 1), dtype=rg.dtype)

        def part(i, j):
            s1[i:j] = rg[i:j].sum(axis=1)
            s2[i:j] = _row_dot(rg[i:j], rx[i:j])

        threads.run_split(part, rg.shape[0], rg.size, xp)
        return s1.reshape(stat), s2.reshape(stat)
    return g.sum(axis=axes, keepdims=True), (g * xhat).sum(axis=axes, keepdims=True)


def _combine(d, xhat, scale, s1, s2, m):
    """scale * (d - s1/m - xhat * s2/m): d and xhat full-size, the rest one value per statistic;
    four passes over the data (per channel, the channels shared by the threads, when the statistics
    are per channel: BatchNorm)."""
    a, c = scale * (s2 / m), scale * (s1 / m)
    if not (d.shape == xhat.shape and _per_channel(d, a, c)):
        gx = d * scale
        t = xhat * a
        t += c
        gx -= t
        return gx
    xp = xp_of(d)
    gx = xp.empty_like(d)

    def part(i, j):
        xp.multiply(d[:, i:j], scale[:, i:j], out=gx[:, i:j])
        t = xhat[:, i:j] * a[:, i:j]
        t += c[:, i:j]
        gx[:, i:j] -= t

    threads.run_split(part, d.shape[1], d.size, xp)
    return gx


def _input_grad(g, w, xhat, invstd, axes, m):
    """The fused normalisation backward over ``axes`` (see the module docstring)."""
    dxhat = g if w is None else g * w
    s1, s2 = _sums(dxhat, xhat, axes)
    return _combine(dxhat, xhat, invstd, s1, s2, m)


def _standardize_ops(x, axes, eps):
    """(x - mean) / sqrt(biased var + eps) over ``axes``, in deepwise ops: the composites' core."""
    xc = x - x.mean(dim=axes, keepdim=True)
    return xc * ((xc * xc).mean(dim=axes, keepdim=True) + eps).rsqrt()


def _affine_ops(xhat, w, b, shape=None):
    if w is not None:
        xhat = xhat * (w if shape is None else w.reshape(shape))
    if b is not None:
        xhat = xhat + (b if shape is None else b.reshape(shape))
    return xhat


def _param_grads(ctx, g, xhat, axes, shape):
    gw = (g * xhat).sum(axis=axes).reshape(shape) if ctx.needs_input_grad[1] else None
    gb = g.sum(axis=axes).reshape(shape) if ctx.needs_input_grad[2] else None
    return gw, gb


def _batch_norm_ops(x, w, b, *, running_mean, running_var, training, momentum, eps):
    """``BatchNorm`` in deepwise ops, for its higher derivatives: batch statistics in training
    (the running statistics are not touched: forward updated them once), else the running ones."""
    bshape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    if training:
        xhat = _standardize_ops(x, (0,) + tuple(range(2, x.ndim)), eps)
    else:
        xp = xp_of(x.array)
        invstd = (1 / xp.sqrt(running_var + eps)).astype(x.dtype, copy=False).reshape(bshape)
        mean = running_mean.reshape(bshape).astype(x.dtype, copy=False)
        xhat = (x - Tensor._make(mean)) * Tensor._make(invstd)
    return _affine_ops(xhat, w, b, bshape)


class BatchNorm(Function):
    """Per-channel normalisation of (N, C, *); in training, batch statistics (running stats updated
    in place with the unbiased variance); otherwise the running statistics."""

    array_backward = True
    composite = staticmethod(_batch_norm_ops)

    @staticmethod
    def forward(ctx, x, w, b, *, running_mean, running_var, training, momentum, eps):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(BatchNorm, ctx, x, w, b, running_mean=running_mean, running_var=running_var,
                              training=training, momentum=momentum, eps=eps)
        xp = xp_of(x)
        n_ch = x.shape[1]
        axes = (0,) + tuple(range(2, x.ndim))
        bshape = (1, n_ch) + (1,) * (x.ndim - 2)
        wb = None if w is None else w.reshape(bshape)
        bb = None if b is None else b.reshape(bshape)
        if training:
            m = x.size // n_ch
            xhat, invstd, var, mean = _standardize(x, axes, eps, xp)
            if running_mean is not None:
                running_mean *= 1 - momentum
                running_mean += momentum * mean.reshape(n_ch)
            if running_var is not None:
                running_var *= 1 - momentum
                running_var += (momentum * m / max(m - 1, 1)) * var.reshape(n_ch)
        else:
            m = None
            invstd = (1 / xp.sqrt(running_var + eps)).astype(x.dtype, copy=False).reshape(bshape)
            xhat = (x - running_mean.reshape(bshape).astype(x.dtype, copy=False)) * invstd
        ctx.save_for_backward(xhat, invstd, wb)
        ctx.m, ctx.axes = m, axes
        return _affine(xhat, wb, bb)

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, w = ctx.saved
        axes = ctx.axes
        n_ch = xhat.shape[1]
        sg, sgx = _sums(g, xhat, axes)
        gx = None
        if ctx.needs_input_grad[0]:
            k = invstd if w is None else invstd * w
            if ctx.m is None:  # running statistics are constants
                gx = g * k
            else:
                gx = _combine(g, xhat, k, sg, sgx, ctx.m)
        gw = sgx.reshape(n_ch) if ctx.needs_input_grad[1] else None
        gb = sg.reshape(n_ch) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def _layer_norm_ops(x, w, b, *, k, eps):
    """``LayerNorm`` in deepwise ops: (x - mean) / sqrt(var + eps) * w + b over the last k axes."""
    return _affine_ops(_standardize_ops(x, tuple(range(x.ndim - k, x.ndim)), eps), w, b)


class LayerNorm(Function):
    """Normalisation over the last ``k`` axes; weight and bias have those axes' shape."""

    array_backward = True
    composite = staticmethod(_layer_norm_ops)

    @staticmethod
    def forward(ctx, x, w, b, *, k, eps):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(LayerNorm, ctx, x, w, b, k=k, eps=eps)
        xp = xp_of(x)
        axes = tuple(range(x.ndim - k, x.ndim))
        xhat, invstd, _, _ = _standardize(x, axes, eps, xp)
        ctx.save_for_backward(xhat, invstd, w)
        ctx.axes = axes
        ctx.m = math.prod(x.shape[x.ndim - k:])
        return _affine(xhat, w, b)

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, w = ctx.saved
        gx = None
        if ctx.needs_input_grad[0]:
            gx = _input_grad(g, w, xhat, invstd, ctx.axes, ctx.m)
        lead = tuple(range(xhat.ndim - len(ctx.axes)))
        gw, gb = _param_grads(ctx, g, xhat, lead, xhat.shape[len(lead):])
        return (gx, gw, gb)


def _group_norm_ops(x, w, b, *, num_groups, eps):
    """``GroupNorm`` in deepwise ops: each sample's groups of channels standardised, then per-channel
    weight and bias."""
    n, n_ch = x.shape[:2]
    xhat = _standardize_ops(x.reshape(n, num_groups, -1), (2,), eps).reshape(x.shape)
    return _affine_ops(xhat, w, b, (1, n_ch) + (1,) * (x.ndim - 2))


class GroupNorm(Function):
    """Normalisation of (N, C, *) over groups of C / G channels and all spatial positions;
    weight and bias are per channel."""

    array_backward = True
    composite = staticmethod(_group_norm_ops)

    @staticmethod
    def forward(ctx, x, w, b, *, num_groups, eps):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(GroupNorm, ctx, x, w, b, num_groups=num_groups, eps=eps)
        xp = xp_of(x)
        n, n_ch = x.shape[:2]
        bshape = (1, n_ch) + (1,) * (x.ndim - 2)
        xhat_g, invstd, _, _ = _standardize(x.reshape(n, num_groups, -1), (2,), eps, xp)
        xhat = xhat_g.reshape(x.shape)
        wb = None if w is None else w.reshape(bshape)
        ctx.save_for_backward(xhat, invstd, wb)
        ctx.groups = num_groups
        return _affine(xhat, wb, None if b is None else b.reshape(bshape))

    @staticmethod
    def backward(ctx, g):
        xhat, invstd, w = ctx.saved
        n, n_ch = xhat.shape[:2]
        gx = None
        if ctx.needs_input_grad[0]:
            dxhat = g if w is None else g * w
            grouped = (n, ctx.groups, -1)
            xg = xhat.reshape(grouped)
            gx = _input_grad(dxhat.reshape(grouped), None, xg, invstd, (2,), xg.shape[2])
            gx = gx.reshape(xhat.shape)
        axes = (0,) + tuple(range(2, xhat.ndim))
        gw, gb = _param_grads(ctx, g, xhat, axes, (n_ch,))
        return gx, gw, gb


# ------------------------------------------------------------------------------------ functional
def _check_input(op, input, min_ndim):
    if not isinstance(input, Tensor):
        raise TypeError(f"{op}: input must be a Tensor, got {type(input).__name__}")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: input must be floating point, got {input.dtype}")
    if input.ndim < min_ndim:
        raise ValueError(f"{op}: input must have at least {min_ndim} dimensions (N, C, ...), got shape {input.shape}")


def _param(op, name, t, shape, dtype):
    if t is None:
        return None
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{op}: {name} must have shape {tuple(shape)}, got {tuple(t.shape)}")
    return t if t.dtype == dtype else t.to(dtype)


def _buffer(op, name, t, n_ch):
    if t is None:
        return None
    arr = t.array if isinstance(t, Tensor) else t
    if tuple(arr.shape) != (n_ch,):
        raise ValueError(f"{op}: {name} must have shape ({n_ch},) for {n_ch} channels, got {tuple(arr.shape)}")
    return arr


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1,
               eps=1e-5):
    """Batch normalisation of (N, C), (N, C, L), (N, C, H, W), ... per channel.

    In training the batch statistics normalise, and ``running_mean`` / ``running_var`` (when given)
    are updated in place: ``r = (1 - momentum) r + momentum * stat``, with the unbiased variance.
    Otherwise the running statistics normalise."""
    op = "batch_norm"
    _check_input(op, input, 2)
    n_ch = input.shape[1]
    rm = _buffer(op, "running_mean", running_mean, n_ch)
    rv = _buffer(op, "running_var", running_var, n_ch)
    if not training and (rm is None or rv is None):
        raise ValueError(f"{op}: evaluation (training=False) needs running_mean and running_var")
    if training and input.array.size // max(n_ch, 1) <= 1:
        raise ValueError(f"{op}: expected more than 1 value per channel when training, got input of shape "
                         f"{input.shape}")
    if momentum is None:
        raise ValueError(f"{op}: momentum must be a number (a layer with momentum=None passes 1/num_batches)")
    w = _param(op, "weight", weight, (n_ch,), input.dtype)
    b = _param(op, "bias", bias, (n_ch,), input.dtype)
    if not training:  # the statistics of this call, for the composite: the buffers may change later
        rm, rv = rm.copy(), rv.copy()
    return BatchNorm.apply(input, w, b, running_mean=rm, running_var=rv, training=bool(training),
                           momentum=float(momentum), eps=float(eps))


@autocast_op("layer_norm")
def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the trailing ``normalized_shape`` dimensions of each sample."""
    op = "layer_norm"
    _check_input(op, input, 0)
    shape = (int(normalized_shape),) if isinstance(normalized_shape, int) else tuple(int(s) for s in normalized_shape)
    k = len(shape)
    if k == 0 or input.ndim < k or input.shape[input.ndim - k:] != shape:
        raise ValueError(f"{op}: input of shape {input.shape} does not end with normalized_shape {shape}")
    w = _param(op, "weight", weight, shape, input.dtype)
    b = _param(op, "bias", bias, shape, input.dtype)
    return LayerNorm.apply(input, w, b, k=k, eps=float(eps))


@autocast_op("group_norm")
def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """Normalise (N, C, *) over groups of channels: C must be divisible by ``num_groups``."""
    op = "group_norm"
    _check_input(op, input, 2)
    n_ch = input.shape[1]
    if num_groups <= 0 or n_ch % num_groups:
        raise ValueError(f"{op}: {n_ch} channels (input shape {input.shape}) are not divisible into "
                         f"num_groups={num_groups} groups")
    w = _param(op, "weight", weight, (n_ch,), input.dtype)
    b = _param(op, "bias", bias, (n_ch,), input.dtype)
    return GroupNorm.apply(input, w, b, num_groups=int(num_groups), eps=float(eps))


__all__ = ["batch_norm", "group_norm", "layer_norm"]
