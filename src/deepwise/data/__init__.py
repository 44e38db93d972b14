"""The data pipeline: datasets, samplers, the DataLoader, batch transforms and ready datasets.

    from deepwise.data import DataLoader, TensorDataset, random_split, load_digits
    x, y = load_digits(split="train", as_images=True)
    train, val = random_split(TensorDataset(x, y), [0.9, 0.1])
    for xb, yb in DataLoader(train, batch_size=64, shuffle=True):
        ...
"""

from deepwise.data import transforms
from deepwise.data.collate import default_collate, default_convert
from deepwise.data.dataset import (
    ArrayDataset,
    ChainDataset,
    ConcatDataset,
    Dataset,
    IterableDataset,
    Subset,
    TensorDataset,
    random_split,
)
from deepwise.data.datasets import (
    CIFAR10_CLASSES,
    ChecksumError,
    DatasetFormatError,
    DownloadError,
    cifar10_class_names,
    dataset_folder,
    default_root,
    download,
    download_url,
    file_checksum,
    load_cifar10,
    load_digits,
    load_mnist,
    read_cifar_batch,
    read_idx,
    verify_checksum,
)
from deepwise.data.distributed import DistributedSampler
from deepwise.data.loader import DataLoader, get_worker_info
from deepwise.data.randomness import rng
from deepwise.data.sampler import (
    BatchSampler,
    RandomSampler,
    Sampler,
    SequentialSampler,
    SubsetRandomSampler,
    WeightedRandomSampler,
)
from deepwise.data.transforms import (
    Compose,
    GaussianNoise,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomMask,
    RandomShift,
    Transform,
)

__all__ = [
    "ArrayDataset", "BatchSampler", "CIFAR10_CLASSES", "ChainDataset", "ChecksumError", "Compose", "ConcatDataset",
    "DataLoader", "Dataset", "IterableDataset", "SubsetRandomSampler", "WeightedRandomSampler", "get_worker_info",
    "DatasetFormatError", "DistributedSampler", "DownloadError", "GaussianNoise", "Normalize", "RandomCrop",
    "RandomHorizontalFlip",
    "RandomMask", "RandomSampler", "RandomShift", "Sampler", "SequentialSampler", "Subset", "TensorDataset",
    "Transform", "cifar10_class_names", "dataset_folder", "default_collate", "default_convert", "default_root",
    "download",
    "download_url", "file_checksum", "load_cifar10", "load_digits", "load_mnist", "random_split",
    "read_cifar_batch", "read_idx", "rng", "transforms", "verify_checksum",
]
