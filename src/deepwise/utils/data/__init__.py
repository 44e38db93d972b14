"""``torch.utils.data``: datasets, samplers and the DataLoader of ``deepwise.data``, under PyTorch's
names and module paths (``dataloader``, ``dataset``, ``sampler``, ``distributed``)."""

from deepwise.data import (
    BatchSampler,
    ChainDataset,
    ConcatDataset,
    DataLoader,
    Dataset,
    IterableDataset,
    RandomSampler,
    Sampler,
    SequentialSampler,
    Subset,
    SubsetRandomSampler,
    TensorDataset,
    WeightedRandomSampler,
    default_collate,
    default_convert,
    random_split,
)
from deepwise.data.distributed import DistributedSampler
from deepwise.data.loader import get_worker_info
from deepwise.utils.data import dataloader, dataset, distributed, sampler

__all__ = [
    "BatchSampler", "ChainDataset", "ConcatDataset", "DataLoader", "Dataset", "DistributedSampler",
    "IterableDataset", "RandomSampler", "Sampler", "SequentialSampler", "Subset", "SubsetRandomSampler",
    "TensorDataset", "WeightedRandomSampler", "dataloader", "dataset", "default_collate",
    "default_convert", "distributed", "get_worker_info", "random_split", "sampler",
]
