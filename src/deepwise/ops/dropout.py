"""Dropout: zero random elements (or whole channels) while training, scaling the rest by 1/(1-p).

The keep-mask is drawn on the CPU from ``deepwise.random.generator()`` (so a seed gives the same mask
on every device) and moved to the input's device. One ``Function`` serves every variant: it applies
``y = x * scale (+ shift)`` with a precomputed per-element (or per-channel, broadcast) ``scale``.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend, random
from deepwise.autograd.function import Function


class Dropout(Function):
    """y = x * scale + shift, with ``scale`` holding 0 or 1/(1-p) (broadcast over x)."""

    @staticmethod
    def forward(ctx, x, scale, shift):
        ctx.save_for_backward(scale)
        y = x * scale
        if shift is not None:
            y += shift
        return y

    @staticmethod
    def backward(ctx, g):
        (scale,) = ctx.saved  # a constant mask: the op is linear in x
        return g * scale, None, None


def _check_p(p, op):
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
        raise ValueError(f"{op}: dropout probability p must be a number between 0 and 1, got {p!r}")
    return float(p)


def _keep_mask(shape, p, x):
    """Boolean keep-mask of ``shape`` (each entry kept with probability 1-p) on x's device."""
    keep = random.generator().random(shape, dtype=np.float32) >= p
    return backend.to_device(keep, x.device)


def _float(x, op):
    if x.dtype.kind != "f" and not backend.is_floating(x.dtype):
        raise TypeError(f"{op} needs a floating-point tensor, got {x.dtype}")
    return x


def _apply_mask(x, keep, p):
    scale = keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))
    return Dropout.apply(x, scale, None)


def dropout(input, p=0.5, training=True, inplace=False):
    """Zero each element with probability ``p`` and scale the survivors by 1/(1-p) (training only)."""
    p = _check_p(p, "dropout")
    _float(input, "dropout")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return _apply_mask(input, _keep_mask(input.shape, p, input), p)


def _channel_dropout(input, p, training, op, batched_ndim):
    p = _check_p(p, op)
    _float(input, op)
    if input.ndim not in (batched_ndim - 1, batched_ndim):
        raise ValueError(
            f"{op}: expected a {batched_ndim - 1}-D (unbatched) or {batched_ndim}-D (batched) input, "
            f"got shape {input.shape}"
        )
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    # one draw per (sample, channel); a 3-D input to dropout2d is (N, C, L), as in PyTorch
    lead = 1 if input.ndim == batched_ndim - 1 and op == "dropout1d" else 2
    shape = input.shape[:lead] + (1,) * (input.ndim - lead)
    return _apply_mask(input, _keep_mask(shape, p, input), p)


def dropout1d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels of (N, C, L) or (C, L) inputs with probability ``p``."""
    return _channel_dropout(input, p, training, "dropout1d", 3)


def dropout2d(input, p=0.5, training=True, inplace=False):
    """Zero whole channels (feature maps) of (N, C, H, W) inputs with probability ``p``."""
    return _channel_dropout(input, p, training, "dropout2d", 4)


_SELU_ALPHA_SCALED = 1.7580993408473766  # selu's scale * alpha: the value SELU saturates to, negated


def alpha_dropout(input, p=0.5, training=False, inplace=False):
    """Dropout for self-normalising (SELU) networks: dropped units take SELU's negative saturation
    value and an affine correction keeps mean 0 and variance 1."""
    p = _check_p(p, "alpha_dropout")
    _float(input, "alpha_dropout")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = _keep_mask(input.shape, p, input)
    a = 1.0 / math.sqrt((_SELU_ALPHA_SCALED**2 * p + 1.0) * (1.0 - p))
    alpha = _SELU_ALPHA_SCALED
    dt = input.dtype.type
    scale = keep.astype(input.dtype) * dt(a)
    # dropped: a * (-alpha) + a * alpha * p ; kept: a * x + a * alpha * p
    shift = (keep.astype(input.dtype) - dt(1.0)) * dt(alpha * a) + dt(alpha * a * p)
    return Dropout.apply(input, scale, shift)


__all__ = ["Dropout", "alpha_dropout", "dropout", "dropout1d", "dropout2d"]
