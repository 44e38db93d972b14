"""``Normal(loc, scale)``: the Gaussian, with reparameterised samples (``loc + scale * eps``)."""

from __future__ import annotations

import math

from deepwise import ops
from deepwise.creation import randn
from deepwise.distributions.distribution import Distribution, broadcast_all

__all__ = ["Normal"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class Normal(Distribution):
    """The normal distribution of mean ``loc`` and standard deviation ``scale`` (> 0), batched over
    their broadcast shape."""

    has_rsample = True

    def __init__(self, loc, scale, validate_args=None):
        self.loc, self.scale = broadcast_all(loc, scale)
        self._dtype, self._device = self.loc.dtype, self.loc.device
        super().__init__(tuple(self.loc.shape), (), validate_args)
        self._check("scale", self.scale, self.scale > 0, "GreaterThan(lower_bound=0.0)")

    def _param_names(self):
        return ("loc", "scale")

    @property
    def mean(self):
        return self.loc

    @property
    def mode(self):
        return self.loc

    @property
    def stddev(self):
        return self.scale

    @property
    def variance(self):
        return self.scale ** 2

    def rsample(self, sample_shape=()):
        eps = randn(self._extended_shape(sample_shape), dtype=self._dtype, device=self._device)
        return self.loc + eps * self.scale

    def log_prob(self, value):
        value = self._as_value(value)
        var = self.scale ** 2
        return -((value - self.loc) ** 2) / (2 * var) - ops.log(self.scale) - _HALF_LOG_2PI

    def entropy(self):
        return 0.5 + _HALF_LOG_2PI + ops.log(self.scale)

    def icdf(self, value):
        raise NotImplementedError("Normal.icdf needs erfinv, which deepwise does not have yet")

    def cdf(self, value):
        raise NotImplementedError("Normal.cdf needs erf, which deepwise does not have yet")
