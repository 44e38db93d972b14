"""dw.set_num_threads / dw.get_num_threads set the thread count of the BLAS library NumPy runs on."""

from __future__ import annotations

import ctypes

import numpy as np
import pytest

import deepwise as dw
from deepwise import threads


@pytest.fixture
def restore_threads():
    before = dw.get_num_threads()
    yield
    dw.set_num_threads(before)


def _blas_reports(path):
    """The thread count the BLAS library at ``path`` reports, asked directly (not through deepwise)."""
    lib = ctypes.CDLL(path)
    for name in threads._GET_NAMES:
        if hasattr(lib, name):
            fn = getattr(lib, name)
            fn.restype = ctypes.c_int
            return fn()
    raise AssertionError(f"{path} has no get-threads entry point")


def test_numpy_blas_is_found():
    paths = threads.blas_libraries()
    assert paths, "the BLAS NumPy loaded was not found"
    assert any("blas" in p.lower() or "mkl" in p.lower() for p in paths)


@pytest.mark.parametrize("n", [1, 2, 3])
def test_set_num_threads_changes_what_blas_uses(restore_threads, n):
    dw.set_num_threads(n)
    assert dw.get_num_threads() == n
    for path in threads.blas_libraries():
        assert _blas_reports(path) == n


def test_matmul_results_are_the_same_for_any_thread_count(restore_threads):
    rng = np.random.default_rng(0)
    a = dw.tensor(rng.standard_normal((64, 300)).astype(np.float32))
    b = dw.tensor(rng.standard_normal((300, 50)).astype(np.float32))
    dw.set_num_threads(1)
    one = (a @ b).numpy()
    dw.set_num_threads(2)
    two = (a @ b).numpy()
    np.testing.assert_allclose(one, two, rtol=1e-5, atol=1e-5)
    assert one.dtype == np.float32


@pytest.mark.parametrize("bad", [0, -1, 1.5, "2", True])
def test_bad_thread_counts_are_refused(bad):
    with pytest.raises(ValueError, match="set_num_threads"):
        dw.set_num_threads(bad)


class _FakeThreadpoolctl:
    """Stands in for threadpoolctl: records the limits asked for and reports them back."""

    def __init__(self):
        self.limits = []
        self.count = 4

    def threadpool_limits(self, limits=None, user_api=None):
        self.limits.append((limits, user_api))
        self.count = limits

    def threadpool_info(self):
        return [{"user_api": "openmp", "num_threads": 99, "filepath": "/x/libgomp.so"},
                {"user_api": "blas", "num_threads": self.count, "filepath": "/x/libopenblas.so"}]


def test_threadpoolctl_is_used_when_installed(monkeypatch):
    fake = _FakeThreadpoolctl()
    monkeypatch.setattr(threads, "threadpoolctl", fake)
    monkeypatch.setattr(threads, "_blas_libraries", list)  # a BLAS without an entry point of its own
    dw.set_num_threads(3)
    assert fake.limits == [(3, "blas")]  # BLAS only: OpenMP pools of other libraries are left alone
    assert dw.get_num_threads() == 3
    assert threads.blas_libraries() == ["/x/libopenblas.so"]
