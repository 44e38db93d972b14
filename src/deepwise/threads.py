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

Elementwise NumPy passes run on one thread whatever is set here: there is no intra-op pool. Measured
on the 2-core machine the benchmarks run on, splitting a pass over two threads loses below ~100k
elements (the hand-off costs ~50 us); on a conv activation (32x64x32x32, relu forward and backward)
its best case was ~1.6x faster but its median no better than one thread (0.65-1.3 ms against
0.7-1.1 ms), since the second core is rarely free. Not worth its complexity without a steady gain.
"""

from __future__ import annotations

import ctypes
import glob
import os

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


__all__ = ["blas_libraries", "get_num_threads", "set_num_threads"]
