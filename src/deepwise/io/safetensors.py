"""The safetensors format, read and written with NumPy alone.

A safetensors file is::

    [8 bytes]  N, the header length, an unsigned little-endian 64-bit integer
    [N bytes]  a UTF-8 JSON object, padded with spaces to a multiple of 8:
                 {"__metadata__": {"key": "value", ...},            (optional, strings only)
                  "name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...}
    [rest]     the byte buffer: every tensor little-endian and C-contiguous, at [begin, end) counted
               from the start of the buffer; the tensors cover the buffer exactly, without overlap

The file holds only numbers and text, so reading it can never run code (unlike pickle). Reading is
defensive: the header length is checked against the file size before anything is allocated, and every
entry is validated (dtype, shape, offsets, sizes, coverage) with an error naming the file and the
tensor. Files written here load in the ``safetensors`` package and vice versa; the layout (tensors
ordered by dtype alignment, largest first, then by name; compact JSON; ``__metadata__`` first) is the
one that package writes, so the bytes are identical for the same input.
"""

from __future__ import annotations

import io
import json
import math
import os
import struct

import numpy as np

from deepwise import backend
from deepwise.io.atomic import atomic_open
from deepwise.tensor import Tensor

__all__ = [
    "SafetensorsError",
    "load_bytes",
    "load_file",
    "load_file_with_metadata",
    "read_header",
    "read_metadata",
    "save_bytes",
    "save_file",
]

# Largest header accepted (the reference implementation uses the same bound): a header is a few bytes
# per tensor, so anything bigger is corrupt or hostile.
MAX_HEADER_BYTES = 100_000_000
# NumPy's limits: dimensions per array (32 before NumPy 2) and bytes per array
MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32
_MAX_INTP = 2**63 - 1

# safetensors dtype code -> NumPy dtype (little-endian, as stored).
_NUMPY_DTYPES = {
    "BOOL": np.dtype("|b1"),
    "U8": np.dtype("|u1"),
    "I8": np.dtype("|i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
# Codes the format defines that NumPy has no dtype for: understood in headers (so their sizes are
# checked and read_metadata works) but refused when loading values.
_UNSUPPORTED_ITEMSIZE = {"BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1}
# The reference writer's order of dtypes (narrowest first); files list the widest first.
_WRITE_ORDER = ["BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "I16", "U16", "F16", "BF16",
                "I32", "U32", "F32", "F64", "I64", "U64"]
_RANK = {code: i for i, code in enumerate(_WRITE_ORDER)}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in _NUMPY_DTYPES.items()}


class SafetensorsError(ValueError):
    """A file or buffer that is not valid safetensors, or values that cannot be stored as such."""


# ----------------------------------------------------------------------------------------- writing

def _to_numpy(value, name: str) -> np.ndarray:
    """A tensor-like value as a NumPy array on the host (no copy when it already is one)."""
    if isinstance(value, np.ndarray):
        return value
    if isinstance(value, np.generic):
        return np.asarray(value)

    if backend.is_array(value):  # a CuPy array
        return backend.to_device(value, backend.Device("cpu"))

    if isinstance(value, Tensor):
        return backend.to_device(value.array, backend.Device("cpu"))
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise TypeError(f"safetensors: tensor {name!r} is not a rectangular array ({exc})") from None
    if arr.dtype == object:
        raise TypeError(f"safetensors: tensor {name!r} is a {type(value).__name__}, not an array of numbers")
    return arr


def _bfloat16_or_none():
    """ml_dtypes' bfloat16 (deepwise's ``dw.bfloat16``) for the BF16 code, None without ml_dtypes.
    Its bytes are the format's little-endian ones on the little-endian hosts NumPy runs on."""
    return backend.bfloat16_dtype() if np.little_endian else None


def _dtype_code(arr: np.ndarray, name: str) -> str:
    if backend.is_bfloat16(arr.dtype):
        return "BF16"
    code = _CODE_OF_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
    if code is None:
        allowed = ", ".join(str(np.dtype(d.str.lstrip("<|"))) for d in _NUMPY_DTYPES.values())
        raise SafetensorsError(f"safetensors: tensor {name!r} has dtype {arr.dtype}, which safetensors "
                               f"cannot store; convert it to one of: {allowed}")
    return code


def _prepare(tensors, metadata):
    """Validate the input and lay it out: returns (header bytes, arrays in file order)."""
    if not hasattr(tensors, "items"):
        raise TypeError(f"safetensors: expected a dict of name -> array, got {type(tensors).__name__}")
    entries = []
    for name, value in tensors.items():
        if not isinstance(name, str):
            raise TypeError(f"safetensors: tensor names must be strings, got {name!r} "
                            f"({type(name).__name__})")
        if name == "__metadata__":
            raise SafetensorsError("safetensors: '__metadata__' is reserved for the metadata and cannot "
                                   "name a tensor")
        arr = _to_numpy(value, name)
        code = _dtype_code(arr, name)
        little = _NUMPY_DTYPES[code] if code != "BF16" else arr.dtype
        if arr.dtype != little or not arr.flags.c_contiguous:
            arr = np.ascontiguousarray(arr, dtype=little)
        entries.append((name, code, arr))
    entries.sort(key=lambda e: (-_RANK[e[1]], e[0]))

    header = {}
    if metadata is not None:
        if not hasattr(metadata, "items"):
            raise TypeError(f"safetensors: metadata must be a dict of str -> str, "
                            f"got {type(metadata).__name__}")
        for key, val in metadata.items():
            if not isinstance(key, str) or not isinstance(val, str):
                raise TypeError(f"safetensors: metadata must map str -> str; entry {key!r}: {val!r:.60} is "
                                f"{type(key).__name__} -> {type(val).__name__} (json.dumps structures)")
        header["__metadata__"] = dict(sorted(metadata.items()))  # deterministic whatever the input order
    offset = 0
    for name, code, arr in entries:
        end = offset + arr.nbytes
        header[name] = {"dtype": code, "shape": list(arr.shape), "data_offsets": [offset, end]}
        offset = end
    try:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SafetensorsError(f"safetensors: a tensor name or metadata string is not valid Unicode "
                               f"({exc})") from None
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text, [arr for _, _, arr in entries]


def _write(f, prefix: bytes, arrays) -> None:
    f.write(prefix)
    for arr in arrays:
        if arr.size:
            f.write(arr.reshape(-1).view(np.uint8))


def save_file(tensors, path, metadata: dict[str, str] | None = None) -> None:
    """Write ``tensors`` (name -> NumPy array, deepwise Tensor or array-like) to ``path`` atomically.

    ``metadata`` is an optional dict of strings stored in the header. Everything is validated before
    the file is touched, so a bad value never leaves a partial file behind.
    """
    prefix, arrays = _prepare(tensors, metadata)
    with atomic_open(path, "wb") as f:
        _write(f, prefix, arrays)


def save_bytes(tensors, metadata: dict[str, str] | None = None) -> bytes:
    """Like :func:`save_file`, returning the file's bytes."""
    prefix, arrays = _prepare(tensors, metadata)
    buf = io.BytesIO()
    _write(buf, prefix, arrays)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------- reading

def _guess_format(first: bytes) -> str:
    """A hint for files that are plainly something else (only used once validation has failed)."""
    if first.startswith(b"PK\x03\x04"):
        return (" It looks like a zip archive, which is what torch.save writes: such files hold pickled "
                "objects and deepwise never unpickles. Convert it in PyTorch with "
                "safetensors.torch.save_file(torch.load(path, weights_only=True), 'model.safetensors').")
    if len(first) >= 2 and first[0] == 0x80 and 2 <= first[1] <= 5:
        return (" It looks like a Python pickle (an older PyTorch .pt/.pth or a joblib/pickle dump); "
                "deepwise never unpickles files. Convert it to safetensors in the program that wrote it.")
    if first.startswith(b"\x93NUMPY"):
        return " It looks like a NumPy .npy file; load it with numpy.load(path) (allow_pickle stays False)."
    if first.startswith(b"\x89HDF"):
        return " It looks like an HDF5 file (e.g. a Keras .h5), not safetensors."
    return ""


def _unique_pairs(pairs):
    out = {}
    for key, value in pairs:
        if key in out:
            raise SafetensorsError(f"the header lists {key!r} twice")
        out[key] = value
    return out


def _is_count(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x <= _MAX_INTP


def _short(value) -> str:
    """A bounded description of a header value for an error message (never a full repr: a header
    can be 100 MB)."""
    if isinstance(value, str):
        return repr(value[:60]) + ("..." if len(value) > 60 else "")
    if isinstance(value, (list, dict)):
        return f"a JSON {'array' if isinstance(value, list) else 'object'} of {len(value)} items"
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    return repr(value)


def _check_shape(shape, itemsize: int, where: str, fail) -> int:
    """Validate a header shape; returns its byte size (a Python int: nothing wraps around)."""
    if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
        items = shape if isinstance(shape, list) else []
        bad = next((d for d in items if not _is_count(d)), None)
        detail = f" ({_short(bad)} is not)" if isinstance(shape, list) and len(shape) <= MAX_DIMS else ""
        fail(f"{where}: shape must be a list of non-negative integers below 2**63, got {_short(shape)}{detail}")
    if len(shape) > MAX_DIMS:
        fail(f"{where}: shape has {len(shape)} dimensions; NumPy arrays have at most {MAX_DIMS}")
    # NumPy refuses any array whose nonzero dimensions multiply (with the item size) past 2**63 - 1,
    # even when another dimension is 0 and the array holds nothing
    extent = itemsize
    for d in shape:
        extent *= max(d, 1)
        if extent > _MAX_INTP:
            fail(f"{where}: shape {_short(shape) if len(shape) > 8 else tuple(shape)} is too big for any array "
                 "(its dimensions multiply past 2**63 bytes)")
    return math.prod(shape) * itemsize


class _Entry:
    __slots__ = ("name", "code", "shape", "begin", "end")

    def __init__(self, name, code, shape, begin, end):
        self.name, self.code, self.shape, self.begin, self.end = name, code, shape, begin, end


class _Header:
    __slots__ = ("entries", "metadata", "data_start")

    def __init__(self, entries, metadata, data_start):
        self.entries, self.metadata, self.data_start = entries, metadata, data_start


def _parse_header(read, total: int, source: str) -> _Header:
    """Read and validate the header. ``read(start, n)`` returns ``n`` bytes of the file from ``start``;
    ``total`` is the file size. Every failure raises SafetensorsError naming ``source``."""

    def fail(msg, hint=""):
        raise SafetensorsError(f"{source}: {msg}{hint}")

    if total == 0:
        fail("the file is empty (0 bytes), not a safetensors file")
    first = read(0, min(total, 8))
    if total < 8:
        fail(f"the file is only {total} bytes long; a safetensors file starts with an 8-byte header "
             "length (truncated or not safetensors)", _guess_format(first))
    (n,) = struct.unpack("<Q", first)
    if n > total - 8:
        fail(f"the header length field says {n} bytes, but only {total - 8} bytes follow it "
             "(the file is truncated or is not safetensors)", _guess_format(first))
    if n > MAX_HEADER_BYTES:
        fail(f"the header length field says {n} bytes, more than the {MAX_HEADER_BYTES}-byte limit "
             "(corrupt or not safetensors)", _guess_format(first))
    if n < 2:
        fail(f"the header is {n} bytes long, too short for a JSON object", _guess_format(first))
    raw = read(8, n)
    problem = header = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        problem = f"the header is not valid UTF-8 ({exc.reason} at byte {8 + exc.start})"
    else:
        if not text.startswith("{"):
            problem = "the header does not start with '{', so it is not a JSON object"
        else:
            try:
                header = json.loads(text, object_pairs_hook=_unique_pairs)
            except SafetensorsError as exc:
                problem = str(exc)
            except (ValueError, RecursionError) as exc:
                problem = f"the header is not valid JSON ({exc})"
    if problem is not None:
        fail(problem, _guess_format(first))
    if not isinstance(header, dict):
        fail(f"the header is JSON but a {type(header).__name__}, not an object")

    buffer_len = total - 8 - n
    metadata = header.pop("__metadata__", None)
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        fail("'__metadata__' must be an object mapping strings to strings")

    entries = []
    for name, info in header.items():
        where = f"tensor {_short(name)}"
        if not isinstance(info, dict):
            fail(f"{where}: expected an object with dtype, shape and data_offsets, got {_short(info)}")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if missing:
            fail(f"{where}: the header entry lacks {', '.join(missing)}")
        code, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if isinstance(code, str) and code in _NUMPY_DTYPES:
            itemsize = _NUMPY_DTYPES[code].itemsize
        elif isinstance(code, str) and code in _UNSUPPORTED_ITEMSIZE:
            itemsize = _UNSUPPORTED_ITEMSIZE[code]
        else:
            known = ", ".join(list(_NUMPY_DTYPES) + list(_UNSUPPORTED_ITEMSIZE))
            what = "unknown dtype" if isinstance(code, str) else "dtype must be a string, got"
            fail(f"{where}: {what} {_short(code)} (known: {known})")
        expected = _check_shape(shape, itemsize, where, fail)
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_count(o) for o in offsets)):
            fail(f"{where}: data_offsets must be two non-negative integers [begin, end], got {_short(offsets)}"
                 + (f" {offsets}" if isinstance(offsets, list) and len(offsets) <= 4
                    and all(isinstance(o, int) and o.bit_length() <= 64 for o in offsets) else ""))
        begin, end = offsets
        if begin > end:
            fail(f"{where}: data_offsets [{begin}, {end}] end before they begin")
        if end > buffer_len:
            fail(f"{where}: data_offsets [{begin}, {end}] run past the end of the data, which is "
                 f"{buffer_len} bytes (the file is truncated or its header is wrong)")
        if end - begin != expected:
            fail(f"{where}: shape {tuple(shape)} of {code} needs {expected} bytes, but data_offsets "
                 f"[{begin}, {end}] hold {end - begin}")
        entries.append(_Entry(name, code, tuple(shape), begin, end))

    pos, prev = 0, None
    for e in sorted(entries, key=lambda e: (e.begin, e.end)):
        if e.begin < pos:
            fail(f"tensor {_short(e.name)}: data_offsets [{e.begin}, {e.end}] overlap tensor {_short(prev.name)} "
                 f"[{prev.begin}, {prev.end}]")
        if e.begin > pos:
            fail(f"tensor {_short(e.name)}: data_offsets [{e.begin}, {e.end}] leave bytes {pos}..{e.begin} "
                 "of the data unused (the format requires the tensors to cover it exactly)")
        pos, prev = e.end, e
    if pos != buffer_len:
        fail(f"the data is {buffer_len} bytes but the tensors cover only the first {pos} "
             "(trailing bytes belong to no tensor)")
    return _Header(entries, metadata, 8 + n)


def _numpy_dtype(entry: _Entry, source: str) -> np.dtype:
    dt = _NUMPY_DTYPES.get(entry.code)
    if dt is None and entry.code == "BF16":
        dt = _bfloat16_or_none()
        if dt is None:
            raise SafetensorsError(f'{source}: tensor {entry.name!r} is BF16, which NumPy has no dtype for '
                                   'without the ml_dtypes package: pip install "deepwise[bf16]" (or convert it '
                                   "to F32 in the program that wrote the file)")
    if dt is None:
        raise SafetensorsError(f"{source}: tensor {entry.name!r} is {entry.code}, which NumPy (and so "
                               "deepwise) has no dtype for; convert it to F32 (or F16) in the program that "
                               "wrote the file")
    return dt


def _finish(arr: np.ndarray, entry: _Entry, source: str) -> np.ndarray:
    if entry.code == "BOOL" and arr.size and arr.view(np.uint8).max() > 1:
        raise SafetensorsError(f"{source}: tensor {entry.name!r} is BOOL but holds bytes other than 0 and 1")
    if not arr.dtype.isnative:  # big-endian host: swap into native order
        arr = arr.byteswap().view(arr.dtype.newbyteorder("="))
    return arr


def _source_name(path) -> str:
    return os.fspath(path) if isinstance(path, (str, os.PathLike)) else repr(path)


def load_file(path) -> dict[str, np.ndarray]:
    """Read a safetensors file into NumPy arrays that own their memory, in the header's order.

    Raises SafetensorsError (a ValueError) with the file and tensor named when the file is not valid
    safetensors. Nothing in the file is ever executed or unpickled.
    """
    return load_file_with_metadata(path)[0]


def _read_file_header(f, source: str) -> _Header:
    """The validated header of the open binary file ``f``: the one reader behind every entry point
    that takes a path (``load_file``, ``read_metadata``, ``read_header``, ``dw.load``, checkpoints)."""
    total = os.fstat(f.fileno()).st_size

    def read(start, n):
        f.seek(start)
        data = f.read(n)
        if len(data) != n:
            raise SafetensorsError(f"{source}: the file ended early (it changed while being read?)")
        return data

    return _parse_header(read, total, source)


def _header_of(path) -> _Header:
    with open(path, "rb") as f:
        return _read_file_header(f, _source_name(path))


def load_file_with_metadata(path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """:func:`load_file` and :func:`read_metadata` in one pass over the file."""
    source = _source_name(path)
    with open(path, "rb") as f:
        header = _read_file_header(f, source)
        arrays = {}
        for entry in sorted(header.entries, key=lambda e: e.begin):  # sequential reads
            dt = _numpy_dtype(entry, source)
            arr = np.empty(entry.shape, dtype=dt)
            if arr.size:
                f.seek(header.data_start + entry.begin)
                got = f.readinto(arr.reshape(-1).view(np.uint8))
                if got != entry.end - entry.begin:
                    raise SafetensorsError(f"{source}: tensor {entry.name!r}: the file ended early "
                                           "(it changed while being read?)")
            arrays[entry.name] = _finish(arr, entry, source)
    return {e.name: arrays[e.name] for e in header.entries}, dict(header.metadata)


def load_bytes(data) -> dict[str, np.ndarray]:
    """Like :func:`load_file`, from the bytes of a file (``bytes``, ``bytearray`` or ``memoryview``)."""
    view = memoryview(data).cast("B")
    source = "<safetensors bytes>"
    header = _parse_header(lambda start, n: bytes(view[start:start + n]), len(view), source)
    out = {}
    for entry in header.entries:
        dt = _numpy_dtype(entry, source)
        if entry.end == entry.begin:
            arr = np.empty(entry.shape, dtype=dt)
        else:
            count = (entry.end - entry.begin) // dt.itemsize
            arr = np.frombuffer(view, dtype=dt, count=count, offset=header.data_start + entry.begin)
            arr = arr.reshape(entry.shape).copy()
        out[entry.name] = _finish(arr, entry, source)
    return out


def read_metadata(path) -> dict[str, str]:
    """The ``__metadata__`` strings of a safetensors file (empty if it has none). The whole header is
    validated, but no tensor data is read."""
    return dict(_header_of(path).metadata)


def read_header(path) -> dict[str, dict]:
    """Name -> {"dtype", "shape", "data_offsets"} for every tensor of a file, in header order, without
    reading the data (for listing what a weight file holds)."""
    return {e.name: {"dtype": e.code, "shape": list(e.shape), "data_offsets": [e.begin, e.end]}
            for e in _header_of(path).entries}
