"""``torch.utils.data.distributed``: the sampler that gives each process its share of an epoch."""

from deepwise.data.distributed import DistributedSampler

__all__ = ["DistributedSampler"]
