"""Turning what ``fit`` / ``evaluate`` / ``predict`` receive into DataLoaders, with the input checks.

Accepted: NumPy/CuPy arrays, deepwise Tensors and nested lists (x plus y, and optionally
sample_weight), a ``Dataset`` (anything with ``__len__`` and ``__getitem__`` whose samples are
``(x, y)`` or ``(x, y, weight)``), or a ``DataLoader`` (used as it is). Arrays are wrapped in a
``TensorDataset`` and batched by a ``DataLoader`` that fetches in the calling thread (an in-memory
batch is one fancy-indexing call, a background thread would only add overhead).
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise import random as dw_random
from deepwise.data import DataLoader, Subset, TensorDataset
from deepwise.tensor import Tensor

__all__ = ["FitData", "fit_data", "generator_from_state", "make_data", "split_fit_data", "validation_data"]


class FitData:
    """A loader plus what the Trainer wants to know about it: ``n_samples`` (None if unknown) and
    ``kind`` ("arrays", "dataset" or "loader"); for arrays also ``arrays`` (x, y, w) and two facts
    found once for the whole data, so the per-batch checks can be skipped: ``inputs_finite`` (x and
    a float y hold no NaN/inf) and ``label_range`` ((min, max) of integer 1-D labels, -100 left out)."""

    def __init__(self, loader, n_samples, kind, arrays=None, dataset=None):
        self.loader = loader
        self.n_samples = n_samples
        self.kind = kind
        self.arrays = arrays
        self.dataset = dataset
        self.inputs_finite = False
        self.label_range = None
        if arrays is not None:
            self.inputs_finite = all(_finite(a) for a in arrays[:2])
            y = arrays[1] if len(arrays) > 1 else None
            if y is not None and y.ndim == 1 and y.dtype.kind in "iu" and y.size:
                kept = y[y != -100]
                if kept.size:
                    self.label_range = (int(kept.min()), int(kept.max()))
                else:
                    self.label_range = (0, 0)

    @property
    def steps(self):
        try:
            return len(self.loader)
        except TypeError:
            return None


def _finite(a) -> bool:
    if not backend.is_floating(a.dtype) or a.size == 0:
        return True
    return bool(backend.get_array_module(a).isfinite(a).all())


def _is_loader(x) -> bool:
    return isinstance(x, DataLoader)


def _is_dataset(x) -> bool:
    if isinstance(x, (Tensor, list, tuple, dict, str, bytes)) or backend.is_array(x):
        return False
    return hasattr(x, "__getitem__") and hasattr(x, "__len__")


def _as_array(value, what, name):
    if isinstance(value, Tensor):
        return value.array
    if backend.is_array(value):
        return value
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what}: cannot use {name} of type {type(value).__name__} as an array ({exc})") from None
    if arr.dtype == object:
        raise TypeError(f"{what}: {name} is ragged or not numeric; pass an array, a Tensor, a Dataset or a DataLoader")
    return arr


def _check_batch_size(what, batch_size):
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"{what}: batch_size must be a positive int, got {batch_size!r}")
    return int(batch_size)


def _check_labels(what, y, loss):
    if loss is None or not loss.uses_class_indices or y.ndim != 1:
        return
    if y.dtype.kind not in "iu":
        example = y.reshape(-1)[:1]
        shown = f" (first value {example.tolist()[0]!r})" if example.size else ""
        raise TypeError(f"{what}: the loss {loss.name!r} needs integer class labels, but y has dtype {y.dtype}{shown}; "
                        "convert them, e.g. y.astype('int64')")


def _check_sample_weight(what, w, n):
    if w.ndim != 1:
        w = w.reshape(w.shape[0], -1) if w.ndim else w
        if w.ndim != 1 and w.shape[1] != 1:
            raise ValueError(f"{what}: sample_weight must hold one weight per sample (shape ({n},)), got shape "
                             f"{tuple(w.shape)}")
        w = w.reshape(-1)
    if w.shape[0] != n:
        raise ValueError(f"{what}: x has {n} samples but sample_weight has {w.shape[0]}")
    host = backend.to_device(w, backend.Device("cpu")).astype(np.float64)
    if not np.all(np.isfinite(host)) or np.any(host < 0):
        raise ValueError(f"{what}: sample_weight values must be finite and >= 0")
    return w.astype(np.float32) if isinstance(w, np.ndarray) else w.astype(backend.float32)


def make_data(x, y=None, sample_weight=None, *, what, batch_size=None, shuffle=None, require_y=True, loss=None,
              default_batch_size=32) -> FitData:
    """One loader for ``x`` (and ``y``, ``sample_weight``). Arguments that cannot apply raise."""
    if _is_loader(x):
        for name, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size),
                            ("shuffle", shuffle)):
            if value is not None:
                raise ValueError(f"{what}: x is a DataLoader, which already decides batches, targets and order; "
                                 f"do not also pass {name}= (put targets/weights in its dataset, set batch_size "
                                 "and shuffle on the DataLoader)")
        steps = None
        try:
            steps = len(x)
        except TypeError:
            pass
        if steps == 0:
            raise ValueError(f"{what}: the DataLoader yields no batches (its dataset has {len(x.dataset)} samples; "
                             "drop_last with fewer samples than batch_size?)")
        try:
            n = len(x.dataset)
        except TypeError:
            n = None
        return FitData(x, n, "loader")
    bs = _check_batch_size(what, default_batch_size if batch_size is None else batch_size)
    shuffle = bool(shuffle) if shuffle is not None else False
    if _is_dataset(x):
        for name, value in (("y", y), ("sample_weight", sample_weight)):
            if value is not None:
                raise ValueError(f"{what}: x is a Dataset, whose samples already hold the targets; do not also "
                                 f"pass {name}= (return (x, y, weight) samples for weights)")
        n = len(x)
        if n == 0:
            raise ValueError(f"{what}: the Dataset is empty")
        return FitData(DataLoader(x, batch_size=bs, shuffle=shuffle), n, "dataset", dataset=x)
    xa = _as_array(x, what, "x")
    if xa.ndim == 0:
        raise ValueError(f"{what}: x is a scalar; it needs a first (sample) dimension")
    n = int(xa.shape[0])
    if n == 0:
        raise ValueError(f"{what}: x has no samples (shape {tuple(xa.shape)})")
    arrays = [xa]
    if y is None:
        if require_y:
            raise ValueError(f"{what}: y (the targets) is required with array inputs; a model trained without "
                             "targets takes a Dataset or DataLoader and a custom train_step")
        if sample_weight is not None:
            raise ValueError(f"{what}: sample_weight without y")
    else:
        ya = _as_array(y, what, "y")
        if ya.ndim == 0:
            raise ValueError(f"{what}: y is a scalar; it needs one target per sample")
        if ya.shape[0] != n:
            raise ValueError(f"{what}: x and y have different lengths: x has {n} samples, y has {ya.shape[0]}")
        _check_labels(what, ya, loss)
        arrays.append(ya)
        if sample_weight is not None:
            arrays.append(_check_sample_weight(what, _as_array(sample_weight, what, "sample_weight"), n))
    loader = DataLoader(TensorDataset(*arrays), batch_size=bs, shuffle=shuffle, prefetch=0)
    return FitData(loader, n, "arrays", arrays=tuple(arrays))


def generator_from_state(state: dict) -> np.random.Generator:
    """A new generator in ``state`` (the global one is not touched)."""
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    return np.random.Generator(bitgen)


def split_fit_data(data: FitData, fraction, *, what, batch_size, shuffle, split_state, advance_global):
    """(train, validation) from one FitData: a random permutation (from a generator in
    ``split_state``), the first ``n - floor(n * (1 - fraction))`` samples for validation, the rest for
    training; each part keeps the original sample order. ``advance_global`` draws the same
    permutation from the shared generator too, so the generator moves on exactly as a plain
    ``dw.random.generator().permutation(n)`` would."""
    if not isinstance(fraction, (int, float)) or isinstance(fraction, bool) or not 0.0 < fraction < 1.0:
        raise ValueError(f"{what}: validation_split must be a fraction in (0, 1), got {fraction!r}")
    if data.kind == "loader":
        raise ValueError(f"{what}: validation_split needs arrays or a Dataset; with a DataLoader pass "
                         "validation_data= (another DataLoader)")
    n = data.n_samples
    n_train = int(math.floor(n * (1.0 - fraction)))
    n_val = n - n_train
    if n_train < 1 or n_val < 1:
        raise ValueError(f"{what}: validation_split={fraction} of {n} samples leaves {n_train} for training and "
                         f"{n_val} for validation; both need at least one")
    perm = generator_from_state(split_state).permutation(n)
    if advance_global:
        dw_random.generator().permutation(n)
    val_idx = np.sort(perm[:n_val])
    train_idx = np.sort(perm[n_val:])
    if data.kind == "arrays":
        def take(idx):
            parts = []
            for a in data.arrays:
                parts.append(a[idx] if isinstance(a, np.ndarray) else a[backend.to_device(idx, backend.device_of(a))])
            return parts
        train = TensorDataset(*take(train_idx))
        val = TensorDataset(*take(val_idx))
        return (FitData(DataLoader(train, batch_size=batch_size, shuffle=shuffle, prefetch=0), n_train, "arrays",
                        arrays=train.arrays),
                FitData(DataLoader(val, batch_size=batch_size, shuffle=False, prefetch=0), n_val, "arrays",
                        arrays=val.arrays))
    train = Subset(data.dataset, train_idx)
    val = Subset(data.dataset, val_idx)
    return (FitData(DataLoader(train, batch_size=batch_size, shuffle=shuffle), n_train, "dataset"),
            FitData(DataLoader(val, batch_size=batch_size, shuffle=False), n_val, "dataset"))


def validation_data(value, *, what, batch_size, loss) -> FitData:
    """``validation_data``: (x, y), (x, y, sample_weight), a Dataset or a DataLoader."""
    if _is_loader(value):
        return make_data(value, what=what)
    if _is_dataset(value):
        return make_data(value, what=what, batch_size=batch_size, shuffle=False)
    if isinstance(value, (tuple, list)) and len(value) in (2, 3):
        x, y, *w = value
        return make_data(x, y, w[0] if w else None, what=what, batch_size=batch_size, shuffle=False, loss=loss)
    raise TypeError(f"{what}: validation_data must be (x, y), (x, y, sample_weight), a Dataset or a DataLoader, "
                    f"got {type(value).__name__}" + (f" of length {len(value)}" if isinstance(value, (tuple, list))
                                                     else ""))


def fit_data(x, y, sample_weight, *, what, batch_size, shuffle, validation_split, validation,
             validation_batch_size, loss, split_state, advance_global) -> tuple:
    """(training FitData, validation FitData or None) for ``fit``'s arguments (``validation`` is its
    ``validation_data``): ``shuffle`` defaults to True except for a DataLoader; ``validation_split``
    holds out a fraction (see ``split_fit_data``)."""
    if validation_split and validation is not None:
        raise ValueError(f"{what}: pass validation_data or validation_split, not both")
    train = make_data(x, y, sample_weight, what=what, batch_size=batch_size,
                      shuffle=shuffle if (shuffle is not None or _is_loader(x)) else True, loss=loss)
    if validation_split:
        return split_fit_data(train, validation_split, what=what, batch_size=batch_size or 32,
                              shuffle=True if shuffle is None else shuffle, split_state=split_state,
                              advance_global=advance_global)
    if validation is not None:
        return train, validation_data(validation, what=f"{what} (validation_data)",
                                      batch_size=validation_batch_size or batch_size or 32, loss=loss)
    return train, None
