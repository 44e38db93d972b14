"""Turning samples into batches of Tensors.

``default_collate(samples)`` stacks a list of samples; ``default_convert(batch)`` converts a batch a
dataset already stacked (its ``__getitems__`` output). Both apply deepwise's dtype policy: float64
becomes float32, Python ints int64, Python floats float32, bools bool; other NumPy dtypes (uint8
images, int32 labels, float16) are kept. Arrays stay on their device (NumPy -> CPU, CuPy -> GPU).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deepwise import backend
from deepwise.tensor import Tensor


def to_default_dtype(arr):
    """``arr`` in deepwise's default dtypes (``backend.default_dtype``): float64 becomes float32,
    every other dtype is kept."""
    return backend.with_default_dtype(arr)


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(x, "_fields")


def default_convert(batch):
    """A stacked batch (arrays, numbers, or tuples/lists/dicts of them) -> the same structure of
    Tensors. Tuples and lists become tuples; dicts stay dicts; strings and None pass through."""
    if isinstance(batch, Tensor):
        return batch
    if backend.is_array(batch):
        return Tensor._make(to_default_dtype(batch))
    if isinstance(batch, (bool, int, float, np.generic)):
        return Tensor._make(_scalars_to_array([batch]).reshape(()))
    if isinstance(batch, (str, bytes)) or batch is None:
        return batch
    if isinstance(batch, Mapping):
        return {k: default_convert(v) for k, v in batch.items()}
    if _is_namedtuple(batch):
        return type(batch)(*(default_convert(v) for v in batch))
    if isinstance(batch, (tuple, list)):
        return tuple(default_convert(v) for v in batch)
    raise TypeError(f"default_convert: cannot turn a {type(batch).__name__} into a Tensor; "
                    "return arrays, numbers, or tuples/lists/dicts of them from __getitems__")


def _scalars_to_array(values):
    arr = np.asarray(values)
    if arr.dtype == object:
        raise TypeError("default_collate: samples mix numbers with other types")
    return backend.with_default_dtype(arr, from_python=not any(isinstance(v, np.generic) for v in values))


def _stack(arrays, what: str):
    shapes = {tuple(a.shape) for a in arrays}
    if len(shapes) > 1:
        first = tuple(arrays[0].shape)
        k, other = next((i, tuple(a.shape)) for i, a in enumerate(arrays) if tuple(a.shape) != first)
        raise ValueError(f"default_collate: cannot stack {what} of different shapes: sample 0 has shape "
                         f"{first} but sample {k} has {other}; pad them or pass collate_fn=")
    xp = backend.get_array_module(*arrays)
    return xp.stack(arrays)


def default_collate(samples):
    """Stack a list of samples into a batch of Tensors along a new first axis.

    arrays / Tensors / NumPy scalars -> one Tensor (N, ...); Python numbers -> a 1-D Tensor (int64,
    float32 or bool); tuples and lists -> a tuple with each position collated; dicts -> a dict with
    each key collated; strings -> a list of strings.
    """
    if len(samples) == 0:
        raise ValueError("default_collate: got an empty list of samples")
    first = samples[0]
    if isinstance(first, Tensor):
        return Tensor._make(_stack([s.array if isinstance(s, Tensor) else s for s in samples], "tensors"))
    if backend.is_array(first):
        return Tensor._make(to_default_dtype(_stack(samples, "arrays")))
    if isinstance(first, (bool, int, float, np.generic)):
        return Tensor._make(_scalars_to_array(samples))
    if isinstance(first, (str, bytes)):
        return list(samples)
    if first is None:
        return None
    if isinstance(first, Mapping):
        out = {}
        for key in first:
            try:
                column = [s[key] for s in samples]
            except KeyError:
                raise KeyError(f"default_collate: sample dicts differ: key {key!r} is missing from "
                               "some samples") from None
            out[key] = default_collate(column)
        return out
    if isinstance(first, (tuple, list)):
        n = len(first)
        lengths = {len(s) for s in samples}
        if len(lengths) > 1:
            raise ValueError("default_collate: samples are sequences of different lengths "
                             f"{sorted(lengths)}; every sample must have the same number of fields")
        columns = [default_collate([s[i] for s in samples]) for i in range(n)]
        return type(first)(*columns) if _is_namedtuple(first) else tuple(columns)
    raise TypeError(f"default_collate: cannot batch samples of type {type(first).__name__}; "
                    "pass collate_fn= to the DataLoader")
