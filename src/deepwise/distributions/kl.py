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


@register_kl(Normal, Normal)
def _kl_normal_normal(p, q):
    var_ratio = (p.scale / q.scale) ** 2
    t1 = ((p.loc - q.loc) / q.scale) ** 2
    return 0.5 * (var_ratio + t1 - 1 - ops.log(var_ratio))


@register_kl(Bernoulli, Bernoulli)
def _kl_bernoulli_bernoulli(p, q):
    t1 = p.probs * (F.softplus(-q.logits) - F.softplus(-p.logits))
    t1 = ops.where(q.probs == 0, math.inf, t1)
    t1 = ops.where(p.probs == 0, 0.0, t1)
    t2 = (1 - p.probs) * (F.softplus(q.logits) - F.softplus(p.logits))
    t2 = ops.where(q.probs == 1, math.inf, t2)
    t2 = ops.where(p.probs == 1, 0.0, t2)
    return t1 + t2


@register_kl(Categorical, Categorical)
def _kl_categorical_categorical(p, q):
    t = p.probs * (p.logits - q.logits)
    t = ops.where(q.probs == 0, math.inf, t)
    t = ops.where(p.probs == 0, 0.0, t)
    return t.sum(dim=-1)


@register_kl(Uniform, Uniform)
def _kl_uniform_uniform(p, q):
    result = ops.log((q.high - q.low) / (p.high - p.low))
    outside = (q.low > p.low) | (q.high < p.high)
    return ops.where(outside, math.inf, result)


@register_kl(Independent, Independent)
def _kl_independent_independent(p, q):
    if p.reinterpreted_batch_ndims != q.reinterpreted_batch_ndims:
        raise NotImplementedError("kl_divergence: Independent distributions with different "
                                  "reinterpreted_batch_ndims")
    kl = kl_divergence(p.base_dist, q.base_dist)
    n = p.reinterpreted_batch_ndims
    return kl.sum(dim=tuple(range(-n, 0))) if n > 0 else kl
