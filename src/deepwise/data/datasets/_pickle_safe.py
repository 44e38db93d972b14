"""A restricted reader for the pickled batches of CIFAR-10's *python version*.

deepwise does not unpickle the files it reads: an ordinary ``pickle.load`` imports and calls whatever
the file names, so a crafted file can run any code. The CIFAR-10 python batches are pickles all the
same, so this module reads them with an unpickler that can only rebuild what a batch holds — dicts,
lists, ints, bytes and NumPy integer arrays — and refuses everything else before it is imported.

Why this runs no code from the file (the "restricting globals" approach of the ``pickle`` docs, taken
further):

- A pickle can only call what it first obtains through ``find_class`` (the GLOBAL, STACK_GLOBAL, INST
  and EXT opcodes all go through it; persistent ids are refused by ``pickle.Unpickler`` itself).
  ``_RestrictedUnpickler.find_class`` imports nothing: it maps a fixed set of names to functions of
  this module and raises ``DatasetFormatError`` for any other name, so ``os.system``,
  ``builtins.eval``, ``subprocess.Popen`` ... are never even looked up.
- The allowed names are those a NumPy array pickle uses (``numpy.core.multiarray._reconstruct``
  (NumPy 1.x) / ``numpy._core.multiarray._reconstruct`` (2.x), ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy[._]core.numeric._frombuffer`` for protocol 5) plus ``_codecs.encode``, which Python 3 uses
  to write ``bytes`` at protocol 2. None of them is handed to the pickle: each is replaced by a small
  function here that checks its arguments (an integer dtype code from a short list, an empty
  ``(0,)`` placeholder shape, a latin-1 text) and returns plain values or placeholder objects.
- NumPy's own ``ndarray.__setstate__`` / ``dtype.__setstate__`` never see data from the file (a
  crafted dtype state can set flags such as "holds Python objects", which makes NumPy treat raw
  bytes as object pointers). The placeholders' ``__setstate__`` accept only the state NumPy writes
  for a plain integer array, check that the byte count matches the shape, and build the array with
  ``np.frombuffer`` (a copy). Object, structured and sub-array dtypes cannot be expressed.
- No class is ever returned, so NEWOBJ/OBJ cannot instantiate anything; a BUILD on any other object
  fails. Whatever goes wrong becomes a ``DatasetFormatError`` naming the file.

What remains is what any parser of an untrusted file must bound: memory, which is at most a small
multiple of the file's size, since every array is backed by bytes read from the file.
"""

from __future__ import annotations

import math
import pickle
from pathlib import Path

import numpy as np

from deepwise.data.datasets.errors import DatasetFormatError

# dtype codes an integer array may use; object ("O"), structured ("V") and the rest are refused.
_DTYPE_CODES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "b1")
_BYTEORDERS = ("|", "<", ">", "=")


def _text(value, what: str) -> str:
    """Python 2 pickles read with ``encoding="bytes"`` give their ``str`` values as bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            pass
    elif isinstance(value, str):
        return value
    raise _Refused(f"{what} must be a short ASCII text, got {type(value).__name__} {value!r:.40}")


class _Refused(Exception):
    """A check inside the restricted reader failed; turned into DatasetFormatError with the path."""


class _Marker:
    """Stands for ``numpy.ndarray`` where a pickle names it; not callable, not a class."""

    __slots__ = ()

    def __repr__(self):
        return "<numpy.ndarray placeholder>"


_NDARRAY = _Marker()


class _DtypeSpec:
    """Stands for an integer ``numpy.dtype`` while the pickle is read."""

    __slots__ = ("code", "byteorder", "_built")

    def __init__(self, code: str):
        self.code, self.byteorder, self._built = code, "|", False

    def __setstate__(self, state):
        if self._built or not isinstance(state, tuple) or len(state) not in (8, 9) or state[0] not in (3, 4):
            raise _Refused(f"unexpected state for dtype {self.code!r}: {state!r:.80}")
        expected = np.dtype(self.code)
        byteorder = _text(state[1], "a dtype byte order")
        _, _, subarray, names, fields, elsize, alignment, flags = state[:8]
        if (byteorder not in _BYTEORDERS or subarray is not None or names is not None or fields is not None
                or elsize not in (-1, expected.itemsize) or alignment not in (-1, expected.alignment)
                or flags != 0 or (len(state) == 9 and state[8] is not None)):
            raise _Refused(f"dtype {self.code!r} with a state NumPy never writes for a plain integer "
                           f"array: {state!r:.80}")
        self.byteorder, self._built = byteorder, True

    def dtype(self) -> np.dtype:
        dt = np.dtype(self.code)
        return dt.newbyteorder(self.byteorder) if self.byteorder in "<>" else dt


class _ArrayHolder:
    """Stands for an ndarray while the pickle is read; ``array`` is set once its state arrives."""

    __slots__ = ("array",)

    def __init__(self, array=None):
        self.array = array

    def __setstate__(self, state):
        if self.array is not None or not isinstance(state, tuple):
            raise _Refused(f"unexpected array state {state!r:.80}")
        if len(state) == 5 and state[0] == 1:
            state = state[1:]
        if len(state) != 4:
            raise _Refused(f"unexpected array state {state!r:.80}")
        shape, spec, fortran, raw = state
        self.array = _build_array(raw, spec, shape, "F" if fortran else "C")


def _build_array(raw, spec, shape, order: str) -> np.ndarray:
    if not isinstance(spec, _DtypeSpec):
        raise _Refused(f"array dtype must be an integer numpy.dtype, got {type(spec).__name__}")
    if (not isinstance(shape, tuple) or len(shape) > 4
            or not all(type(n) is int and n >= 0 for n in shape)):
        raise _Refused(f"array shape must be a tuple of at most 4 non-negative ints, got {shape!r:.80}")
    if not isinstance(raw, (bytes, bytearray)):
        raise _Refused(f"array data must be raw bytes, got {type(raw).__name__}")
    dtype = spec.dtype()
    if len(raw) != math.prod(shape) * dtype.itemsize:
        raise _Refused(f"array of shape {shape} and dtype {dtype} needs {math.prod(shape) * dtype.itemsize} "
                       f"bytes, the pickle holds {len(raw)}")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy(order="C")


def _dtype(code, align=False, copy=True):
    code = _text(code, "a dtype code")
    if code not in _DTYPE_CODES or align not in (0, 1) or copy not in (0, 1):
        raise _Refused(f"dtype {code!r} is not allowed (only the integer codes {', '.join(_DTYPE_CODES)})")
    return _DtypeSpec(code)


def _reconstruct(cls, shape, typecode):
    if cls is not _NDARRAY or shape != (0,) or typecode not in (b"b", "b"):
        raise _Refused(f"unexpected array constructor arguments {(cls, shape, typecode)!r:.80}")
    return _ArrayHolder()


def _frombuffer(buf, spec, shape, order):
    order = _text(order, "an array order")
    if order not in ("C", "F"):
        raise _Refused(f"array order must be 'C' or 'F', got {order!r}")
    return _ArrayHolder(_build_array(buf, spec, shape, order))


def _encode(text, encoding="utf-8", errors="strict"):
    # Python 3 writes bytes at protocol 2 as _codecs.encode(latin-1 text, "latin1").
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _Refused(f"_codecs.encode is allowed only for latin-1 text, got {encoding!r}")
    return text.encode("latin-1")


_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    """``find_class`` resolves only the names in ``_ALLOWED``; it never imports a module."""

    def __init__(self, file, path: Path, what: str):
        super().__init__(file, encoding="bytes")
        self._path, self._what = path, what

    def find_class(self, module, name):
        target = _ALLOWED.get((module, name))
        if target is None:
            raise DatasetFormatError(f"{self._path}: refusing to load {module}.{name}: {self._what} holds "
                                     "only arrays, lists and bytes")
        return target


def _resolve(value):
    if isinstance(value, _ArrayHolder):
        if value.array is None:
            raise _Refused("an array was declared but its data never followed")
        return value.array
    return value


def load_restricted(path, what: str = "a CIFAR batch"):
    """Read the pickle at ``path`` with the restricted unpickler. Arrays among the values of a top-level
    dict (or the items of a top-level list) come back as NumPy arrays; other containers are returned as
    read. Raises ``DatasetFormatError`` naming the file for a refused name, a truncated or corrupt
    pickle, or anything a plain integer-array batch would not contain."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            obj = _RestrictedUnpickler(fh, path, what).load()
        if isinstance(obj, dict):
            return {k: _resolve(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [_resolve(v) for v in obj]
        return _resolve(obj)
    except DatasetFormatError:
        raise
    except EOFError as exc:
        raise DatasetFormatError(f"{path}: the pickle ends early ({exc}); the file is truncated") from exc
    except _Refused as exc:
        raise DatasetFormatError(f"{path}: not {what}: {exc}") from exc
    except (pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            OverflowError, RecursionError, MemoryError) as exc:
        raise DatasetFormatError(f"{path}: could not read {what} from this pickle ({type(exc).__name__}: "
                                 f"{exc}); the file is truncated or corrupt") from exc
