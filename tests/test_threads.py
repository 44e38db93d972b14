"""dw.set_num_threads / dw.get_num_threads set the thread count of the BLAS library NumPy runs on."""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import resource
import threading
import time

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


@pytest.fixture
def pool_on(monkeypatch, restore_threads):
    """The pool runs even if an earlier test left a thread of its own behind (a prefetching loader)."""
    if not threads._respin:
        pytest.skip("not an OpenBLAS whose idle threads can be told to wait briefly: the pool stands aside")
    monkeypatch.setattr(threads, "pool_ready", lambda: True)


def test_run_parts_spreads_contiguous_groups_and_keeps_order(pool_on):
    dw.set_num_threads(2)
    seen = []

    def part(k):
        seen.append((k, threading.get_ident(), threads.get_num_threads()))
        time.sleep(0.01)  # both threads are busy at once
        return k * k

    assert threads.run_parts(part, range(5)) == [0, 1, 4, 9, 16]
    by_thread = {}
    for k, ident, blas in seen:
        by_thread.setdefault(ident, []).append(k)
        assert blas == 1  # BLAS at one thread inside a part
    assert sorted(by_thread.values()) == [[0, 1, 2], [3, 4]]  # groups of 3 and 2, each in order
    assert threading.get_ident() in by_thread and by_thread[threading.get_ident()] == [0, 1, 2]
    assert dw.get_num_threads() == 2  # restored afterwards


def test_run_parts_runs_serially_on_one_thread_and_inside_a_part(pool_on):
    dw.set_num_threads(2)
    inner = []

    def part(k):
        inner.extend(threads.run_parts(lambda j: threading.get_ident(), range(3)))
        return k

    threads.run_parts(part, range(2))
    assert len(inner) == 6 and len(set(inner)) == 2  # each part ran its own parts on its own thread
    dw.set_num_threads(1)
    idents = threads.run_parts(lambda k: threading.get_ident(), range(4))
    assert set(idents) == {threading.get_ident()}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_run_parts_works_in_a_forked_child(pool_on):
    """A child forked after the pool started has none of its threads: it starts its own."""
    dw.set_num_threads(2)
    threads.run_parts(lambda k: k, range(4))  # the parent's pool exists
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        assert pool.apply(_parts_in_child, ()) == [0, 1, 4, 9]


def _parts_in_child():
    return threads.run_parts(lambda k: k * k, range(4), workers=2)


def test_pool_waits_while_a_program_thread_could_be_inside_blas(restore_threads, monkeypatch):
    """Until OpenBLAS's spin has been shortened (done once, with no other non-daemon thread alive,
    since restarting its threads under a running BLAS call would break that call) the pool stands
    aside; the parts still all run, in order."""
    monkeypatch.setattr(threads, "_spin", [None])
    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "")  # set by an earlier tuning: start as if not
    monkeypatch.delenv("OPENBLAS_THREAD_TIMEOUT")
    dw.set_num_threads(2)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert not threads.pool_ready() and threads._spin == [None]  # not now; asked again next time
        idents = threads.run_parts(lambda k: threading.get_ident(), range(4))
        done = []
        threads.run_split(lambda i, j: done.append((i, j)), 10, 1 << 30)
    finally:
        stop.set()
        other.join()
    assert set(idents) == {threading.get_ident()} and done == [(0, 10)]
    assert threads.pool_ready() == bool(threads._respin)  # alone again: tuned, ready


def test_blas_threads_stop_spinning_once_the_pool_is_ready(restore_threads):
    """After a multi-threaded GEMM OpenBLAS's idle threads used to busy-wait ~0.1 s on the cores the
    pool needs; once the pool is ready they wait ~13 us (measured as CPU time during a sleep)."""
    if not threads._respin:
        pytest.skip("not an OpenBLAS whose idle threads can be told to wait briefly")
    dw.set_num_threads(2)
    assert threads.pool_ready()
    a = np.ones((512, 512), np.float32)

    def cpu_while_asleep():
        a @ a
        before = resource.getrusage(resource.RUSAGE_SELF)
        time.sleep(0.1)
        after = resource.getrusage(resource.RUSAGE_SELF)
        return after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime

    assert min(cpu_while_asleep() for _ in range(3)) < 0.03  # spinning, it was ~0.1 s
