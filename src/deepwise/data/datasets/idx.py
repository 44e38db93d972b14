"""MNIST and Fashion-MNIST from their IDX files.

IDX layout (big-endian): two zero bytes, a type code (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C
int32, 0x0D float32, 0x0E float64), the number of dimensions, one uint32 size per dimension, then
the data in C order. Files may be gzipped (detected from the content, not the name).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from deepwise.data.datasets.errors import DatasetFormatError
from deepwise.data.datasets.remote import dataset_folder, download

_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
# NumPy's limit on the number of dimensions (32 before NumPy 2)
MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
# The most a gzipped IDX file may expand to (the MNIST training images are 47 MB). Set it higher
# for bigger files, here or per call with ``read_idx(path, max_bytes=...)``.
MAX_DECOMPRESSED_BYTES = 2**30


def _header(raw: bytes, name: str) -> tuple[np.dtype, tuple[int, ...], int, int]:
    """(dtype, dims, header bytes, total bytes the file must have) from the first bytes of IDX data;
    ``raw`` needs only the header. The sizes are Python ints: no product can wrap around."""
    if len(raw) < 4:
        raise DatasetFormatError(f"{name}: only {len(raw)} bytes; an IDX file starts with a 4-byte "
                                 "magic number")
    if raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES or raw[3] == 0:
        magic = int.from_bytes(raw[:4], "big")
        raise DatasetFormatError(
            f"{name}: bad magic number 0x{magic:08X}; an IDX file starts with 0x0000, a type code "
            f"({', '.join(f'0x{c:02X}' for c in _IDX_TYPES)}) and the number of dimensions "
            "(e.g. 0x00000803 for images, 0x00000801 for labels)")
    ndim = raw[3]
    if ndim > MAX_DIMS:
        raise DatasetFormatError(f"{name}: the header declares {ndim} dimensions; NumPy arrays have at most "
                                 f"{MAX_DIMS} (MNIST files have 1 or 3)")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetFormatError(f"{name}: truncated header: {ndim} dimensions need {header} bytes, "
                                 f"the data has {len(raw)}")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    # NumPy refuses an array whose nonzero dimensions multiply past 2**63 - 1 bytes, even an empty one
    if math.prod(max(d, 1) for d in dims) * dtype.itemsize > 2**63 - 1:
        raise DatasetFormatError(f"{name}: shape {dims} is too big for any array (its dimensions multiply past "
                                 "2**63 bytes)")
    return dtype, dims, header, header + math.prod(dims) * dtype.itemsize


def _gunzip(path: Path, max_bytes: int) -> bytes:
    """Decompress a gzipped IDX file, reading no more than its header declares (and never more than
    ``max_bytes``), so a small .gz cannot expand into gigabytes."""
    try:
        with gzip.open(path, "rb") as fh:
            head = fh.read(4)
            if len(head) == 4 and head[3]:
                head += fh.read(4 * head[3])
            _, dims, _, expected = _header(head, str(path))
            if expected > max_bytes:
                raise DatasetFormatError(
                    f"{path}: the header declares shape {dims}, {expected} bytes once decompressed, more "
                    f"than the {max_bytes}-byte limit (read_idx(path, max_bytes=...) or "
                    "deepwise.data.datasets.idx.MAX_DECOMPRESSED_BYTES raise it)")
            raw = head + fh.read(expected - len(head) + 1)  # one byte more shows trailing data
            if len(raw) > expected:
                raise DatasetFormatError(f"{path}: unexpected bytes after the data of shape {dims} (the "
                                         "gzip stream holds more than its header declares)")
            return raw
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetFormatError(f"{path}: truncated or corrupt gzip data ({exc})") from None


def _read_bytes(path: Path, max_bytes: int) -> bytes:
    with open(path, "rb") as fh:
        magic = fh.read(2)
    if magic == _GZIP_MAGIC:
        return _gunzip(path, max_bytes)
    return path.read_bytes()


def parse_idx(raw: bytes, name: str = "IDX data") -> np.ndarray:
    """Decode IDX bytes into a native-endian array (a copy, writable)."""
    dtype, dims, header, expected = _header(raw, name)
    if len(raw) < expected:
        raise DatasetFormatError(f"{name}: truncated: shape {dims} of {dtype.newbyteorder('=')} needs "
                                 f"{expected} bytes, the data has {len(raw)}")
    if len(raw) > expected:
        raise DatasetFormatError(f"{name}: {len(raw) - expected} unexpected bytes after the data of "
                                 f"shape {dims}")
    count = (expected - header) // dtype.itemsize
    arr = np.frombuffer(raw, dtype=dtype, count=count, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))


def read_idx(path, max_bytes: int | None = None) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a NumPy array, with clear errors for a wrong magic
    number, an impossible shape or truncated data. A gzipped file is decompressed only as far as its
    header declares, and at most ``max_bytes`` (default ``MAX_DECOMPRESSED_BYTES``, 1 GiB)."""
    path = Path(path)
    limit = MAX_DECOMPRESSED_BYTES if max_bytes is None else int(max_bytes)
    return parse_idx(_read_bytes(path, limit), str(path))


_MNIST_KINDS = {"mnist": "mnist", "fashion": "fashion-mnist", "fashion-mnist": "fashion-mnist",
                "fashion_mnist": "fashion-mnist"}
_MNIST_PREFIX = {"train": "train", "test": "t10k"}


def _find(folders, stem: str):
    """First existing file among stem variants: 'train-images-idx3-ubyte' or '...images.idx3...',
    with or without '.gz'."""
    variants = [stem, stem.replace("-idx", ".idx")]
    for folder in folders:
        for v in variants:
            for candidate in (folder / v, folder / (v + ".gz")):
                if candidate.is_file():
                    return candidate
    return None


def scale_images(images: np.ndarray, dtype: str, owner: str) -> np.ndarray:
    """uint8 images as they are (``dtype="uint8"``) or as float32 in [0, 1] (``"float32"``); ``owner``
    names the loader in the error for any other dtype."""
    if dtype == "uint8":
        return images
    if dtype == "float32":
        out = images.astype(np.float32)
        out *= np.float32(1.0 / 255.0)
        return out
    raise ValueError(f"{owner}: dtype must be 'float32' (values in [0, 1]) or 'uint8' (0..255), "
                     f"got {dtype!r}")


def load_mnist(root=None, split: str = "train", kind: str = "mnist", dtype: str = "float32",
               download_missing: bool = False):
    """MNIST or Fashion-MNIST from local IDX files.

    Looks in ``root`` and ``root/mnist`` (``root/fashion-mnist`` for ``kind="fashion"``), and their
    ``raw`` subfolders, for ``train-images-idx3-ubyte[.gz]`` / ``train-labels-idx1-ubyte[.gz]``
    (``t10k-...`` for ``split="test"``). ``root=None`` means ``default_root()``.
    ``download_missing=True`` fetches absent files with ``download`` first.

    Returns ``(x, y)``: x of shape (N, 1, 28, 28), float32 in [0, 1] by default (``dtype="uint8"``
    keeps the raw 0..255 bytes, a quarter of the memory); y int64 class labels 0..9.
    """
    if kind not in _MNIST_KINDS:
        raise ValueError(f"load_mnist: kind must be 'mnist' or 'fashion', got {kind!r}")
    if split not in _MNIST_PREFIX:
        raise ValueError(f"load_mnist: split must be 'train' or 'test', got {split!r}")
    name = _MNIST_KINDS[kind]
    sub = dataset_folder(name, root)
    base = sub.parent
    folders = [base, sub, base / "raw", sub / "raw"]
    prefix = _MNIST_PREFIX[split]
    img_path = _find(folders, f"{prefix}-images-idx3-ubyte")
    lbl_path = _find(folders, f"{prefix}-labels-idx1-ubyte")
    if (img_path is None or lbl_path is None) and download_missing:
        download(name, base)
        img_path = _find(folders, f"{prefix}-images-idx3-ubyte")
        lbl_path = _find(folders, f"{prefix}-labels-idx1-ubyte")
    if img_path is None or lbl_path is None:
        missing = [s for s, p in ((f"{prefix}-images-idx3-ubyte[.gz]", img_path),
                                  (f"{prefix}-labels-idx1-ubyte[.gz]", lbl_path)) if p is None]
        looked = ", ".join(map(str, folders[:2]))
        raise FileNotFoundError(f"load_mnist: {', '.join(missing)} not found in {looked}; "
                                f"call deepwise.data.download({name!r}, {str(base)!r}) or load_mnist(..., "
                                "download_missing=True), or put the official files there by hand")
    images = read_idx(img_path)
    labels = read_idx(lbl_path)
    if images.ndim != 3 or images.dtype != np.uint8:
        raise DatasetFormatError(f"{img_path}: expected uint8 images of shape (N, rows, cols), got "
                                 f"{images.dtype} of shape {images.shape}")
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise DatasetFormatError(f"{lbl_path}: expected a 1-D uint8 array of labels, got {labels.dtype} of "
                                 f"shape {labels.shape}")
    if images.shape[0] != labels.shape[0]:
        raise DatasetFormatError(f"load_mnist: {img_path.name} has {images.shape[0]} images but "
                                 f"{lbl_path.name} has {labels.shape[0]} labels")
    if labels.size and labels.max() > 9:
        raise DatasetFormatError(f"{lbl_path}: label {int(labels.max())} is out of range 0..9")
    x = scale_images(images[:, None, :, :], dtype, "load_mnist")
    return x, labels.astype(np.int64)
