"""The threads deepwise computes with: ``dw.set_num_threads(n)`` / ``dw.get_num_threads()`` (PyTorch's names).

deepwise's heavy kernels are BLAS calls (matmul, linear, the GEMMs of convolutions), so its thread
count is the BLAS library's. It is set at run time, not only through ``OPENBLAS_NUM_THREADS`` before
import:

- with threadpoolctl installed (``pip install deepwise[threads]``), through it: every BLAS library
  loaded in the process (OpenBLAS, MKL, BLIS), whichever NumPy was built with;
- without it, NumPy alone: the OpenBLAS (or MKL) library that NumPy loaded is found among the
  process's shared libraries and its own ``openblas_set_num_threads`` entry point is called with
  ctypes. NumPy's wheels bundle OpenBLAS under a prefixed name (``scipy_openblas_set_num_threads64_``);
  both spellings are tried.

The intra-op pool (``run_parts``): a kernel whose work splits into independent parts -- the
convolutions' chunks of images -- runs them on ``get_num_threads()`` threads at once, BLAS at one
thread inside each, so the NumPy passes around the GEMMs (im2col, col2im, padding, the bias) run in
parallel too, not only the GEMMs. NumPy releases the GIL in those passes and a one-thread OpenBLAS
call runs in its caller's thread, so two parts on two cores take half the time (measured: 20 GEMMs
64x288x4096 at 1 BLAS thread from two Python threads 19.7 ms, the same as one call at 2 BLAS
threads; an im2col copy 31 -> 16 ms). Parts go to the threads in contiguous groups fixed by the thread
count, and partial sums are added in that order, so results are bit-identical run to run for a given
thread count. The pool needs BLAS's own thread-count entry point and OpenBLAS's idle threads told to
wait only briefly for work (``pool_ready``, done once); without that, and inside a part, parts run
one after another on the calling thread.
``run_split`` cuts a big elementwise or per-row pass (ReLU, BatchNorm) into one range per thread
(measured: relu of a 32x64x32x32 activation 0.77 -> 0.46 ms on two threads).
"""

from __future__ import annotations

import ctypes
import glob
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

try:  # optional: covers every BLAS vendor; without it NumPy's own OpenBLAS is driven through ctypes
    import threadpoolctl
except ImportError:  # pragma: no cover - depends on the environment
    threadpoolctl = None

_SET_NAMES = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
              "openblas_set_num_threads", "MKL_Set_Num_Threads")
_GET_NAMES = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
              "openblas_get_num_threads", "MKL_Get_Max_Threads")
_MARKERS = ("openblas", "mkl_rt", "libmkl")

_libraries = None  # [(path, set function, get function)] once found
_respin = []  # (openblas_read_env, blas_thread_shutdown_) of each OpenBLAS library that has them
_counts = []  # OpenBLAS's blas_cpu_number (the thread count calls use) of each library, or None
SPIN = 15  # log2 of the cycles OpenBLAS's idle threads busy-wait (its default, 28, is ~0.1 s)
_requested = [None]  # the last count set through set_num_threads


def _loaded_paths():
    """Paths of the BLAS shared libraries this process has loaded (or NumPy ships)."""
    paths = []
    try:
        with open("/proc/self/maps") as fh:  # Linux: what is mapped, whoever loaded it
            for line in fh:
                path = line.rsplit(None, 1)[-1] if "/" in line else ""
                if any(m in os.path.basename(path).lower() for m in _MARKERS) and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    if not paths:  # macOS, Windows: the libraries NumPy's wheel bundles beside it
        root = os.path.dirname(np.__file__)
        for pattern in ("../numpy.libs/*", ".dylibs/*", "../numpy/.libs/*"):
            for path in glob.glob(os.path.join(root, pattern)):
                if any(m in os.path.basename(path).lower() for m in _MARKERS):
                    paths.append(os.path.normpath(path))
    return paths


def _exported_int(lib, name):
    try:
        return ctypes.c_int.in_dll(lib, name)
    except ValueError:  # not exported by this build
        return None


def _blas_libraries():
    global _libraries
    if _libraries is None:
        found = []
        for path in _loaded_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            setter = next((getattr(lib, n) for n in _SET_NAMES if hasattr(lib, n)), None)
            getter = next((getattr(lib, n) for n in _GET_NAMES if hasattr(lib, n)), None)
            if setter is None or getter is None:
                continue
            setter.argtypes, setter.restype = [ctypes.c_int], None
            getter.argtypes, getter.restype = [], ctypes.c_int
            found.append((path, setter, getter))
            read_env, restart = getattr(lib, "openblas_read_env", None), getattr(lib, "blas_thread_shutdown_", None)
            if read_env is not None and restart is not None:
                read_env.argtypes, read_env.restype = [], None
                restart.argtypes, restart.restype = [], ctypes.c_int
                _respin.append((read_env, restart))
            _counts.append(_exported_int(lib, "blas_cpu_number"))
        _libraries = found
    return _libraries


def blas_libraries() -> list:
    """The BLAS libraries whose thread count ``set_num_threads`` sets, as file paths (threadpoolctl's
    view when it is installed)."""
    if threadpoolctl is not None:
        return [info["filepath"] for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
    return [path for path, _, _ in _blas_libraries()]


def set_num_threads(n: int) -> None:
    """Use ``n`` threads for BLAS (matmul, linear, convolution GEMMs) from now on."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"set_num_threads: expected a whole number of threads >= 1, got {n!r}")
    _requested[0] = n
    if threadpoolctl is not None:
        threadpoolctl.threadpool_limits(limits=n, user_api="blas")
        return
    for _, setter, _ in _blas_libraries():
        setter(n)


def get_num_threads() -> int:
    """The number of threads BLAS uses now (as the library itself reports it).

    Asked of NumPy's BLAS through its own entry point when it has one (well under a microsecond: the
    convolutions ask on every call); threadpoolctl's survey of every loaded library, which takes
    milliseconds, only for a BLAS without one."""
    libs = _blas_libraries()
    if libs:
        return int(libs[0][2]())
    if threadpoolctl is not None:
        counts = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info.get("user_api") == "blas"]
        if counts:
            return int(counts[0])
    return _requested[0] or os.cpu_count() or 1  # no BLAS found: what was asked, else the cores


_pool = [None, 0]  # the ThreadPoolExecutor of the intra-op pool and its number of threads
_inside = threading.local()  # set while this thread runs parts: parts never nest


def _forget_pool():
    """After fork the child has none of the parent's threads: start a fresh pool when needed."""
    _pool[0], _pool[1] = None, 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _run_group(fn, group):
    _inside.busy = True
    try:
        return [fn(part) for part in group]
    finally:
        _inside.busy = False


def _groups(parts, n):
    """``parts`` cut into n contiguous groups whose sizes differ by at most one."""
    size, extra = divmod(len(parts), n)
    groups, start = [], 0
    for k in range(n):
        stop = start + size + (1 if k < extra else 0)
        groups.append(parts[start:stop])
        start = stop
    return groups


_POOL_NAME = "deepwise-intra-op"
_spin = [None]  # None: not shortened yet; True: done (or the user chose a timeout); False: impossible


def _shorten_blas_spin():
    """Once per process: OpenBLAS's idle threads busy-wait for their next job for 2**SPIN cycles
    (~13 us) instead of its default ~0.1 s. Spinning, they held the very cores the pool needs (VGG
    block step at 2 threads: 80 ms with them spinning, slower than no pool at 60 ms; 44 ms with the
    short wait). The timeout is read when OpenBLAS starts its threads, so they are stopped once and
    start again, reading it, at the next multi-threaded call; the environment variable is set for
    child processes too. Left alone when the user set OPENBLAS_THREAD_TIMEOUT. Not done while a
    non-daemon thread other than this one runs (it could be inside a multi-threaded BLAS call,
    which stopping the threads would break): then the pool waits, and tries again next time."""
    if not _respin:
        return False
    if "OPENBLAS_THREAD_TIMEOUT" in os.environ:
        return True
    me = threading.current_thread()
    if any(t is not me and not t.daemon and not t.name.startswith(_POOL_NAME) for t in threading.enumerate()):
        return None
    os.environ["OPENBLAS_THREAD_TIMEOUT"] = str(SPIN)
    for read_env, restart in _respin:
        read_env()
        restart()
    return True


def pool_ready() -> bool:
    """Whether the intra-op pool can run without fighting BLAS for the cores: BLAS is an OpenBLAS
    whose idle threads have been told to wait briefly (``_shorten_blas_spin``). When it cannot,
    kernels keep their one-thread passes and leave the GEMMs to BLAS's own threads."""
    if _spin[0] is None:
        _spin[0] = _shorten_blas_spin()
    return bool(_spin[0])


def _one_blas_thread(libs):
    """Make BLAS calls use one thread; returns the function that puts the count back. OpenBLAS's
    count is written directly where the library exports it (a plain store, where its
    set_num_threads also takes its server lock and may start threads)."""
    if len(_counts) == len(libs) and all(c is not None for c in _counts):
        before = [c.value for c in _counts]
        for c in _counts:
            c.value = 1

        def restore():
            for c, v in zip(_counts, before):
                c.value = v

        return restore
    blas = libs[0][2]()
    for _, setter, _ in libs:
        setter(1)

    def restore_through_setters():
        for _, setter, _ in libs:
            setter(blas)

    return restore_through_setters


def run_parts(fn, parts, workers=None):
    """``[fn(p) for p in parts]``, the parts spread over ``workers`` threads (default: the BLAS thread
    count) in contiguous groups, with BLAS at one thread meanwhile; the calling thread runs the first
    group. Results come back in the order of ``parts``. If a part raises, the exception is raised
    here once every group has finished (the parts may write into shared buffers)."""
    parts = list(parts)
    libs = _blas_libraries()
    n = min(get_num_threads() if workers is None else workers, len(parts))
    if n <= 1 or not libs or getattr(_inside, "busy", False) or not pool_ready():
        return [fn(p) for p in parts]
    if _pool[1] < n - 1:
        if _pool[0] is not None:
            _pool[0].shutdown(wait=True)
        _pool[0], _pool[1] = ThreadPoolExecutor(n - 1, thread_name_prefix=_POOL_NAME), n - 1
    groups = _groups(parts, n)
    restore = _one_blas_thread(libs)
    try:
        futures = [_pool[0].submit(_run_group, fn, g) for g in groups[1:]]
        error = None
        try:
            results = _run_group(fn, groups[0])
        except BaseException as exc:  # re-raised below, after the other groups
            error, results = exc, []
        for f in futures:
            try:
                results.extend(f.result())
            except BaseException as exc:
                error = error or exc
        if error is not None:
            raise error
        return results
    finally:
        restore()


SPLIT_MIN = 1 << 18  # elements: below this a pass stays on one thread (a hand-off costs ~20-50 us)


def run_split(fn, n, size, xp=np):
    """``fn(start, stop)`` over ranges covering ``[0, n)``: one range per thread of the intra-op pool
    when the pass touches at least SPLIT_MIN elements (``size``) of NumPy arrays, else ``fn(0, n)``.
    For elementwise and per-row passes whose ranges write disjoint parts of their outputs."""
    t = get_num_threads() if xp is np and size >= SPLIT_MIN and n > 1 else 1
    if t <= 1 or not pool_ready():
        fn(0, n)
        return
    k = min(t, n)
    size_, extra = divmod(n, k)
    bounds = [i * size_ + min(i, extra) for i in range(k + 1)]
    run_parts(lambda r: fn(*r), list(zip(bounds, bounds[1:])), k)


__all__ = ["blas_libraries", "get_num_threads", "run_parts", "run_split", "set_num_threads"]
