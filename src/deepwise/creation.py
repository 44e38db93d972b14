"""Ways to make tensors: from data, filled with constants, ranges, and random draws.

Random tensors draw from the one generator that ``dw.manual_seed`` seeds (on the CPU, then moved to
the device), so results are reproducible and identical across devices.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend, random
from deepwise.backend import Device
from deepwise.tensor import Tensor, as_array


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


def _finish(arr, dtype, device, requires_grad):
    if device is not None and Device(device).type != "cpu":
        arr = backend.to_device(arr, Device(device))
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (float64 data becomes float32 unless ``dtype`` says)."""
    arr = as_array(data, dtype, copy=True)
    return _finish(arr, dtype, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return _finish(as_array(data, dtype), dtype, device, False)


def from_numpy(array: np.ndarray):
    """Share memory with a NumPy array and keep its dtype (as ``torch.from_numpy``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor._make(array)


def _dtype(dtype, default=backend.DEFAULT_FLOAT):
    return backend.to_dtype(dtype) if dtype is not None else default


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.zeros(_shape(size), _dtype(dtype)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.ones(_shape(size), _dtype(dtype)), dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.empty(_shape(size), _dtype(dtype)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = (backend.bool_ if isinstance(fill_value, bool) else backend.int64
                 if isinstance(fill_value, int) else backend.DEFAULT_FLOAT)
    return _finish(np.full(_shape((size,)), fill_value, _dtype(dtype)), dtype, device, requires_grad)


def _like(t, dtype, device):
    return t.shape, (dtype if dtype is not None else t.dtype), (device if device is not None else t.device)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return empty(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = backend.int64 if all(isinstance(v, int) for v in (start, end, step)) else backend.DEFAULT_FLOAT
    return _finish(np.arange(start, end, step).astype(_dtype(dtype)), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _finish(np.linspace(start, end, int(steps)).astype(_dtype(dtype)), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _finish(np.eye(n, m, dtype=_dtype(dtype)), dtype, device, requires_grad)


def rand(*size, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    arr = random.generator().random(_shape(size), dtype=np.float64).astype(_dtype(dtype))
    return _finish(arr, dtype, device, requires_grad)


def randn(*size, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    arr = random.generator().standard_normal(_shape(size)).astype(_dtype(dtype))
    return _finish(arr, dtype, device, requires_grad)


def randint(low, high=None, size=(), dtype=None, device=None):
    """Integers uniform on [low, high)."""
    if high is None:
        low, high = 0, low
    arr = random.generator().integers(low, high, size=_shape((size,))).astype(_dtype(dtype, backend.int64))
    return _finish(arr, dtype, device, False)


def randperm(n, dtype=None, device=None):
    return _finish(random.generator().permutation(n).astype(_dtype(dtype, backend.int64)), dtype, device, False)


def rand_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return rand(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return randn(shape, dtype=dtype, device=device, requires_grad=requires_grad)
