"""Shared helpers for the io tests: sample tensors of every dtype and a bitwise comparison."""

import numpy as np
import pytest

DTYPES = ["bool", "uint8", "int8", "int16", "uint16", "float16", "int32", "uint32", "float32",
          "float64", "int64", "uint64"]
SHAPES = [(), (0,), (3, 0, 2), (7,), (2, 3, 4)]


def sample(dtype, shape, rng):
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return np.array(rng.random(shape) < 0.5)
    if dt.kind == "f":
        a = np.array(rng.standard_normal(shape) * 100, dtype=dt)
        if a.size >= 4:  # the awkward values must survive bit for bit
            a.reshape(-1)[:4] = [np.nan, np.inf, -np.inf, -0.0]
        return a
    info = np.iinfo(dt)
    a = np.array(rng.integers(info.min, info.max, size=shape, dtype=dt, endpoint=True))
    if a.size >= 2:
        a.reshape(-1)[:2] = [info.min, info.max]
    return a


def all_dtypes_and_shapes(seed=0):
    rng = np.random.default_rng(seed)
    return {f"{dtype}_{i}": sample(dtype, shape, rng) for dtype in DTYPES for i, shape in enumerate(SHAPES)}


def assert_same(a, b):
    assert a.dtype == b.dtype and a.shape == b.shape
    # compare bits, so NaN, -0.0 and inf count too
    np.testing.assert_array_equal(a.view(np.uint8) if a.ndim else a.reshape(1).view(np.uint8),
                                  b.view(np.uint8) if b.ndim else b.reshape(1).view(np.uint8))


@pytest.fixture
def every_dtype():
    """``every_dtype(seed)`` -> dict of arrays covering every storable dtype, 0-d and empty shapes."""
    return all_dtypes_and_shapes


@pytest.fixture
def same_bits():
    """``same_bits(a, b)`` asserts equal dtype, shape and bytes (so NaN, inf and -0.0 count)."""
    return assert_same
