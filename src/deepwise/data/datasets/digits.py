"""The bundled handwritten digits: UCI "Optical Recognition of Handwritten Digits", 8x8 images.

1797 images of the digits 0..9 written by 13 people, each an 8x8 grid of counts 0..16 (how many of
the 16 pixels of a 4x4 block of the original 32x32 bitmap were on). The file ships with deepwise
(``files/digits.csv.gz``, the copy distributed with scikit-learn); see ``files/DIGITS_LICENSE.txt``
for the source, citation and licence (CC BY 4.0). Small enough to train a CNN on in seconds.
"""

from __future__ import annotations

import gzip
from functools import lru_cache
from pathlib import Path

import numpy as np

from deepwise.data.datasets.errors import DatasetFormatError

DIGITS_FILE = Path(__file__).resolve().parent / "files" / "digits.csv.gz"
N_DIGITS = 1797


@lru_cache(maxsize=1)
def _raw() -> np.ndarray:
    with gzip.open(DIGITS_FILE, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.int64)
    if table.shape != (N_DIGITS, 65):
        raise DatasetFormatError(f"{DIGITS_FILE}: expected {N_DIGITS} rows of 64 pixels + 1 label, "
                                 f"got shape {table.shape}")
    table.setflags(write=False)
    return table


def stratified_split(labels: np.ndarray, test_size, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train_indices, test_indices), both sorted, with every class split in the same proportion.

    ``test_size``: a fraction in (0, 1) or a count. The total test count is ``ceil(test_size * n)``
    for a fraction; it is shared among classes in proportion to their sizes (largest remainders get
    the leftover). Draws only from ``numpy.random.default_rng(seed)``.
    """
    labels = np.asarray(labels)
    n = labels.size
    if isinstance(test_size, (int, np.integer)) and not isinstance(test_size, bool):
        n_test = int(test_size)
    elif isinstance(test_size, float) and 0.0 < test_size < 1.0:
        n_test = int(np.ceil(test_size * n))
    else:
        raise ValueError(f"test_size must be a fraction in (0, 1) or a count, got {test_size!r}")
    if not 0 < n_test < n:
        raise ValueError(f"test_size={test_size!r} leaves {n_test} of {n} samples for testing; "
                         f"need 0 < count < {n}")
    classes, counts = np.unique(labels, return_counts=True)
    share = counts * (n_test / n)
    per_class = np.floor(share).astype(np.int64)
    leftover = n_test - int(per_class.sum())
    order = np.lexsort((classes, -(share - per_class)))  # largest remainder first, ties by class
    per_class[order[:leftover]] += 1
    rng = np.random.default_rng(seed)
    test = []
    for cls, k in zip(classes, per_class):  # one step per class, not per sample
        members = np.flatnonzero(labels == cls)
        test.append(rng.permutation(members)[:k])
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(n, dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def load_digits(split: str | None = None, test_size=0.2, seed: int = 0, as_images: bool = False):
    """The 1797 handwritten digits, from the file bundled with deepwise (no network).

    Args:
        split: None for all samples, "train" or "test" for a fixed stratified split.
        test_size: fraction (or count) of samples in the test split; 0.2 gives 360 test, 1437 train.
        seed: seeds the split only (deterministic; the global generator is not touched).
        as_images: x of shape (N, 1, 8, 8) instead of (N, 64).

    Returns:
        (x, y): x float32 in [0, 1] (pixel counts 0..16 divided by 16), y int64 labels 0..9.
    """
    if split not in (None, "train", "test"):
        raise ValueError(f"load_digits: split must be None, 'train' or 'test', got {split!r}")
    table = _raw()
    x = table[:, :64].astype(np.float32) / np.float32(16.0)
    y = table[:, 64].copy()
    if split is not None:
        train_idx, test_idx = stratified_split(y, test_size, seed)
        idx = train_idx if split == "train" else test_idx
        x, y = x[idx], y[idx]
    if as_images:
        x = x.reshape(-1, 1, 8, 8)
    return x, y
