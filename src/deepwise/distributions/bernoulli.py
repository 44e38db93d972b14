"""``Bernoulli(probs=... | logits=...)``: a coin that shows 1 with probability ``probs``."""

from __future__ import annotations

from functools import cached_property

from deepwise import ops
from deepwise.autograd import no_grad
from deepwise.creation import arange, rand
from deepwise.distributions.distribution import Distribution, broadcast_all
from deepwise.distributions.utils import clamp_probs
from deepwise.nn import functional as F

__all__ = ["Bernoulli"]


class Bernoulli(Distribution):
    """1 with probability ``probs`` (in [0, 1]), else 0; or parameterised by ``logits`` (log-odds,
    any real), exactly one of the two. ``log_prob`` and ``entropy`` go through
    binary-cross-entropy-with-logits, stable for large logits. Sampling is not differentiable."""

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Bernoulli: either `probs` or `logits` must be specified, but not both")
        if probs is not None:
            (self.probs,) = broadcast_all(probs)
            given = self.probs
        else:
            (self.logits,) = broadcast_all(logits)
            given = self.logits
        self._param = "probs" if probs is not None else "logits"
        self._dtype, self._device = given.dtype, given.device
        super().__init__(tuple(given.shape), (), validate_args)
        if probs is not None:
            self._check("probs", self.probs, (self.probs >= 0) & (self.probs <= 1), "Interval(lower_bound=0.0, "
                        "upper_bound=1.0)")

    # the parameter not given is computed from the other when first used, and kept (as in PyTorch)
    @cached_property
    def logits(self):
        return self._logits_of(self.probs)

    @cached_property
    def probs(self):
        return ops.sigmoid(self.logits)

    @staticmethod
    def _logits_of(probs):
        p = clamp_probs(probs)
        return ops.log(p) - ops.log1p(-p)

    def _param_names(self):
        return (self._param,)

    @property
    def param_shape(self):
        return self.batch_shape

    @property
    def mean(self):
        return self.probs

    @property
    def mode(self):
        return (self.probs >= 0.5).to(self._dtype)

    @property
    def variance(self):
        return self.probs * (1 - self.probs)

    def sample(self, sample_shape=()):
        with no_grad():
            u = rand(self._extended_shape(sample_shape), dtype=self._dtype, device=self._device)
            return (u < self.probs.detach()).to(self._dtype)

    def log_prob(self, value):
        value = self._as_value(value)
        self._check_value(value, (value == 0) | (value == 1), "Boolean()")
        logits, value = broadcast_all(self.logits, value)
        return -F.binary_cross_entropy_with_logits(logits, value, reduction="none")

    def entropy(self):
        return F.binary_cross_entropy_with_logits(self.logits, self.probs, reduction="none")

    def enumerate_support(self, expand=True):
        values = arange(2, dtype=self._dtype, device=self._device).reshape((-1,) + (1,) * len(self.batch_shape))
        return ops.broadcast_to(values, (2, *self.batch_shape)) if expand else values
