"""Datasets: the bundled digits, readers for standard formats (MNIST IDX, CIFAR-10 binary and python batches), and a
checksum-verifying downloader."""

from deepwise.data.datasets.cifar import CLASSES as CIFAR10_CLASSES
from deepwise.data.datasets.cifar import cifar10_class_names, load_cifar10, read_cifar_batch
from deepwise.data.datasets.digits import load_digits, stratified_split
from deepwise.data.datasets.errors import ChecksumError, DatasetFormatError, DownloadError
from deepwise.data.datasets.idx import load_mnist, parse_idx, read_idx
from deepwise.data.datasets.remote import (
    dataset_folder,
    dataset_names,
    default_root,
    download,
    download_url,
    file_checksum,
    verify_checksum,
)
from deepwise.data.datasets.series import load_co2

__all__ = [
    "load_co2",
    "CIFAR10_CLASSES", "ChecksumError", "cifar10_class_names", "DatasetFormatError", "DownloadError", "dataset_folder",
    "dataset_names", "default_root", "download", "download_url", "file_checksum", "load_cifar10",
    "load_digits", "load_mnist", "parse_idx", "read_cifar_batch", "read_idx", "stratified_split",
    "verify_checksum",
]
