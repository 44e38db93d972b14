"""The array-module seam: NumPy on the CPU, CuPy on NVIDIA GPUs.

Op code never names ``numpy`` for tensor data; it asks ``get_array_module(*arrays)`` for the module
that owns its inputs (``xp``) and calls that, so one code path serves both devices.
"""

from __future__ import annotations

import numpy as np

from deepwise._malloc import malloc_tuning  # noqa: F401 - dw.backend.malloc_tuning(): what deepwise set

# dtypes, spelled the way PyTorch users write them: dw.float32, dw.int64, ...
float16 = np.dtype("float16")
float32 = np.dtype("float32")
float64 = np.dtype("float64")
int8 = np.dtype("int8")
int16 = np.dtype("int16")
int32 = np.dtype("int32")
int64 = np.dtype("int64")
uint8 = np.dtype("uint8")
bool_ = np.dtype("bool")

DEFAULT_FLOAT = float32
_cupy = None
_bfloat16 = []  # [np.dtype of ml_dtypes.bfloat16, or None when ml_dtypes is not installed], once looked up


def bfloat16_dtype():
    """NumPy's dtype for bfloat16 (``ml_dtypes.bfloat16``; CuPy >= 14 uses the same one), or None when
    ml_dtypes is not installed. ml_dtypes is imported on first use, not with deepwise: its import
    takes about half a second, and a program that never names bfloat16 should not pay it."""
    if not _bfloat16:
        try:
            import ml_dtypes  # noqa: PLC0415

            _bfloat16.append(np.dtype(ml_dtypes.bfloat16))
        except ImportError:
            _bfloat16.append(None)
    return _bfloat16[0]


def __getattr__(name):  # backend.bfloat16, looked up (and ml_dtypes imported) only when asked for
    if name == "bfloat16":
        return bfloat16_dtype()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def cupy_module():
    """Import CuPy on first use; a clear error when it or a GPU is missing."""
    global _cupy
    if _cupy is None:
        try:
            import cupy  # noqa: PLC0415

            cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # ImportError, or CUDA driver errors
            raise RuntimeError(
                "device 'cuda' needs CuPy and an NVIDIA GPU: install the extra with "
                "`pip install deepwise[cuda]` on a machine with a CUDA device "
                f"({type(exc).__name__}: {exc})"
            ) from None
        _cupy = cupy
    return _cupy


def cuda_module():
    """The module serving ``"cuda"`` if one is loaded already (CuPy, or what ``set_cuda_module``
    installed), else None. Never imports anything: ``dw.cuda`` asks without paying for CuPy's import."""
    return _cupy


def set_cuda_module(module):
    """Serve the ``"cuda"`` device with ``module`` instead of CuPy, and return the one it replaces
    (None: CuPy is imported on first use). ``module`` offers CuPy's surface: ``ndarray``, ``asarray``,
    the array functions, and ``cuda.Device`` / ``cuda.runtime``. This is the seam a test double of a
    GPU plugs into (tests/device/); ``set_cuda_module(None)`` goes back to CuPy."""
    global _cupy
    previous, _cupy = _cupy, module
    return previous


def get_array_module(*arrays):
    """Return ``cupy`` if any argument is a CuPy array, else ``numpy``."""
    if _cupy is not None:
        for a in arrays:
            if isinstance(a, _cupy.ndarray):
                return _cupy
    return np


def is_array(x) -> bool:
    return isinstance(x, np.ndarray) or (_cupy is not None and isinstance(x, _cupy.ndarray))


def is_device_array(x) -> bool:
    """True for an array on a GPU (a CuPy array)."""
    return _cupy is not None and isinstance(x, _cupy.ndarray)


class Device:
    """Where a tensor's data lives: ``Device("cpu")`` or ``Device("cuda")`` / ``Device("cuda:1")``."""

    __slots__ = ("type", "index")

    def __init__(self, spec="cpu", index=None):
        if isinstance(spec, Device):
            self.type, self.index = spec.type, spec.index
            return
        if isinstance(spec, int) and not isinstance(spec, bool):  # torch: device(1) is cuda:1
            spec, index = "cuda", spec
        spec = str(spec)
        kind, _, idx = spec.partition(":")
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"unknown device {spec!r}: expected 'cpu', 'cuda' or 'cuda:N'")
        self.type = kind
        try:
            self.index = int(idx) if idx else (None if index is None else int(index))
        except ValueError:
            raise ValueError(f"device {spec!r}: the index after ':' must be a whole number, as in 'cuda:1'") from None
        if self.index is not None and self.index < 0:
            raise ValueError(f"device {spec!r}: the index must be >= 0, got {self.index}")
        if kind == "cpu" and self.index not in (None, 0):
            raise ValueError(f"device {spec!r}: the CPU has no index")

    def __eq__(self, other):
        try:
            other = Device(other)
        except (ValueError, TypeError):
            return NotImplemented
        return self.type == other.type and (self.index or 0) == (other.index or 0)

    def __hash__(self):
        return hash((self.type, self.index or 0))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        return f"device(type='{self.type}'" + ("" if self.index is None else f", index={self.index}") + ")"


def device_of(array) -> Device:
    if isinstance(array, np.ndarray):
        return Device("cpu")
    return Device("cuda", array.device.id)


def to_device(array, device: Device):
    """Move an array to ``device`` (no copy when it is already there). ``"cuda"`` without an index
    means the current CUDA device (as in PyTorch); an array on another GPU is copied over."""
    if device.type == "cpu":
        if isinstance(array, np.ndarray):
            return array
        return array.get()
    cp = cupy_module()
    target = cp.cuda.Device(device.index)  # index None: the current device
    if isinstance(array, cp.ndarray):
        if array.device.id == target.id:
            return array
        with target:
            return array.copy()  # CuPy copies to the current device
    with target:
        return cp.asarray(array)


# ------------------------------------------------------------------------------ autocast state
# device type ("cpu" / "cuda") -> the low-precision dtype ops choose while ``dw.autocast`` is on for
# it. Kept here, at the bottom layer, because ops read it; deepwise.amp.autocast sets it.
_autocast = {}


def autocast_dtype(device_type: str):
    """The dtype autocast runs ``device_type``'s low-precision ops in, or None while it is off."""
    return _autocast.get(device_type)


def autocasting() -> bool:
    """True while autocast is on for any device (the ops' fast check)."""
    return bool(_autocast)


def set_autocast(device_type: str, dtype):
    """Turn autocast on for ``device_type`` with ``dtype`` (None: off); returns the previous setting."""
    if device_type not in ("cpu", "cuda"):
        raise ValueError(f"autocast: device_type must be 'cpu' or 'cuda', got {device_type!r}")
    previous = _autocast.get(device_type)
    if dtype is None:
        _autocast.pop(device_type, None)
    else:
        _autocast[device_type] = np.dtype(dtype)
    return previous


def to_dtype(dtype):
    """Normalise anything dtype-like (np.float32, "float32", torch-style aliases) to a numpy dtype."""
    if dtype is None:
        return None
    if dtype is bool:
        return bool_
    try:
        return np.dtype(dtype)
    except TypeError:
        if "bfloat16" in str(dtype) and bfloat16_dtype() is not None:  # NumPy knows the name once imported
            return bfloat16_dtype()
        raise TypeError(f"not a dtype: {dtype!r}") from None


def default_dtype(dtype, from_python: bool = False):
    """deepwise's dtype policy, the one place it is written: the dtype data of ``dtype`` takes when
    it becomes a tensor (by ``dw.tensor``, a DataLoader's collate, or arithmetic with a tensor) and
    no dtype was asked for. float64 becomes float32 (the default float); data that came from Python
    numbers or lists (``from_python``) takes int64 for integers and float32 for floats; every other
    dtype (uint8 images, int32 labels, float16, bool) is kept."""
    dtype = np.dtype(dtype)
    if dtype == float64 or (from_python and is_floating(dtype)):
        return DEFAULT_FLOAT
    if from_python and dtype.kind in "iu":
        return int64
    return dtype


def with_default_dtype(array, from_python: bool = False):
    """``array`` cast to ``default_dtype`` of its dtype (no copy when it already has it)."""
    dtype = default_dtype(array.dtype, from_python)
    return array if array.dtype == dtype else array.astype(dtype)


def is_floating(dtype) -> bool:
    """The one test of "floating point" (what may require grad, what a float scalar keeps, what
    float-only ops accept): float16/32/64 and bfloat16, whose NumPy kind is "V" (a type ml_dtypes
    adds), not "f". Needs no import of ml_dtypes: a bfloat16 array can only exist once it is loaded."""
    if not isinstance(dtype, np.dtype):
        dtype = np.dtype(dtype)
    return dtype.kind == "f" or is_bfloat16(dtype)


def is_bfloat16(dtype) -> bool:
    """Whether a NumPy/CuPy dtype is bfloat16 (without importing ml_dtypes)."""
    return dtype.kind == "V" and dtype.name == "bfloat16"


def result_dtype(*dtypes):
    """PyTorch's promotion: bool < integer < floating by category; the higher category's dtype wins,
    so float32 with int64 stays float32 (NumPy would give float64). Within a category, the wider."""
    dtypes = [np.dtype(d) for d in dtypes]
    rank = {"b": 0, "u": 1, "i": 1, "f": 2}  # anything else (bfloat16: kind "V") ranks as floating
    top = max(rank.get(d.kind, 2) for d in dtypes)
    same = [d for d in dtypes if rank.get(d.kind, 2) == top]
    out = same[0]
    for d in same[1:]:
        out = np.promote_types(out, d)
    return out


def scalar_dtype(value, tensor_dtype):
    """dtype a Python scalar takes next to a tensor: weak, so it never widens the tensor."""
    if isinstance(value, bool):
        return tensor_dtype if tensor_dtype.kind != "b" else bool_
    if isinstance(value, (int, np.integer)):
        return tensor_dtype if tensor_dtype.kind in "iuf" or is_floating(tensor_dtype) else int64
    # float scalar: keeps a float tensor's dtype (bfloat16 too), promotes ints/bools to the default float
    return tensor_dtype if tensor_dtype.kind == "f" or is_floating(tensor_dtype) else DEFAULT_FLOAT
