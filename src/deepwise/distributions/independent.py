"""``Independent(base, n)``: the last ``n`` batch dimensions of ``base`` read as one event."""

from __future__ import annotations

from deepwise.distributions.distribution import Distribution

__all__ = ["Independent"]


def _sum_rightmost(t, n: int):
    return t.sum(dim=tuple(range(-n, 0))) if n > 0 else t


class Independent(Distribution):
    """A diagonal Gaussian over a (784,) image is ``Independent(Normal(mu, sigma), 1)``: one
    distribution per batch row whose ``log_prob`` sums the 784 independent ones."""

    def __init__(self, base_distribution, reinterpreted_batch_ndims: int, validate_args=None):
        n = int(reinterpreted_batch_ndims)
        shape = base_distribution.batch_shape + base_distribution.event_shape
        batch = base_distribution.batch_shape
        if not 0 <= n <= len(batch):
            raise ValueError(f"Independent: reinterpreted_batch_ndims must be in [0, {len(batch)}] (the batch "
                             f"dimensions of {type(base_distribution).__name__} with batch shape {batch}), got {n}")
        self.base_dist = base_distribution
        self.reinterpreted_batch_ndims = n
        cut = len(base_distribution.batch_shape) - n
        super().__init__(shape[:cut], shape[cut:], validate_args)
        self.has_rsample = base_distribution.has_rsample

    def __repr__(self):
        return f"Independent({self.base_dist!r}, {self.reinterpreted_batch_ndims})"

    @property
    def mean(self):
        return self.base_dist.mean

    @property
    def mode(self):
        return self.base_dist.mode

    @property
    def variance(self):
        return self.base_dist.variance

    @property
    def stddev(self):
        return self.base_dist.stddev

    def sample(self, sample_shape=()):
        return self.base_dist.sample(sample_shape)

    def rsample(self, sample_shape=()):
        return self.base_dist.rsample(sample_shape)

    def log_prob(self, value):
        return _sum_rightmost(self.base_dist.log_prob(value), self.reinterpreted_batch_ndims)

    def entropy(self):
        return _sum_rightmost(self.base_dist.entropy(), self.reinterpreted_batch_ndims)
