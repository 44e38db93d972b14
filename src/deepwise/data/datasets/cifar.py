"""CIFAR-10 from either official version: *binary* (``cifar-10-binary.tar.gz``) or *python*
(``cifar-10-python.tar.gz``).

- Binary batches (``data_batch_1.bin`` .. ``data_batch_5.bin``, ``test_batch.bin``) are plain fixed-size
  records — 1 label byte then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each 32x32
  row-major) — that NumPy reads directly. Preferred when both versions are present.
- Python batches (``data_batch_1`` .. ``data_batch_5``, ``test_batch``, ``batches.meta``) are pickles
  written by Python 2 (protocol 2) of a dict ``{b"batch_label", b"labels", b"data", b"filenames"}``
  whose ``data`` is a uint8 array (N, 3072) in the same pixel order. deepwise never runs a plain
  unpickler on a file it reads (that can execute arbitrary code); these are read by
  ``_pickle_safe.load_restricted``, which can rebuild only integer NumPy arrays, lists, ints and bytes
  and refuses every other name before importing it — see that module's docstring for why this
  executes nothing from the file. The batch is then checked: data uint8 (N, 3072), N labels in 0..9.

``read_cifar_batch`` tells the two apart by the first byte: a binary batch starts with a label (0..9),
a pickle with its PROTO opcode (0x80) or another opcode byte above 9.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepwise.data.datasets._pickle_safe import describe_value, load_restricted
from deepwise.data.datasets.errors import DatasetFormatError
from deepwise.data.datasets.idx import scale_images
from deepwise.data.datasets.remote import dataset_folder, download

RECORD = 1 + 3 * 32 * 32
CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
_BIN_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
_PY_FILES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


def read_cifar_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One batch file of either version -> (uint8 images (N, 3, 32, 32), int64 labels (N,))."""
    path = Path(path)
    with open(path, "rb") as fh:
        first = fh.read(1)
    if first and first[0] > 9:
        return read_cifar_python_batch(path)
    return read_cifar_binary_batch(path)


def read_cifar_binary_batch(path) -> tuple[np.ndarray, np.ndarray]:
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


def _key_list(keys) -> str:
    """At most 10 keys, each cut to 40 characters: a hostile file cannot make the message huge."""
    keys = sorted(keys)
    shown = [k if len(k) <= 40 else k[:40] + "..." for k in keys[:10]]
    return repr(shown) + (f" and {len(keys) - 10} more" if len(keys) > 10 else "")


def _str_keys(obj, path: Path, what: str) -> dict:
    if not isinstance(obj, dict):
        raise DatasetFormatError(f"{path}: {what} must hold a dict, found {type(obj).__name__}")
    out = {}
    for key, value in obj.items():
        if isinstance(key, bytes):
            key = key.decode("latin-1")
        if isinstance(key, str):
            out[key] = value
    return out


def read_cifar_python_batch(path) -> tuple[np.ndarray, np.ndarray]:
    """One python-version batch (a pickled dict, read with the restricted reader) -> (uint8 images
    (N, 3, 32, 32), int64 labels (N,)). Keys may be bytes (the official files) or str."""
    path = Path(path)
    batch = _str_keys(load_restricted(path, "a CIFAR batch"), path, "a CIFAR-10 python batch")
    missing = [k for k in ("data", "labels") if k not in batch]
    if missing:
        raise DatasetFormatError(f"{path}: a CIFAR-10 python batch needs the keys 'data' and 'labels'; "
                                 f"missing {missing}, found {_key_list(batch)}")
    data = batch["data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        desc = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else describe_value(data)
        raise DatasetFormatError(f"{path}: 'data' must be a uint8 array of shape (N, 3072), got {desc}")
    n = data.shape[0]
    labels = batch["labels"]
    if isinstance(labels, list) and not all(type(v) is int for v in labels):
        bad = next(v for v in labels if type(v) is not int)
        raise DatasetFormatError(f"{path}: 'labels' must be ints, found {describe_value(bad)}")
    if isinstance(labels, (list, np.ndarray)):
        labels = np.asarray(labels)
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise DatasetFormatError(f"{path}: 'labels' must be a list of ints, got {type(batch['labels']).__name__}")
    if labels.shape[0] != n:
        raise DatasetFormatError(f"{path}: 'data' holds {n} images but 'labels' has {labels.shape[0]} entries")
    out_of_range = (labels < 0) | (labels > 9)
    if out_of_range.any():
        k = int(np.argmax(out_of_range))
        raise DatasetFormatError(f"{path}: image {k} has label {labels[k]}, outside 0..9; "
                                 "not a CIFAR-10 batch")
    return data.reshape(n, 3, 32, 32), labels.astype(np.int64)


def read_cifar_meta(path) -> tuple[str, ...]:
    """Class names from ``batches.meta`` (python version, restricted reader: key ``label_names``) or
    ``batches.meta.txt`` (binary version: one name a line)."""
    path = Path(path)
    if path.suffix == ".txt":
        names = [line.strip() for line in path.read_text(encoding="ascii", errors="replace").splitlines()]
        names = [n for n in names if n]
    else:
        meta = _str_keys(load_restricted(path, "a CIFAR meta file"), path, "batches.meta")
        names = meta.get("label_names")
        if not isinstance(names, list) or not all(isinstance(n, (bytes, str)) for n in names):
            raise DatasetFormatError(f"{path}: batches.meta needs 'label_names', a list of names; "
                                     f"found keys {_key_list(meta)}")
        names = [n.decode("utf-8", "replace") if isinstance(n, bytes) else n for n in names]
    if len(names) != 10:
        raise DatasetFormatError(f"{path}: expected 10 CIFAR-10 class names, found {len(names)}")
    return tuple(names)


def _folders(root) -> tuple[Path, list[Path], list[Path]]:
    sub = dataset_folder("cifar10", root)
    base = sub.parent
    binary = [base, base / "cifar-10-batches-bin", sub, sub / "cifar-10-batches-bin"]
    python = [base, base / "cifar-10-batches-py", sub, sub / "cifar-10-batches-py"]
    return base, binary, python


def _locate(split: str, binary: list[Path], python: list[Path]):
    """The first folder holding every batch of ``split``: binary version first, then python."""
    for folders, names in ((binary, _BIN_FILES[split]), (python, _PY_FILES[split])):
        for folder in folders:
            if all((folder / f).is_file() for f in names):
                return folder, names
    return None, None


def cifar10_class_names(root=None) -> tuple[str, ...]:
    """The class names as the dataset folder states them (``batches.meta.txt`` or ``batches.meta``),
    else ``CLASSES``."""
    _, binary, python = _folders(root)
    for folders, meta in ((binary, "batches.meta.txt"), (python, "batches.meta")):
        for folder in folders:
            if (folder / meta).is_file():
                return read_cifar_meta(folder / meta)
    return CLASSES


def load_cifar10(root=None, split: str = "train", dtype: str = "float32", download_missing: bool = False):
    """CIFAR-10 from the batches of either version: binary ``data_batch_1.bin`` .. ``data_batch_5.bin``
    (train) / ``test_batch.bin`` (test), or python ``data_batch_1`` .. ``data_batch_5`` / ``test_batch``.

    Looks in ``root``, ``root/cifar-10-batches-bin``, ``root/cifar10`` and
    ``root/cifar10/cifar-10-batches-bin`` for the binary version, then in ``root``,
    ``root/cifar-10-batches-py``, ``root/cifar10`` and ``root/cifar10/cifar-10-batches-py`` for the
    python version (``root=None``: ``default_root()``). ``download_missing`` fetches the official binary
    archive (md5-verified) when neither is present; ``deepwise.data.download("cifar10-python")`` fetches
    the python one.

    Returns ``(x, y)``: x of shape (N, 3, 32, 32), float32 in [0, 1] by default (``dtype="uint8"``
    keeps raw bytes: 150 MB instead of 600 MB for the training set); y int64 labels 0..9 (names in
    ``CLASSES``, or ``cifar10_class_names(root)`` for those the folder's meta file states).
    """
    if split not in _BIN_FILES:
        raise ValueError(f"load_cifar10: split must be 'train' or 'test', got {split!r}")
    base, binary, python = _folders(root)
    folder, names = _locate(split, binary, python)
    if folder is None and download_missing:
        download("cifar10", base)
        folder, names = _locate(split, binary, python)
    if folder is None:
        raise FileNotFoundError(
            f"load_cifar10: neither the binary batches ({', '.join(_BIN_FILES[split])}) in "
            f"{', '.join(map(str, binary))} nor the python batches ({', '.join(_PY_FILES[split])}) in "
            f"{', '.join(map(str, python))} were found; call deepwise.data.download('cifar10', {str(base)!r}) "
            "or load_cifar10(..., download_missing=True), or extract cifar-10-binary.tar.gz or "
            "cifar-10-python.tar.gz there by hand")
    read = read_cifar_binary_batch if names is _BIN_FILES[split] else read_cifar_python_batch
    parts = [read(folder / f) for f in names]
    images = np.concatenate([p[0] for p in parts]) if len(parts) > 1 else parts[0][0]
    labels = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
    return scale_images(images, dtype, "load_cifar10"), labels
