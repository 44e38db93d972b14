"""Resizing images: ``interpolate`` (nearest, nearest-exact, (bi)linear, area), as in PyTorch.

Every mode here is *separable*: resizing an (H, W) plane is ``A_h @ plane @ A_w^T`` for two small
matrices that say how much each input row/column contributes to each output row/column (a one-hot row
for nearest, two weights for linear, a window mean for area). So one op, ``Separable``, does the work
for all modes and for ``adaptive_avg_pool2d``: forward and backward are two matrix products each (the
backward uses the transposed matrices), and the backward is itself a ``Separable`` -- any order of
gradient works. Nearest modes copy the picked pixels in the forward pass (an index gather, exact even
for inf), and use the matrices only for the gradient.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._util import in_float32, xp_of


def _separable(x, ah, aw):
    """A_h @ x[n, c] @ A_w^T for every plane; None means identity."""
    xp = xp_of(x)
    n, c, h, w = x.shape
    if aw is not None:
        x = (x.reshape(-1, w) @ aw.T).reshape(n, c, h, aw.shape[0])
    if ah is not None:
        ow = x.shape[3]
        t = xp.tensordot(ah, x.reshape(n * c, h, ow), axes=(1, 1))  # (OH, N*C, OW)
        x = t.transpose(1, 0, 2).reshape(n, c, ah.shape[0], ow)
    return x


def _t(a):
    return None if a is None else a.T


class Separable(Function):
    """y = A_h @ x @ A_w^T per (n, c) plane, for fixed matrices (settings, not inputs).

    ``ih``/``iw`` (optional) say that A_h/A_w are one-hot with these column indices: the forward pass
    then gathers instead of multiplying."""

    @staticmethod
    def forward(ctx, x, ah=None, aw=None, ih=None, iw=None):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(Separable, ctx, x, ah, aw, ih, iw)
        ctx.ah, ctx.aw = ah, aw
        if ih is not None or iw is not None:
            y = x
            if ih is not None:
                y = y[:, :, ih, :]
            if iw is not None:
                y = y[:, :, :, iw]
            return y
        return _separable(x, ah, aw)

    @staticmethod
    def backward(ctx, g):
        return dual.apply(Separable, g, ah=_t(ctx.ah), aw=_t(ctx.aw))


# ------------------------------------------------------------------------------------ matrices
def _to(a, xp, dtype):
    if backend.is_bfloat16(dtype):  # Separable computes bfloat16 in float32: exact weights (1/3 is not a bfloat16)
        dtype = backend.float32
    return xp.asarray(a.astype(dtype))


def averaging_matrix(size, out, xp, dtype):
    """(out, size): row i averages the adaptive window [floor(i*size/out), ceil((i+1)*size/out))."""
    i = np.arange(out)
    start, end = (i * size) // out, -((-(i + 1) * size) // out)
    cols = np.arange(size)
    inside = (cols >= start[:, None]) & (cols < end[:, None])
    return _to(inside / (end - start)[:, None], xp, dtype)


def _scale(size, out, scale_factor):
    """Source pixels per output pixel: 1/scale_factor when one was given, else size/out (PyTorch)."""
    if scale_factor is not None and scale_factor > 0:
        return 1.0 / scale_factor
    return size / out


def nearest_index(size, out, scale_factor, exact):
    """Source index of each output pixel, computed in float32 like PyTorch's CPU kernel."""
    if not exact:
        if out == size:
            return np.arange(out)
        if out == 2 * size:
            return np.arange(out) // 2
    scale = np.float32(_scale(size, out, scale_factor))
    dst = np.arange(out, dtype=np.float32)
    if exact:
        dst = dst + np.float32(0.5)
    src = np.floor(dst * scale).astype(np.int64)
    return np.minimum(src, size - 1)


def _one_hot(idx, size):
    m = np.zeros((idx.size, size))
    m[np.arange(idx.size), idx] = 1.0
    return m


def linear_matrix(size, out, scale_factor, align_corners):
    """(out, size) weights of linear interpolation (PyTorch's source-index rule)."""
    dst = np.arange(out, dtype=np.float64)
    if align_corners:
        src = dst * ((size - 1) / (out - 1) if out > 1 else 0.0)
    else:
        src = np.maximum((dst + 0.5) * _scale(size, out, scale_factor) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), size - 1)
    i1 = np.minimum(i0 + 1, size - 1)
    l1 = src - i0
    m = np.zeros((out, size))
    np.add.at(m, (np.arange(out), i0), 1.0 - l1)
    np.add.at(m, (np.arange(out), i1), l1)
    return m


# ----------------------------------------------------------------------------------- interpolate
_MODES = {3: ("nearest", "nearest-exact", "linear", "area"), 4: ("nearest", "nearest-exact", "bilinear", "area")}


def _output_size(input, size, scale_factor, dims):
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: give exactly one of size and scale_factor")
    spatial = tuple(input.shape[2:])
    if size is not None:
        out = tuple(size) if isinstance(size, (tuple, list)) else (size,) * dims
        if len(out) != dims:
            raise ValueError(f"interpolate: size {size!r} must have {dims} entries for input {tuple(input.shape)}")
        out = tuple(int(v) for v in out)
        scales = (None,) * dims
    else:
        scales = tuple(scale_factor) if isinstance(scale_factor, (tuple, list)) else (scale_factor,) * dims
        if len(scales) != dims:
            raise ValueError(f"interpolate: scale_factor {scale_factor!r} must have {dims} entries for input "
                             f"{tuple(input.shape)}")
        scales = tuple(float(s) for s in scales)
        if min(scales) <= 0:
            raise ValueError(f"interpolate: scale_factor must be positive, got {scale_factor!r}")
        out = tuple(int(math.floor(n * s)) for n, s in zip(spatial, scales))
    if min(out) < 1:
        raise ValueError(f"interpolate: output size {out} for input {tuple(input.shape)} is empty")
    return out, scales


def interpolate(input, size=None, scale_factor=None, mode="nearest", align_corners=None,
                recompute_scale_factor=None):
    """Resize the spatial dims of an (N, C, L) or (N, C, H, W) input to ``size`` or by ``scale_factor``.

    Modes: ``nearest`` (PyTorch's floor rule), ``nearest-exact`` (pixel centres), ``linear`` (3-D) /
    ``bilinear`` (4-D) with ``align_corners`` (default False), and ``area`` (adaptive average pooling).
    As in PyTorch, a given ``scale_factor`` is used by the kernel as is unless ``recompute_scale_factor``.
    """
    if input.ndim not in _MODES:
        raise ValueError(f"interpolate: expected a 3-D (N, C, L) or 4-D (N, C, H, W) input, got shape "
                         f"{tuple(input.shape)}")
    if mode not in _MODES[input.ndim]:
        raise ValueError(f"interpolate: mode {mode!r} is not supported for {input.ndim}-D input; "
                         f"choose one of {_MODES[input.ndim]}")
    linear = mode in ("linear", "bilinear")
    if align_corners is not None and not linear:
        raise ValueError("interpolate: align_corners can only be set with the linear and bilinear modes")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"interpolate: needs a floating-point input, got {input.dtype}")
    dims = input.ndim - 2
    out, scales = _output_size(input, size, scale_factor, dims)
    if recompute_scale_factor:
        scales = (None,) * dims
    x = input.unsqueeze(2) if dims == 1 else input
    spatial = tuple(x.shape[2:])
    out = (1,) * (2 - dims) + out
    scales = (None,) * (2 - dims) + scales
    xp = xp_of(input.array)
    mats, idx = [], []
    for n, o, s in zip(spatial, out, scales):
        if mode == "area":
            mats.append(None if n == o else averaging_matrix(n, o, xp, input.dtype))
            idx.append(None)
        elif linear:
            same = n == o and not align_corners and (s is None or s == 1.0)
            mats.append(None if same else _to(linear_matrix(n, o, s, bool(align_corners)), xp, input.dtype))
            idx.append(None)
        else:
            i = nearest_index(n, o, s, mode == "nearest-exact")
            if n == o and (i == np.arange(n)).all():
                mats.append(None)
                idx.append(None)
            else:
                mats.append(_to(_one_hot(i, n), xp, input.dtype))
                idx.append(xp.asarray(i))
    if all(m is None for m in mats):
        y = x * 1.0
    elif mode.startswith("nearest"):
        y = Separable.apply(x, ah=mats[0], aw=mats[1], ih=idx[0], iw=idx[1])
    else:
        y = Separable.apply(x, ah=mats[0], aw=mats[1])
    return y.squeeze(2) if dims == 1 else y


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    return interpolate(input, size, scale_factor, mode, align_corners)


__all__ = ["Separable", "averaging_matrix", "interpolate", "linear_matrix", "nearest_index", "upsample"]
