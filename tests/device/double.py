"""A strict stand-in for CuPy, backed by NumPy, so the GPU code path runs (and is checked) on the CPU.

``DeviceArray`` holds a NumPy array but behaves like a ``cupy.ndarray`` living on another device:

- ``numpy.asarray(a)`` / ``numpy.array(a)`` (the implicit device-to-host transfer) raise TypeError,
  as CuPy does; ``a.get()`` and ``namespace.asnumpy(a)`` are the explicit ways back.
- mixing with a host ``numpy.ndarray`` (``a + host``, ``host * a``, ``xp.concatenate([a, host])``)
  raises TypeError, as CuPy does; Python and NumPy scalars mix fine, as in CuPy.
- every NumPy function or ufunc given a device array raises TypeError. This is stricter than CuPy
  (which dispatches the ones it implements through ``__array_function__``): deepwise's rule is that
  op code calls the ``xp`` of its inputs, never ``numpy`` on tensor data, and the double enforces it.
- reductions and scalar indexing give 0-d device arrays (not NumPy scalars), as CuPy's do; ``float()``,
  ``int()``, ``.item()`` and ``.tolist()`` work (CuPy syncs and copies for them); the truth value of
  a multi-element array raises ValueError, as in CuPy and NumPy.
- arrays remember their device (``a.device.id``); ``namespace.cuda.Device(i)`` is a context that sets
  the current device, new arrays are made there, ``a.copy()`` copies to the current device, and an
  operation that mixes arrays of two devices raises ValueError.

``namespace`` is the module-like object deepwise gets in place of ``cupy``: the NumPy namespace with
every function wrapped (device arrays in, device arrays out, host arrays refused), ``asarray`` as the
explicit host-to-device transfer, and the slice of ``cupy.cuda`` that deepwise uses (devices, runtime,
memory pools, streams). Installed through ``deepwise.backend.set_cuda_module``; see conftest.py.
"""

from __future__ import annotations

import functools
import types

import numpy as np

DEVICE_COUNT = 2
_current = [0]  # the current device's id (CuPy keeps one per thread; the tests run in one)
stats = {"host_to_device": 0, "device_to_host": 0, "syncs": 0}


def _implicit_transfer(*_args, **_kwargs):
    raise TypeError("Implicit conversion to a NumPy array is not allowed. "
                    "Please use `.get()` to construct a NumPy array explicitly.")


def _host_operand(value):
    raise TypeError(f"Unsupported type {type(value)}: a host numpy.ndarray cannot be mixed with a device "
                    "array; move it with xp.asarray() (host to device) or .get() (device to host)")


class _Refs:
    """Collects the device of every device array met while unwrapping one call's arguments."""

    __slots__ = ("device", "outs")

    def __init__(self):
        self.device = None
        self.outs = {}

    def see(self, arr):
        if self.device is None:
            self.device = arr._dev
        elif arr._dev != self.device:
            raise ValueError(f"arrays on different devices ({self.device} and {arr._dev}) in one operation: "
                             "copy one of them to the other's device first")


def _unwrap(value, refs, allow_host=False):
    if isinstance(value, DeviceArray):
        refs.see(value)
        return value._a
    if isinstance(value, np.ndarray):
        if not allow_host:
            _host_operand(value)
        return value
    if isinstance(value, (list, tuple)):
        return type(value)(_unwrap(v, refs, allow_host) for v in value)
    return value


def _wrap(value, device):
    if isinstance(value, np.ndarray):
        return DeviceArray(value, device)
    if isinstance(value, np.generic):
        return DeviceArray(np.asarray(value), device)
    if isinstance(value, tuple):
        return tuple(_wrap(v, device) for v in value)
    if isinstance(value, list):
        return [_wrap(v, device) for v in value]
    return value


def _call(fn, args, kwargs, host_args=False, scalar_result=True):
    """Run NumPy's ``fn`` on the arrays inside device arrays; give device arrays back."""
    refs = _Refs()
    a = _unwrap(args, refs, host_args)
    out = kwargs.get("out")
    kw = {k: _unwrap(v, refs, host_args) for k, v in kwargs.items()}
    device = _current[0] if refs.device is None else refs.device
    result = fn(*a, **kw)
    if out is not None and isinstance(out, DeviceArray) and result is out._a:
        return out
    if scalar_result and isinstance(result, (bool, int, float)) and not isinstance(result, np.generic):
        result = np.asarray(result)
    return _wrap(result, device)


class _DeviceId:
    """``a.device``: what CuPy's ``cupy.cuda.Device`` tells about an array's device."""

    __slots__ = ("id",)

    def __init__(self, id):
        self.id = id

    def __eq__(self, other):
        return isinstance(other, (_DeviceId, Device)) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


def _binary(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        if isinstance(other, DeviceArray):
            _Refs_one(self).see(other)
            return DeviceArray(op(self._a, other._a), self._dev)
        if isinstance(other, np.ndarray):
            _host_operand(other)
        if isinstance(other, (bool, int, float, complex, np.generic)):
            result = op(self._a, other)
            return NotImplemented if result is NotImplemented else _wrap(result, self._dev)
        return NotImplemented

    method.__name__ = name
    return method


def _Refs_one(arr):
    refs = _Refs()
    refs.see(arr)
    return refs


def _inplace(name):
    op = getattr(np.ndarray, name)

    def method(self, other):
        if isinstance(other, DeviceArray):
            _Refs_one(self).see(other)
            other = other._a
        elif isinstance(other, np.ndarray):
            _host_operand(other)
        elif not isinstance(other, (bool, int, float, complex, np.generic)):
            return NotImplemented
        op(self._a, other)
        return self

    method.__name__ = name
    return method


def _unary(name):
    op = getattr(np.ndarray, name)

    def method(self):
        return DeviceArray(op(self._a), self._dev)

    method.__name__ = name
    return method


# methods of cupy.ndarray that deepwise may call, run on the NumPy array (device arrays in and out)
_METHODS = {
    "all", "any", "argmax", "argmin", "argsort", "astype", "clip", "conj", "cumprod", "cumsum", "diagonal",
    "dot", "fill", "flatten", "max", "mean", "min", "nonzero", "prod", "ravel", "repeat", "reshape", "round",
    "sort", "squeeze", "std", "sum", "swapaxes", "take", "trace", "transpose", "var", "view", "argpartition",
    "partition", "put", "choose", "compress",
}
_ATTRS = {"shape", "dtype", "ndim", "size", "itemsize", "nbytes", "strides", "flags"}
_ARRAY_ATTRS = {"T", "real", "imag", "base", "mT"}


class DeviceArray:
    """A NumPy array that behaves like a CuPy array on another device (see the module docstring)."""

    __slots__ = ("_a", "_dev")
    __array_priority__ = 100.0
    __hash__ = None

    def __init__(self, array, device=None):
        self._a = np.asarray(array) if isinstance(array, np.generic) else array  # CuPy has no scalars
        self._dev = _current[0] if device is None else device

    # the implicit transfers CuPy refuses
    __array__ = _implicit_transfer

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if any(isinstance(v, np.ndarray) for v in inputs):
            _host_operand(next(v for v in inputs if isinstance(v, np.ndarray)))
        raise TypeError(f"numpy.{ufunc.__name__} was given a device array: op code must call the xp of its "
                        "inputs (deepwise.backend.get_array_module), not numpy")

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f"numpy.{func.__name__} was given a device array: op code must call the xp of its "
                        "inputs (deepwise.backend.get_array_module), not numpy")

    # explicit transfers
    def get(self, stream=None, order="C", out=None):
        stats["device_to_host"] += 1
        if out is not None:
            out[...] = self._a
            return out
        return np.array(self._a, order=order, copy=True)

    def set(self, arr, stream=None):
        if not isinstance(arr, np.ndarray):
            raise TypeError(f"set() takes a numpy.ndarray, got {type(arr).__name__}")
        stats["host_to_device"] += 1
        self._a[...] = arr

    def copy(self, order="C"):
        """A copy on the current device (CuPy copies across devices this way)."""
        return DeviceArray(self._a.copy(order=order), _current[0])

    def __deepcopy__(self, memo):
        return DeviceArray(self._a.copy(), self._dev)

    def __reduce__(self):
        return (_rebuild, (self.get(), self._dev))

    @property
    def device(self):
        return _DeviceId(self._dev)

    # host values CuPy hands out after a sync
    def item(self, *args):
        stats["syncs"] += 1
        return self._a.item(*args)

    def tolist(self):
        stats["syncs"] += 1
        return self._a.tolist()

    def __float__(self):
        stats["syncs"] += 1
        return float(self._a)

    def __int__(self):
        stats["syncs"] += 1
        return int(self._a)

    def __complex__(self):
        return complex(self._a)

    def __bool__(self):
        if self._a.size != 1:
            raise ValueError("The truth value of an array with more than one element is ambiguous.")
        stats["syncs"] += 1
        return bool(self._a)

    def __len__(self):
        return len(self._a)

    def __iter__(self):
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (DeviceArray(self._a[i], self._dev) for i in range(len(self._a)))

    def __repr__(self):
        return repr(self._a).replace("array(", "device_array(", 1) + f" on cuda:{self._dev}"

    __str__ = __repr__

    def __format__(self, spec):
        if self._a.ndim == 0:
            return format(self._a.item(), spec)
        return repr(self)

    # indexing: device or host index arrays (CuPy moves host ones itself); host values may be assigned
    def __getitem__(self, index):
        refs = _Refs_one(self)
        return _wrap(self._a[_unwrap(index, refs, allow_host=True)], self._dev)

    def __setitem__(self, index, value):
        refs = _Refs_one(self)
        self._a[_unwrap(index, refs, allow_host=True)] = _unwrap(value, refs, allow_host=True)

    def __getattr__(self, name):
        if name in _ATTRS:
            return getattr(self._a, name)
        if name in _ARRAY_ATTRS:
            value = getattr(self._a, name)
            return None if value is None else DeviceArray(value, self._dev)
        if name in _METHODS:
            method = getattr(self._a, name)

            @functools.wraps(method)
            def call(*args, **kwargs):
                refs = _Refs_one(self)
                out = kwargs.get("out")
                result = method(*_unwrap(args, refs), **{k: _unwrap(v, refs) for k, v in kwargs.items()})
                if out is not None and result is out._a:
                    return out
                return _wrap(result, self._dev)

            return call
        raise AttributeError(f"the device array double has no attribute {name!r} (cupy.ndarray may not either)")


def _rebuild(host, device):
    return DeviceArray(host, device)


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__pow__", "__rpow__", "__matmul__",
              "__rmatmul__", "__and__", "__rand__", "__or__", "__ror__", "__xor__", "__rxor__", "__lshift__",
              "__rshift__", "__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__divmod__"):
    setattr(DeviceArray, _name, _binary(_name))
for _name in ("__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__", "__imod__", "__ipow__",
              "__iand__", "__ior__", "__ixor__", "__imatmul__"):
    setattr(DeviceArray, _name, _inplace(_name))
for _name in ("__neg__", "__pos__", "__abs__", "__invert__"):
    setattr(DeviceArray, _name, _unary(_name))


# ---------------------------------------------------------------------------------------- the namespace
class DeviceUfunc:
    """A NumPy ufunc on device arrays, with the methods CuPy's ufuncs have (``at``, ``reduce``, ...)."""

    def __init__(self, ufunc):
        self._ufunc = ufunc
        self.__name__ = ufunc.__name__
        self.nin, self.nout = ufunc.nin, ufunc.nout

    def __call__(self, *args, **kwargs):
        return _call(self._ufunc, args, kwargs)

    def at(self, a, indices, b=None):
        refs = _Refs_one(a)
        idx = _unwrap(indices, refs, allow_host=True)
        if b is None:
            self._ufunc.at(a._a, idx)
        else:
            self._ufunc.at(a._a, idx, _unwrap(b, refs))

    def reduce(self, *args, **kwargs):
        return _call(self._ufunc.reduce, args, kwargs)

    def accumulate(self, *args, **kwargs):
        return _call(self._ufunc.accumulate, args, kwargs)

    def outer(self, *args, **kwargs):
        return _call(self._ufunc.outer, args, kwargs)

    def __repr__(self):
        return f"<device ufunc {self.__name__}>"


class Device:
    """``cupy.cuda.Device``: ``with Device(1): ...`` makes device 1 current; ``Device()`` is the current."""

    def __init__(self, device=None):
        self.id = _current[0] if device is None else int(device)
        if not 0 <= self.id < DEVICE_COUNT:
            raise ValueError(f"invalid device ordinal {self.id}: the double has {DEVICE_COUNT} devices")
        self._prev = []

    def __enter__(self):
        self._prev.append(_current[0])
        _current[0] = self.id
        return self

    def __exit__(self, *exc):
        _current[0] = self._prev.pop()

    def use(self):
        _current[0] = self.id

    def synchronize(self):
        stats["syncs"] += 1

    def __eq__(self, other):
        return isinstance(other, (Device, _DeviceId)) and other.id == self.id

    def __hash__(self):
        return hash(self.id)


class MemoryPool:
    """``cupy.cuda.MemoryPool``'s counters, read from the live device arrays' sizes is not possible in
    NumPy, so the double counts what ``asarray`` moved over (enough to check the wiring)."""

    def __init__(self):
        self.freed = 0

    def used_bytes(self):
        return stats.get("bytes_in", 0)

    def total_bytes(self):
        return stats.get("bytes_in", 0)

    def free_all_blocks(self):
        self.freed += 1


_pool, _pinned = MemoryPool(), MemoryPool()


class _Stream:
    def synchronize(self):
        stats["syncs"] += 1


def _device_properties(i):
    Device(i)  # checks the ordinal
    return {"name": f"Device double {i}".encode(), "totalGlobalMem": 16 * 2**30, "major": 9, "minor": 0,
            "multiProcessorCount": 132}


runtime = types.SimpleNamespace(getDeviceCount=lambda: DEVICE_COUNT, getDeviceProperties=_device_properties,
                                deviceSynchronize=lambda: stats.__setitem__("syncs", stats["syncs"] + 1))
cuda = types.SimpleNamespace(Device=Device, runtime=runtime, MemoryPool=MemoryPool, is_available=lambda: True,
                             get_current_stream=lambda: _Stream(), Stream=_Stream)


def asarray(a, dtype=None, order=None):
    """The explicit host-to-device transfer (and a no-op, or a cast, for a device array)."""
    if isinstance(a, DeviceArray):
        return a if dtype is None or a.dtype == np.dtype(dtype) else a.astype(dtype)
    host = np.asarray(a, dtype=dtype, order=order)
    stats["host_to_device"] += 1
    stats["bytes_in"] = stats.get("bytes_in", 0) + host.nbytes
    return DeviceArray(np.array(host, copy=True), _current[0])


def array(a, dtype=None, copy=True, order="K", ndmin=0):
    if isinstance(a, DeviceArray):
        out = a._a.astype(dtype or a.dtype, order=order, copy=copy)
        return DeviceArray(np.array(out, ndmin=ndmin, copy=False), _current[0] if copy else a._dev)
    return asarray(np.array(a, dtype=dtype, order=order, ndmin=ndmin))


def asnumpy(a, stream=None, order="C", out=None):
    if isinstance(a, DeviceArray):
        return a.get(order=order, out=out)
    return np.asarray(a, order=order)


def get_array_module(*args):
    return namespace if any(isinstance(a, DeviceArray) for a in args) else np


def _as_strided(x, shape=None, strides=None):
    return DeviceArray(np.lib.stride_tricks.as_strided(x._a, shape=shape, strides=strides), x._dev)


_NOT_IN_CUPY = {"errstate", "seterr", "geterr"}


class _Namespace(types.ModuleType):
    """The module deepwise gets for ``"cuda"``: ``cupy``'s surface over device arrays."""

    def __getattr__(self, name):
        if name.startswith("__") or name in _NOT_IN_CUPY:
            raise AttributeError(f"the device double (like cupy) has no {name!r}")
        value = getattr(np, name)  # AttributeError for a name NumPy lacks
        if isinstance(value, np.ufunc):
            wrapped = DeviceUfunc(value)
        elif isinstance(value, (type, np.dtype, int, float, type(None))):
            wrapped = value  # dtypes (xp.float32), constants (xp.pi, xp.newaxis)
        elif callable(value):
            wrapped = functools.wraps(value)(functools.partial(_checked, value))
        else:
            raise AttributeError(f"the device double does not offer numpy.{name}")
        setattr(self, name, wrapped)
        return wrapped


def _checked(fn, *args, **kwargs):
    return _call(fn, args, kwargs)


namespace = _Namespace("cupy_double", "A NumPy-backed CuPy stand-in: see tests/device/double.py")
namespace.ndarray = DeviceArray
namespace.asarray = asarray
namespace.array = array
namespace.asnumpy = asnumpy
namespace.get_array_module = get_array_module
namespace.cuda = cuda
namespace.get_default_memory_pool = lambda: _pool
namespace.get_default_pinned_memory_pool = lambda: _pinned
namespace.lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(as_strided=_as_strided))
namespace.random = types.SimpleNamespace(seed=lambda seed=None: stats.__setitem__("seed", seed))
