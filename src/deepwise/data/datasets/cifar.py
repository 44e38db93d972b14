"""CIFAR-10 from the official *binary version* (``cifar-10-binary.tar.gz``).

Why the binary version: the "python version" batches are pickles, and deepwise never unpickles a
file it reads (unpickling can run arbitrary code). The binary batches are plain fixed-size records —
1 label byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32 row-major) — that
NumPy reads directly. Pointed at a python-version folder, the loader says so and how to get the
binary files.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepwise.data.datasets.errors import DatasetFormatError
from deepwise.data.datasets.idx import _scaled
from deepwise.data.datasets.remote import dataset_folder, download

RECORD = 1 + 3 * 32 * 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One binary batch file -> (uint8 images (N, 3, 32, 32), int64 labels (N,))."""
    path = Path(path)
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0 or raw.size % RECORD:
        raise DatasetFormatError(
            f"{path}: {raw.size} bytes is not a whole number of {RECORD}-byte records "
            "(1 label + 3072 pixels); the file is truncated or not a CIFAR-10 binary batch")
    records = raw.reshape(-1, RECORD)
    labels = records[:, 0].astype(np.int64)
    if labels.max() > 9:
        k = int(np.argmax(labels > 9))
        raise DatasetFormatError(f"{path}: record {k} has label {labels[k]}, outside 0..9; "
                                 "not a CIFAR-10 binary batch")
    return records[:, 1:].reshape(-1, 3, 32, 32), labels


def load_cifar10(root=None, split: str = "train", dtype: str = "float32", download_missing: bool = False):
    """CIFAR-10 from the binary batches ``data_batch_1.bin`` .. ``data_batch_5.bin`` (train) or
    ``test_batch.bin`` (test).

    Looks in ``root``, ``root/cifar-10-batches-bin``, ``root/cifar10`` and
    ``root/cifar10/cifar-10-batches-bin`` (``root=None``: ``default_root()``); ``download_missing``
    fetches the official archive (md5-verified) when they are absent.

    Returns ``(x, y)``: x of shape (N, 3, 32, 32), float32 in [0, 1] by default (``dtype="uint8"``
    keeps raw bytes: 150 MB instead of 600 MB for the training set); y int64 labels 0..9 (names in
    ``CLASSES``).
    """
    if split not in _FILES:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    sub = dataset_folder("cifar10", root)
    base = sub.parent
    folders = [base, base / "cifar-10-batches-bin", sub, sub / "cifar-10-batches-bin"]

    def locate():
        for folder in folders:
            if all((folder / f).is_file() for f in _FILES[split]):
                return folder
        return None

    folder = locate()
    if folder is None and download_missing:
        download("cifar10", base)
        folder = locate()
    if folder is None:
        for f in folders + [base / "cifar-10-batches-py", sub / "cifar-10-batches-py"]:
            if (f / "data_batch_1").is_file() or (f / "test_batch").is_file():
                raise DatasetFormatError(
                    f"load_cifar10: {f} holds the CIFAR-10 *python version* (pickled batches), which "
                    "deepwise does not read because unpickling a file can run arbitrary code. Use the "
                    "binary version instead: https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz (md5 "
                    "c32a1d4ab5d03f1284b67883e8d87530), or call deepwise.data.download('cifar10')")
        raise FileNotFoundError(
            f"load_cifar10: {', '.join(_FILES[split])} not found in {', '.join(map(str, folders))}; call "
            f"deepwise.data.download('cifar10', {str(base)!r}) or load_cifar10(..., download_missing=True), "
            "or extract cifar-10-binary.tar.gz there by hand")
    parts = [read_cifar_batch(folder / f) for f in _FILES[split]]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return _scaled(images, dtype, "load_cifar10"), labels
