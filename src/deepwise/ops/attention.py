"""Scaled dot-product attention as ONE fused ``Function``: two batched GEMMs and one softmax forward,
four GEMMs backward.

For queries ``q`` (..., L, E), keys ``k`` (..., S, E) and values ``v`` (..., S, Ev)::

    s = q @ k^T * scale + bias          (bias: a float attn_mask, added)
    s = -inf where a position may not be attended (boolean attn_mask False, or above the diagonal
             when is_causal)
    p = softmax(s, dim=-1)              (a row with nothing to attend to gives p = 0)
    out = (p * keep) @ v                (keep: the dropout mask scaled by 1/(1-dropout_p), if any)

With ``pd = p * keep`` and ``ds = p * (dp - rowsum(dp * p))`` where ``dp = (g @ v^T) * keep``, the
gradients are ``dv = pd^T @ g``, ``dq = ds @ k * scale``, ``dk = ds^T @ q * scale`` and
``dbias = ds`` (summed over broadcast dims). That backward runs on arrays, in place where it can
(``array_backward``); the higher derivatives (``create_graph=True``) differentiate ``_attention_ops``,
the same computation written with other deepwise ops, under the same masks and dropout draw.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend, random
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import in_float32, xp_of
from deepwise.ops.activation import softmax
from deepwise.ops.arithmetic import where
from deepwise.ops.linalg import matmul
from deepwise.tensor import Tensor


def _allowed(allow, causal, L, S, xp):
    """The boolean "may attend" mask: ``allow`` (or None) and, when ``causal``, the lower triangle of
    an (L, S) grid aligned top-left (query i sees keys 0..i), as PyTorch does for L != S."""
    if not causal:
        return allow
    tri = xp.tri(L, S, dtype=bool)
    return tri if allow is None else allow & tri


def _dead_rows(s):
    """Rows of the masked scores with nothing to attend to (every entry -inf): keepdims bool."""
    return s.max(axis=-1, keepdims=True) == -np.inf


class ScaledDotProductAttention(Function):
    """softmax(q k^T * scale + bias, masked) [* keep] @ v; with ``need_weights`` also the weights."""

    array_backward = True

    @staticmethod
    def forward(ctx, q, k, v, bias, allow, keep, *, scale, causal, need_weights):
        if q.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(ScaledDotProductAttention, ctx, q, k, v, bias, allow, keep, scale=scale, causal=causal,
                              need_weights=need_weights)
        xp = xp_of(q)
        L, S = q.shape[-2], k.shape[-2]
        s = xp.matmul(q, k.swapaxes(-1, -2))
        s *= s.dtype.type(scale)
        if bias is not None:
            if np.broadcast_shapes(s.shape, bias.shape) == s.shape:
                s += bias
            else:  # a mask with more batch dims than q and k widens the scores
                s = s + bias
        allowed = _allowed(allow, causal, L, S, xp)
        if allowed is not None:
            s = xp.where(allowed, s, s.dtype.type(-np.inf))
        m = s.max(axis=-1, keepdims=True)
        dead = m == -np.inf
        any_dead = bool(dead.any())
        if any_dead:  # nothing to attend to: exp(-inf - 0) = 0 everywhere, and the sum becomes 1
            m[dead] = 0
        s -= m
        xp.exp(s, out=s)
        total = s.sum(axis=-1, keepdims=True)
        if any_dead:
            total[dead] = 1
        s /= total
        p = s
        pd = p if keep is None else p * keep
        out = xp.matmul(pd, v)
        ctx.save_for_backward(q, k, v, p, keep)
        ctx.scale = scale
        ctx.bias_shape = None if bias is None else bias.shape
        if need_weights:
            return out, pd
        return out

    @staticmethod
    def backward(ctx, g, g_weights=None):
        q, k, v, p, keep = ctx.saved
        xp = xp_of(p)
        need_q, need_k, need_v, need_bias = ctx.needs_input_grad[:4]
        pd = p if keep is None else p * keep
        gv = None
        if need_v:
            gv = dual.sum_to(xp.matmul(pd.swapaxes(-1, -2), g), v.shape)
        gq = gk = gbias = None
        if need_q or need_k or need_bias:
            dp = xp.matmul(g, v.swapaxes(-1, -2))
            if g_weights is not None:
                dp += g_weights
            if keep is not None:
                dp *= keep
            row = (dp * p).sum(axis=-1, keepdims=True)
            dp -= row
            dp *= p  # now the gradient of the scores
            if need_bias:
                gbias = dual.sum_to(dp, ctx.bias_shape)
            dp *= dp.dtype.type(ctx.scale)
            if need_q:
                gq = dual.sum_to(xp.matmul(dp, k), q.shape)
            if need_k:
                gk = dual.sum_to(xp.matmul(dp.swapaxes(-1, -2), q), k.shape)
        return gq, gk, gv, gbias, None, None


def _attention_ops(q, k, v, bias, allow, keep, *, scale, causal, need_weights):
    """``ScaledDotProductAttention`` in deepwise ops, for its higher derivatives: the same masks,
    the same dead rows (zeros) and the same dropout draw ``keep``."""
    s = matmul(q, k.transpose(-1, -2)) * scale
    if bias is not None:
        s = s + bias
    xp = xp_of(s.array)
    allowed = _allowed(allow, causal, q.shape[-2], k.shape[-2], xp)
    masked = s.array if allowed is None else xp.where(allowed, s.array, -np.inf)
    dead = _dead_rows(masked)
    if allowed is not None or bool(dead.any()):
        cond = dead if allowed is None else (allowed | dead)
        # a dead row becomes all zeros before the softmax (its weights are zeroed below)
        s = where(cond, where(dead, 0.0, s), float("-inf"))
    p = softmax(s, dim=-1)
    if bool(dead.any()):
        p = p * Tensor._make((~dead).astype(p.dtype))
    pd = p if keep is None else p * Tensor._make(keep)
    out = matmul(pd, v)
    return (out, pd) if need_weights else out


ScaledDotProductAttention.composite = staticmethod(_attention_ops)


def _shape(t):
    return tuple(t.shape)


def _check_qkv(query, key, value, op):
    for name, t in (("query", query), ("key", key), ("value", value)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{op}: {name} must be a Tensor, got {type(t).__name__}")
        if t.ndim < 2:
            raise ValueError(f"{op}: {name} needs at least 2 dims (..., length, features), got shape {_shape(t)}")
        if t.dtype.kind != "f" and not backend.is_floating(t.dtype):
            raise TypeError(f"{op}: {name} must be floating point, got {t.dtype}")
    if not query.dtype == key.dtype == value.dtype:
        raise TypeError(
            f"{op}: query, key and value must have the same dtype, got {query.dtype}, {key.dtype} and {value.dtype}"
        )
    if query.shape[-1] != key.shape[-1]:
        raise ValueError(
            f"{op}: query of shape {_shape(query)} and key of shape {_shape(key)} must have the same "
            f"last dim (embedding size E)"
        )
    if key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"{op}: key of shape {_shape(key)} and value of shape {_shape(value)} must have the same "
            f"length S (dim -2)"
        )
    try:
        batch = np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2])
    except ValueError:
        raise ValueError(
            f"{op}: the batch dims of query {_shape(query)}, key {_shape(key)} and value {_shape(value)} "
            "do not broadcast together"
        ) from None
    return tuple(batch)


def _split_mask(attn_mask, query, weights_shape, op, name="attn_mask"):
    """(float bias Tensor or None, boolean "may attend" array or None) from an SDPA-style mask."""
    if attn_mask is None:
        return None, None
    if not isinstance(attn_mask, Tensor):
        raise TypeError(f"{op}: {name} must be a Tensor (bool or {query.dtype}), got {type(attn_mask).__name__}")
    try:
        fits = np.broadcast_shapes(attn_mask.shape, weights_shape) == weights_shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(
            f"{op}: {name} of shape {_shape(attn_mask)} does not broadcast to the attention weights' shape "
            f"{weights_shape} (..., L, S); expected a shape such as {weights_shape[-2:]}"
        )
    if attn_mask.dtype == backend.bool_:
        return None, attn_mask.array
    if attn_mask.dtype != query.dtype:
        raise TypeError(
            f"{op}: {name} must be bool (True = attend) or the query's dtype {query.dtype} (added to the "
            f"scores), got {attn_mask.dtype}"
        )
    return attn_mask, None


def _keep_scale(shape, p, like):
    """Dropout on the weights: 0 or 1/(1-p) per entry, drawn on the CPU from the seeded generator."""
    if p >= 1.0:
        return backend.to_device(np.zeros(shape, dtype=like.dtype), like.device)
    keep = random.generator().random(shape, dtype=np.float32) >= p
    scale = keep.astype(like.dtype) * like.dtype.type(1.0 / (1.0 - p))
    return backend.to_device(scale, like.device)


def _repeat_heads(t, groups):
    """(..., H, S, E) -> (..., H * groups, S, E), each head repeated ``groups`` times in a row."""
    if groups == 1:
        return t
    shape = _shape(t)
    wide = t.unsqueeze(-3).expand(*shape[:-2], groups, *shape[-2:])
    return wide.reshape(shape[:-3] + (shape[-3] * groups,) + shape[-2:])


def attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
              need_weights=False, *, bool_mask=None, op="scaled_dot_product_attention"):
    """Scaled dot-product attention that can also return its weights: ``(output, weights or None)``.

    ``attn_mask`` follows ``scaled_dot_product_attention`` (bool: True = attend; float: added);
    ``bool_mask`` is a second boolean "may attend" array (ANDed in), for callers such as
    ``nn.MultiheadAttention`` that hold a boolean padding mask next to a float attention mask.
    ``weights`` are those multiplied into ``value`` (after dropout), shape (..., L, S). ``op`` names
    the caller in errors."""
    batch = _check_qkv(query, key, value, op)
    L, S = query.shape[-2], key.shape[-2]
    weights_shape = batch + (L, S)
    if is_causal and attn_mask is not None:
        raise ValueError(f"{op}: give either attn_mask or is_causal=True, not both")
    bias, allow = _split_mask(attn_mask, query, weights_shape, op)
    if bool_mask is not None:
        allow = bool_mask if allow is None else allow & bool_mask
    if isinstance(dropout_p, bool) or not isinstance(dropout_p, (int, float)) or not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"{op}: dropout_p must be a number between 0 and 1, got {dropout_p!r}")
    scale = 1.0 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    keep = _keep_scale(weights_shape, float(dropout_p), query) if dropout_p > 0 else None
    out = ScaledDotProductAttention.apply(query, key, value, bias, allow, keep, scale=scale,
                                          causal=bool(is_causal), need_weights=need_weights)
    return out if need_weights else (out, None)


@autocast_op("scaled_dot_product_attention")
def scaled_dot_product_attention(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False,
                                 scale=None, enable_gqa=False):
    """softmax(query @ key^T * scale + mask) @ value, as ``torch.nn.functional.scaled_dot_product_attention``.

    query (..., L, E), key (..., S, E), value (..., S, Ev) -> (..., L, Ev); batch dims broadcast.
    ``attn_mask`` broadcasts to (..., L, S): a bool mask says which positions take part (True =
    attend; note ``nn.MultiheadAttention`` uses the opposite convention), a float mask (the query's
    dtype) is added to the scores. ``is_causal=True`` lets query i attend to keys 0..i, aligned
    top-left when L != S (as PyTorch); it excludes ``attn_mask``. ``scale`` defaults to 1/sqrt(E).
    ``dropout_p`` is always applied when above 0 (pass 0.0 in evaluation, as with PyTorch).
    ``enable_gqa=True`` lets key and value have fewer heads (dim -3) than query, each shared by a
    group of consecutive query heads.

    Fully masked rows: a query with no position to attend to (its mask all False or all -inf) gets an
    output of zeros and zero, finite gradients -- never NaN. PyTorch's CPU kernels agree for this
    function; PyTorch's reference (math) formulation and ``nn.MultiheadAttention`` with
    ``need_weights=True`` give NaN there instead.

    One fused op: its cost is two batched matrix products and one softmax forward. Double backward
    (``create_graph=True``) is supported.
    """
    op = "scaled_dot_product_attention"
    if enable_gqa:
        if not all(isinstance(t, Tensor) and t.ndim >= 3 for t in (query, key, value)):
            raise ValueError(f"{op}: enable_gqa needs a heads dim (-3) on query, key and value")
        hq, hk, hv = query.shape[-3], key.shape[-3], value.shape[-3]
        if hk != hv or hq % hk:
            raise ValueError(
                f"{op}: with enable_gqa the query's {hq} heads must be a multiple of the key's {hk} and "
                f"value's {hv} heads (which must be equal)"
            )
        key, value = _repeat_heads(key, hq // hk), _repeat_heads(value, hq // hv)
    out, _ = attention(query, key, value, attn_mask, dropout_p, is_causal, scale, op=op)
    return out


__all__ = ["ScaledDotProductAttention", "attention", "scaled_dot_product_attention"]
