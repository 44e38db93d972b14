"""``kl_divergence(p, q)``: KL(p || q) in closed form, looked up by the pair of distribution types.

``register_kl(TypeP, TypeQ)`` decorates a function ``(p, q) -> Tensor`` that computes it; the most
specific registered pair (by the types' method resolution order) is used, as in PyTorch.
"""

from __future__ import annotations

import math

from deepwise import ops
from deepwise.distributions.bernoulli import Bernoulli
from deepwise.distributions.categorical import Categorical
from deepwise.distributions.independent import Independent
from deepwise.distributions.normal import Normal
from deepwise.distributions.uniform import Uniform
from deepwise.nn import functional as F

__all__ = ["kl_divergence", "register_kl"]

_KL = {}


def register_kl(type_p, type_q):
    """Decorator: ``@register_kl(Normal, Normal) def kl(p, q): ...``."""
    def register(fn):
        _KL[type_p, type_q] = fn
        return fn
    return register


def _lookup(type_p, type_q):
    for i, tp in enumerate(type_p.__mro__):
        for j, tq in enumerate(type_q.__mro__):
            fn = _KL.get((tp, tq))
            if fn is not None:
                return fn, (i, j)
    return None, None


def kl_divergence(p, q):
    """KL(p || q), batched over the distributions' batch shape."""
    fn, _ = _lookup(type(p), type(q))
    if fn is None:
        raise NotImplementedError(f"kl_divergence: no closed form for KL({type(p).__name__} || {type(q).__name__}) "
                                  "in deepwise.distributions (register one with register_kl)")
    return fn(p, q)


def _params(p, q, *names):
    """The named parameters of ``p`` and of ``q``, on one device. A distribution made of numbers
    (``Normal(0.0, 1.0)``, the usual prior) holds scalars on the CPU; against one on a GPU they are
    moved there, as PyTorch lets a CPU scalar meet a GPU tensor."""
    ours = [getattr(p, n) for n in names]
    theirs = [getattr(q, n) for n in names]
    device = next((t.device for t in ours + theirs if t.device.type != "cpu"), None)
    if device is None:
        return ours, theirs

    def move(t):
        return t.to(device) if t.device.type == "cpu" and t.ndim == 0 else t
    return [move(t) for t in ours], [move(t) for t in theirs]


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    (p_loc, p_scale), (q_loc, q_scale) = _params(p, q, "loc", "scale")
    var_ratio = (p_scale / q_scale) ** 2
    t1 = ((p_loc - q_loc) / q_scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - ops.log(var_ratio))


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    (p_probs, p_logits), (q_probs, q_logits) = _params(p, q, "probs", "logits")
    t1 = p_probs * (F.softplus(-q_logits) - F.softplus(-p_logits))
    t1 = ops.where(q_probs == 0, math.inf, t1)
    t1 = ops.where(p_probs == 0, 0.0, t1)
    t2 = (1 - p_probs) * (F.softplus(q_logits) - F.softplus(p_logits))
    t2 = ops.where(q_probs == 1, math.inf, t2)
    t2 = ops.where(p_probs == 1, 0.0, t2)
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    t = ops.where(q.probs == 0, math.inf, t)
    t = ops.where(p.probs == 0, 0.0, t)
    return t.sum(dim=-1)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    (p_low, p_high), (q_low, q_high) = _params(p, q, "low", "high")
    result = ops.log((q_high - q_low) / (p_high - p_low))
    outside = (q_low > p_low) | (q_high < p_high)
    return ops.where(outside, math.inf, result)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("kl_divergence: Independent distributions with different "
                                  "reinterpreted_batch_ndims")
    kl = kl_divergence(p.base_dist, q.base_dist)
    n = p.reinterpreted_batch_ndims
    return kl.sum(dim=tuple(range(-n, 0))) if n > 0 else kl
