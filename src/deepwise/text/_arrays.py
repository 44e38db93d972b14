"""Inputs of the text tools as host NumPy arrays, whatever they came as."""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.tensor import Tensor


def host_array(x) -> np.ndarray:
    """A Tensor, NumPy/CuPy array or array-like -> a NumPy array (GPU data copied to the host)."""
    if isinstance(x, Tensor):
        x = x.array
    if backend.is_array(x):
        return backend.to_device(x, backend.Device("cpu"))
    return np.asarray(x)
