"""``Uniform(low, high)``: constant density on ``[low, high)``, with reparameterised samples."""

from __future__ import annotations

import math

from deepwise import ops
from deepwise.creation import rand
from deepwise.distributions.distribution import Distribution, broadcast_all

__all__ = ["Uniform"]


class Uniform(Distribution):
    """The uniform distribution on ``[low, high)`` (``low < high``), batched over their broadcast shape.
    ``log_prob`` is ``-inf`` outside the interval (with ``validate_args=False``; with it, a value
    outside is an error, as in PyTorch)."""

    has_rsample = True

    def __init__(self, low, high, validate_args=None):
        self.low, self.high = broadcast_all(low, high)
        self._dtype, self._device = self.low.dtype, self.low.device
        super().__init__(tuple(self.low.shape), (), validate_args)
        self._check("low", self.low, self.low < self.high, "LessThan(upper_bound=high)")

    def _param_names(self):
        return ("low", "high")

    @property
    def mean(self):
        return (self.high + self.low) / 2

    @property
    def mode(self):
        return (self.high + self.low) * math.nan

    @property
    def stddev(self):
        return (self.high - self.low) / math.sqrt(12)

    @property
    def variance(self):
        return (self.high - self.low) ** 2 / 12

    def rsample(self, sample_shape=()):
        u = rand(self._extended_shape(sample_shape), dtype=self._dtype, device=self._device)
        return self.low + u * (self.high - self.low)

    def _inside(self, value):
        return (self.low <= value) & (self.high > value)

    def log_prob(self, value):
        value = self._as_value(value)
        inside = self._inside(value)
        self._check_value(value, inside, f"Interval(lower_bound={self.low}, upper_bound={self.high})")
        return ops.where(inside, -ops.log(self.high - self.low), -math.inf)

    def cdf(self, value):
        value = self._as_value(value)
        return ((value - self.low) / (self.high - self.low)).clamp(min=0, max=1)

    def icdf(self, value):
        value = self._as_value(value)
        return value * (self.high - self.low) + self.low

    def entropy(self):
        return ops.log(self.high - self.low)
