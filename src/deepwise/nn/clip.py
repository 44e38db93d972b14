"""Gradient clipping: rescale gradients whose joint norm is too large, or clamp each element.

Both replace ``p.grad`` with a new tensor instead of writing into the gradient array, because one
gradient array (or one gradient tensor) may be shared by several parameters.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from deepwise import backend
from deepwise.backend import get_array_module
from deepwise.tensor import Tensor


def _with_grads(parameters, what):
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    try:
        parameters = list(parameters)
    except TypeError:
        raise TypeError(f"{what}: parameters must be a Tensor or an iterable of Tensors, "
                        f"got {type(parameters).__name__}") from None
    for i, p in enumerate(parameters):
        if not isinstance(p, Tensor):
            raise TypeError(f"{what}: parameter {i} is a {type(p).__name__}, not a Tensor")
    return [p for p in parameters if p.grad is not None]


def _number(value, name, what):
    if isinstance(value, Tensor):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{what}: {name} must be a number, got {value!r}")
    return float(value)


def _vector_norm(xp, g, norm_type):
    """The ``norm_type``-norm of all elements of ``g`` as a 0-d array of g's dtype."""
    if g.size == 0:
        return xp.zeros((), dtype=g.dtype)
    if norm_type == 2.0:
        flat = g.reshape(-1)
        return xp.sqrt(xp.asarray(xp.dot(flat, flat), dtype=g.dtype))
    if norm_type == math.inf:
        return xp.asarray(xp.maximum(g.max(), -g.min()), dtype=g.dtype)
    if norm_type == -math.inf:
        return xp.asarray(xp.abs(g).min(), dtype=g.dtype)
    if norm_type == 0.0:
        return xp.asarray(xp.count_nonzero(g), dtype=g.dtype)
    if norm_type == 1.0:
        return xp.asarray(xp.abs(g).sum(), dtype=g.dtype)
    return xp.asarray(xp.sum(xp.abs(g) ** norm_type) ** (1.0 / norm_type), dtype=g.dtype)


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``parameters`` so that their joint ``norm_type``-norm (the norm of the
    vector of all gradient elements) is at most ``max_norm``.

    The coefficient is ``max_norm / (total_norm + 1e-6)``, clamped to 1; gradients are replaced by
    scaled copies only when it is below 1. Returns the total norm (before clipping) as a 0-d Tensor.
    ``norm_type`` may be ``float('inf')`` (largest absolute element). With ``error_if_nonfinite`` a
    NaN or infinite total norm raises instead of turning every gradient into NaN.
    """
    what = "clip_grad_norm_"
    params = _with_grads(parameters, what)
    max_norm = _number(max_norm, "max_norm", what)
    try:
        norm_type = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"{what}: norm_type must be a number or 'inf', got {norm_type!r}") from None
    if not params:
        return Tensor._make(np.zeros((), dtype=backend.DEFAULT_FLOAT))
    grads = [p.grad.array for p in params]
    devices = {backend.device_of(g) for g in grads}
    if len(devices) > 1:
        raise RuntimeError(f"{what}: the gradients are on several devices ({sorted(map(str, devices))}); "
                           "move the model to one device first")
    xp = get_array_module(grads[0])
    dtype = backend.result_dtype(*(g.dtype for g in grads))
    norms = xp.stack([_vector_norm(xp, g, norm_type).astype(dtype) for g in grads])
    total = _vector_norm(xp, norms, norm_type)
    if error_if_nonfinite and not bool(xp.isfinite(total)):
        raise RuntimeError(
            f"{what}: the total norm of order {norm_type} of the gradients is non-finite ({float(total)}), "
            "so they cannot be clipped; pass error_if_nonfinite=False to scale them by it anyway"
        )
    coef = xp.asarray(max_norm, dtype=dtype) / (total + xp.asarray(1e-6, dtype=dtype))
    coef = xp.minimum(coef, xp.asarray(1.0, dtype=dtype))
    if not float(coef) >= 1.0:  # below 1, or NaN from a non-finite norm (then, like PyTorch, NaN grads)
        for p in params:
            g = p.grad.array
            p.grad = Tensor._make(xp.multiply(g, coef.astype(g.dtype), out=xp.empty_like(g)))
    return Tensor._make(total)


def clip_grad_value_(parameters, clip_value):
    """Clamp every gradient element of ``parameters`` into ``[-clip_value, clip_value]``."""
    what = "clip_grad_value_"
    clip_value = _number(clip_value, "clip_value", what)
    if clip_value < 0:
        raise ValueError(f"{what}: clip_value must be >= 0, got {clip_value}")
    for p in _with_grads(parameters, what):
        g = p.grad.array
        xp = get_array_module(g)
        p.grad = Tensor._make(xp.clip(g, -clip_value, clip_value, out=xp.empty_like(g)))
