"""``Categorical(probs=... | logits=...)``: one of K classes, the policy of a discrete-action agent."""

from __future__ import annotations

import math
from functools import cached_property

import numpy as np

from deepwise import ops
from deepwise.autograd import no_grad
from deepwise.creation import arange, full, multinomial, tensor
from deepwise.distributions.distribution import Distribution
from deepwise.distributions.utils import probs_to_logits
from deepwise.tensor import Tensor

__all__ = ["Categorical"]


class Categorical(Distribution):
    """Class ``k`` of the last dimension with probability ``probs[..., k]`` (non-negative, normalised
    here to sum to 1) or ``softmax(logits)[..., k]``; exactly one of the two. The other dimensions are
    the batch: ``Categorical(logits=net(obs))`` for a batch of observations is one distribution
    per row. Sampling is not differentiable (use ``log_prob`` for a policy gradient)."""

    def __init__(self, probs=None, logits=None, validate_args=None):
        if (probs is None) == (logits is None):
            raise ValueError("Categorical: either `probs` or `logits` must be specified, but not both")
        given = probs if probs is not None else logits
        if not isinstance(given, Tensor):
            raise TypeError(f"Categorical: {'probs' if probs is not None else 'logits'} must be a Tensor, got "
                            f"{type(given).__name__}")
        if given.ndim < 1:
            raise ValueError(f"Categorical: {'probs' if probs is not None else 'logits'} must be at least "
                             "one-dimensional (the classes are its last dimension), got a scalar")
        self._dtype, self._device = given.dtype, given.device
        self._param = "probs" if probs is not None else "logits"
        super().__init__(tuple(given.shape[:-1]), (), validate_args)
        if probs is not None:
            self._check("probs", probs, (probs >= 0) & ops.isfinite(probs), "Simplex()")
            self.probs = probs / probs.sum(dim=-1, keepdim=True)
        else:
            self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._num_events = int(given.shape[-1])

    # the parameter not given is computed from the other when first used, and kept (as in PyTorch)
    @cached_property
    def logits(self):
        return probs_to_logits(self.probs)

    @cached_property
    def probs(self):
        return self.logits.softmax(dim=-1)

    def _param_names(self):
        return (self._param,)

    @property
    def param_shape(self):
        return tuple(self.probs.shape)

    @property
    def mean(self):
        return full(self.batch_shape, math.nan, dtype=self._dtype, device=self._device)

    @property
    def variance(self):
        return full(self.batch_shape, math.nan, dtype=self._dtype, device=self._device)

    @property
    def mode(self):
        return self.probs.argmax(dim=-1)

    def sample(self, sample_shape=()):
        shape = self._extended_shape(sample_shape)
        n = int(np.prod(shape[:len(shape) - len(self.batch_shape)], dtype=np.int64))
        with no_grad():
            rows = self.probs.detach().reshape(-1, self._num_events)
            draws = multinomial(rows, n, replacement=True)  # (rows, n)
            return draws.t().reshape(shape)

    def log_prob(self, value):
        if not isinstance(value, Tensor):
            value = tensor(value, dtype="int64", device=self._device)
        if self._validate_args:  # a look at the values on the host, only when checking
            v = value.detach().numpy()
            self._check_value(value, (v >= 0) & (v < self._num_events) & (np.floor(v) == v),
                              f"IntegerInterval(lower_bound=0, upper_bound={self._num_events - 1})")
        value = value.long()
        shape = np.broadcast_shapes(tuple(value.shape) + (1,), tuple(self.logits.shape))
        index = ops.broadcast_to(value.unsqueeze(-1), shape[:-1] + (1,))
        log_pmf = ops.broadcast_to(self.logits, shape)
        return log_pmf.gather(-1, index).squeeze(-1)

    def entropy(self):
        lowest = float(np.finfo(np.dtype(self._dtype)).min)
        return -(self.logits.clamp(min=lowest) * self.probs).sum(dim=-1)

    def enumerate_support(self, expand=True):
        values = arange(self._num_events, device=self._device).reshape((-1,) + (1,) * len(self.batch_shape))
        return ops.broadcast_to(values, (self._num_events, *self.batch_shape)) if expand else values
