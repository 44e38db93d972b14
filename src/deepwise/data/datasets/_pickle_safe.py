"""A restricted reader for the pickled batches of CIFAR-10's *python version*.

deepwise does not unpickle the files it reads: an ordinary ``pickle.load`` imports and calls whatever
the file names, so a crafted file can run any code. The CIFAR-10 python batches are pickles all the
same, so this module reads them with its own small pickle machine that can only rebuild what a batch
holds — dicts, lists, tuples, ints, bytes, text and NumPy integer arrays — and refuses everything else.

Why this runs no code from the file and stays within bounded time and memory:

- The opcodes are decoded by ``pickletools.genops`` (which only parses) and executed here, one by
  one, on a plain list used as the stack. Only the opcodes a batch needs are executed; the others
  (OBJ, INST, NEWOBJ, EXT, persistent ids, sets, floats, out-of-band buffers) are refused by name.
  Nothing recurses: nesting costs stack entries, never Python frames.
- A name (GLOBAL / STACK_GLOBAL) is looked up in a fixed table and imports nothing. The names a NumPy
  array pickle uses (``numpy[._]core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``,
  ``numpy[._]core.numeric._frombuffer`` for protocol 5) and ``_codecs.encode`` (how Python 3 writes
  ``bytes`` at protocol 2) map to small checking functions made afresh for every file, immutable
  (slotted, refusing any state), so one file can never change how the next one is read.
- REDUCE calls only those functions, with a tuple of arguments; BUILD sets state only on the
  reader's own array and dtype placeholders, whose ``setstate`` accepts only the state NumPy writes
  for a plain integer array, checks that the byte count matches the shape and builds the array with
  ``np.frombuffer`` (a copy). Object, structured and sub-array dtypes cannot be expressed, so NumPy's
  own ``__setstate__`` never sees data from the file.
- Budgets: memo indices must be smaller than the file (a crafted ``LONG_BINPUT 2**28`` is refused
  instead of sizing a table), dict keys must be ints, bytes or text (hashing a crafted tuple DAG
  could take 2^k steps), and the bytes the functions above allocate (arrays, encoded text) are
  counted against a multiple of the file's size, so memory stays a small multiple of the file.
- Error messages never format a value from the file in full: ``_describe`` gives its type and a
  short prefix (a DAG of tuples could have a repr 2^k characters long);
  ``cifar.py`` uses it too.
"""

from __future__ import annotations

import io
import math
import pickletools
from pathlib import Path

import numpy as np

from deepwise.data.datasets.errors import DatasetFormatError

# dtype codes an integer array may use; object ("O"), structured ("V") and the rest are refused.
_DTYPE_CODES = ("u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "b1")
_BYTEORDERS = ("|", "<", ">", "=")
# the bytes the array and text builders may allocate: this many times the file size, plus a little
ALLOCATION_FACTOR = 3
_ALLOCATION_SLACK = 1 << 20
# the largest file read (a CIFAR-10 batch is 31 MB, CIFAR-100's training set 158 MB); settable
MAX_FILE_BYTES = 1 << 30
# the largest Python int a batch may hold (labels, sizes); longer ones are refused as they are read
_MAX_INT_BITS = 64


def describe_value(value) -> str:
    """A short, bounded description of an untrusted value: its type and, for a scalar, a prefix.
    Never calls ``repr`` on a container (a DAG of tuples can have a repr 2^k long)."""
    kind = type(value).__name__
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        return str(value) if value.bit_length() <= 64 else f"an int of {value.bit_length()} bits"
    if isinstance(value, (str, bytes, bytearray)):
        head = repr(value[:40])
        return f"{kind} {head}{'...' if len(value) > 40 else ''}"
    if isinstance(value, (tuple, list, dict)):
        return f"a {kind} of {len(value)} items"
    if isinstance(value, (_Marker, _DtypeSpec, _ArrayHolder, _Allowed)):
        return value.describe()
    return f"a {kind}"


def _text(value, what: str) -> str:
    """Python 2 pickles read with ``encoding="bytes"`` give their ``str`` values as bytes."""
    if isinstance(value, bytes) and len(value) <= 64:
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            pass
    elif isinstance(value, str) and len(value) <= 64:
        return value
    raise _Refused(f"{what} must be a short ASCII text, got {describe_value(value)}")


class _Refused(Exception):
    """A check inside the restricted reader failed; turned into DatasetFormatError with the path."""


class _Budget:
    """Counts the bytes the builders allocate for one file."""

    __slots__ = ("left",)

    def __init__(self, limit: int):
        self.left = limit

    def spend(self, n: int, what: str) -> None:
        if n > self.left:
            raise _Refused(f"{what} of {n} bytes would take the reader past its memory budget "
                           f"({ALLOCATION_FACTOR}x the file size); a batch holds each array once")
        self.left -= n


class _Frozen:
    """Reader objects the file can reach: slotted, and any attempt to give them state is refused."""

    __slots__ = ()

    def __setattr__(self, name, value):
        raise _Refused(f"cannot set {name!r} on {self.describe()}")

    def __setstate__(self, state):
        raise _Refused(f"{self.describe()} takes no state")

    def describe(self) -> str:
        return type(self).__name__


class _Marker(_Frozen):
    """Stands for ``numpy.ndarray`` where a pickle names it; not callable, not a class."""

    __slots__ = ()

    def describe(self):
        return "<numpy.ndarray placeholder>"

    __repr__ = describe


class _Allowed(_Frozen):
    """One of the functions a name in the table resolves to, bound to this file's reader."""

    __slots__ = ("_name", "_fn")

    def __init__(self, name: str, fn):
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_fn", fn)

    def __call__(self, *args):
        return self._fn(*args)

    def describe(self):
        return f"<{self._name} (checked)>"

    __repr__ = describe


class _DtypeSpec:
    """Stands for an integer ``numpy.dtype`` while the pickle is read."""

    __slots__ = ("code", "byteorder", "_built")

    def __init__(self, code: str):
        self.code, self.byteorder, self._built = code, "|", False

    def describe(self):
        return f"<numpy.dtype {self.code!r} placeholder>"

    def setstate(self, state):
        if (self._built or type(state) is not tuple or len(state) not in (8, 9)
                or type(state[0]) is not int or state[0] not in (3, 4)):
            raise _Refused(f"unexpected state for dtype {self.code!r}: {describe_value(state)}")
        expected = np.dtype(self.code)
        byteorder = _text(state[1], "a dtype byte order")
        _, _, subarray, names, fields, elsize, alignment, flags = state[:8]
        if (byteorder not in _BYTEORDERS or subarray is not None or names is not None or fields is not None
                or type(elsize) is not int or elsize not in (-1, expected.itemsize)
                or type(alignment) is not int or alignment not in (-1, expected.alignment)
                or type(flags) is not int or flags != 0 or (len(state) == 9 and state[8] is not None)):
            raise _Refused(f"dtype {self.code!r} with a state NumPy never writes for a plain integer "
                           f"array (byte order {byteorder!r}, fields {describe_value(fields)}, "
                           f"flags {describe_value(flags)})")
        self.byteorder, self._built = byteorder, True

    def dtype(self) -> np.dtype:
        dt = np.dtype(self.code)
        return dt.newbyteorder(self.byteorder) if self.byteorder in "<>" else dt


class _ArrayHolder:
    """Stands for an ndarray while the pickle is read; ``array`` is set once its state arrives."""

    __slots__ = ("array", "_budget")

    def __init__(self, budget: _Budget, array=None):
        self.array, self._budget = array, budget

    def describe(self):
        return "<numpy.ndarray being read>"

    def setstate(self, state):
        if self.array is not None or type(state) is not tuple:
            raise _Refused(f"unexpected array state {describe_value(state)}")
        if len(state) == 5 and type(state[0]) is int and state[0] == 1:
            state = state[1:]
        if len(state) != 4:
            raise _Refused(f"unexpected array state {describe_value(state)}")
        shape, spec, fortran, raw = state
        if type(fortran) is not bool and not (type(fortran) is int and fortran in (0, 1)):
            raise _Refused(f"the array's Fortran-order flag must be a bool, got {describe_value(fortran)}")
        self.array = _build_array(raw, spec, shape, "F" if fortran else "C", self._budget)


def _build_array(raw, spec, shape, order: str, budget: _Budget) -> np.ndarray:
    if not isinstance(spec, _DtypeSpec):
        raise _Refused(f"array dtype must be an integer numpy.dtype, got {describe_value(spec)}")
    if (type(shape) is not tuple or len(shape) > 4
            or not all(type(n) is int and 0 <= n < 2**62 for n in shape)):
        raise _Refused(f"array shape must be a tuple of at most 4 non-negative ints, got {describe_value(shape)}")
    if type(raw) not in (bytes, bytearray):
        raise _Refused(f"array data must be raw bytes, got {describe_value(raw)}")
    dtype = spec.dtype()
    need = math.prod(shape) * dtype.itemsize
    if len(raw) != need:
        raise _Refused(f"array of shape {shape} and dtype {dtype} needs {need} bytes, the pickle holds {len(raw)}")
    budget.spend(need, "an array")
    return np.frombuffer(raw, dtype=dtype).reshape(shape, order=order).copy(order="C")


class _Reader:
    """Runs one pickle. Everything the file can reach (the table's functions, the placeholders) is
    made here, for this file only."""

    def __init__(self, data: bytes, path: Path, what: str):
        self.data, self.path, self.what = data, path, what
        self.budget = _Budget(ALLOCATION_FACTOR * len(data) + _ALLOCATION_SLACK)
        self.ndarray = _Marker()
        reconstruct = _Allowed("numpy._core.multiarray._reconstruct", self._reconstruct)
        frombuffer = _Allowed("numpy._core.numeric._frombuffer", self._frombuffer)
        self.names = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy.core.numeric", "_frombuffer"): frombuffer,
            ("numpy._core.numeric", "_frombuffer"): frombuffer,
            ("numpy", "ndarray"): self.ndarray,
            ("numpy", "dtype"): _Allowed("numpy.dtype", self._dtype),
            ("_codecs", "encode"): _Allowed("_codecs.encode", self._encode),
        }

    # ------------------------------------------------------------------ the functions a file may call
    def _dtype(self, code, align=False, copy=True):
        code = _text(code, "a dtype code")
        if code not in _DTYPE_CODES or align not in (0, 1) or copy not in (0, 1):
            raise _Refused(f"dtype {code!r} is not allowed (only the integer codes {', '.join(_DTYPE_CODES)})")
        return _DtypeSpec(code)

    def _reconstruct(self, cls, shape, typecode):
        if (cls is not self.ndarray or type(shape) is not tuple or shape != (0,)
                or type(typecode) not in (bytes, str) or typecode not in (b"b", "b")):
            raise _Refused(f"unexpected array constructor arguments ({describe_value(cls)}, {describe_value(shape)}, "
                           f"{describe_value(typecode)})")
        return _ArrayHolder(self.budget)

    def _frombuffer(self, buf, spec, shape, order):
        order = _text(order, "an array order")
        if order not in ("C", "F"):
            raise _Refused(f"array order must be 'C' or 'F', got {order!r}")
        return _ArrayHolder(self.budget, _build_array(buf, spec, shape, order, self.budget))

    def _encode(self, text, encoding="utf-8", errors="strict"):
        # Python 3 writes bytes at protocol 2 as _codecs.encode(latin-1 text, "latin1").
        if (type(text) is not str or type(encoding) is not str or encoding not in ("latin1", "latin-1")
                or type(errors) is not str or errors != "strict"):
            raise _Refused(f"_codecs.encode is allowed only for latin-1 text, got {describe_value(encoding)}")
        self.budget.spend(len(text), "encoded text")
        try:
            return text.encode("latin-1")
        except UnicodeEncodeError:
            raise _Refused("_codecs.encode: the text is not latin-1") from None

    # ------------------------------------------------------------------ the machine
    def run(self):
        stack: list = []
        marks: list[list] = []
        memo: dict[int, object] = {}
        max_memo = len(self.data)

        def pop():
            if not stack:
                raise _Refused(f"{op.name} at byte {pos} finds the stack empty")
            return stack.pop()

        def top():
            if not stack:
                raise _Refused(f"{op.name} at byte {pos} finds the stack empty")
            return stack[-1]

        def pop_mark():
            nonlocal stack
            if not marks:
                raise _Refused(f"{op.name} at byte {pos} has no MARK before it")
            items, stack = stack, marks.pop()
            return items

        def key(k):
            if type(k) not in (str, bytes, int, bool) and k is not None:
                raise _Refused(f"dict keys must be ints, bytes or text, got {describe_value(k)} at byte {pos}")
            return k

        def integer(v):
            if type(v) is int and v.bit_length() > _MAX_INT_BITS:
                raise _Refused(f"an int of {v.bit_length()} bits at byte {pos} (a batch holds at most "
                               f"{_MAX_INT_BITS}-bit ints)")
            return v

        for op, arg, pos in pickletools.genops(io.BytesIO(self.data)):
            name = op.name
            if name in _PUSH_ARG:
                stack.append(integer(arg) if type(arg) is int else arg)
            elif name in _PY2_STR:  # Python 2 str: bytes, as pickle.load(encoding="bytes") gives them
                stack.append(arg.encode("latin-1"))
            elif name in _PUSH_CONST:
                stack.append(_PUSH_CONST[name]())
            elif name == "PROTO":
                if arg > 5:
                    raise _Refused(f"pickle protocol {arg} is newer than any Python writes")
            elif name == "FRAME":
                pass
            elif name == "MARK":
                marks.append(stack)
                stack = []
            elif name == "STOP":
                return pop()
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(top())
            elif name in ("LIST", "TUPLE"):
                items = pop_mark()  # (before naming ``stack``: popping the mark rebinds it)
                stack.append(items if name == "LIST" else tuple(items))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise _Refused(f"{name} at byte {pos} needs {n} items on the stack")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "DICT":
                items = pop_mark()
                if len(items) % 2:
                    raise _Refused(f"DICT at byte {pos} has an odd number of items")
                items = {key(items[i]): items[i + 1] for i in range(0, len(items), 2)}
                stack.append(items)
            elif name == "APPEND":
                value = pop()
                target = top()
                if type(target) is not list:
                    raise _Refused(f"APPEND at byte {pos} on {describe_value(target)}, not a list")
                target.append(value)
            elif name == "APPENDS":
                items = pop_mark()
                target = top()
                if type(target) is not list:
                    raise _Refused(f"APPENDS at byte {pos} on {describe_value(target)}, not a list")
                target.extend(items)
            elif name in ("SETITEM", "SETITEMS"):
                if name == "SETITEM":
                    value = pop()
                    items = [pop(), value]
                else:
                    items = pop_mark()
                target = top()
                if type(target) is not dict or len(items) % 2:
                    raise _Refused(f"{name} at byte {pos} on {describe_value(target)}, not a dict")
                for i in range(0, len(items), 2):
                    target[key(items[i])] = items[i + 1]
            elif name in ("PUT", "BINPUT", "LONG_BINPUT", "MEMOIZE"):
                index = len(memo) if name == "MEMOIZE" else arg
                if type(index) is not int or not 0 <= index <= max_memo:
                    raise _Refused(f"{name} at byte {pos}: memo index {describe_value(index)} is beyond any this "
                                   f"{len(self.data)}-byte file could need")
                memo[index] = top()
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if type(arg) is not int or arg not in memo:
                    raise _Refused(f"{name} at byte {pos}: memo index {describe_value(arg)} was never stored")
                stack.append(memo[arg])
            elif name in ("GLOBAL", "STACK_GLOBAL"):
                if name == "GLOBAL":
                    module, _, attr = arg.partition(" ")
                else:
                    attr, module = pop(), pop()
                    if type(attr) is not str or type(module) is not str:
                        raise _Refused(f"STACK_GLOBAL at byte {pos} needs two texts, got {describe_value(module)} "
                                       f"and {describe_value(attr)}")
                target = self.names.get((module, attr))
                if target is None:
                    raise DatasetFormatError(f"{self.path}: refusing to load {module[:80]}.{attr[:80]}: "
                                             f"{self.what} holds only arrays, lists and bytes")
                stack.append(target)
            elif name == "REDUCE":
                args = pop()
                fn = top()
                if not isinstance(fn, _Allowed):
                    raise _Refused(f"REDUCE at byte {pos} calls {describe_value(fn)}, which is not callable")
                if type(args) is not tuple:
                    raise _Refused(f"REDUCE at byte {pos} passes {describe_value(args)} as arguments, not a tuple")
                try:
                    stack[-1] = fn(*args)
                except TypeError:  # a wrong number of arguments (the message names no value)
                    raise _Refused(f"REDUCE at byte {pos}: {fn.describe()} does not take {len(args)} "
                                   "arguments") from None
            elif name == "BUILD":
                state = pop()
                target = top()
                if not isinstance(target, (_ArrayHolder, _DtypeSpec)):
                    raise _Refused(f"BUILD at byte {pos} sets state on {describe_value(target)}; only arrays and "
                                   "dtypes take state in a batch")
                target.setstate(state)
            else:
                raise _Refused(f"opcode {name} at byte {pos} is not allowed (a batch holds only arrays, lists, "
                               "dicts, ints and bytes)")
        raise _Refused("the pickle has no STOP opcode")


# opcodes whose argument is the value pushed
_PUSH_ARG = frozenset({"INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "BINBYTES",
                       "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE", "SHORT_BINUNICODE", "BINUNICODE",
                       "BINUNICODE8"})
_PY2_STR = frozenset({"STRING", "BINSTRING", "SHORT_BINSTRING"})
_PUSH_CONST = {"NONE": lambda: None, "NEWTRUE": lambda: True, "NEWFALSE": lambda: False,
               "EMPTY_LIST": list, "EMPTY_DICT": dict, "EMPTY_TUPLE": tuple}


def _resolve(value):
    if isinstance(value, _ArrayHolder):
        if value.array is None:
            raise _Refused("an array was declared but its data never followed")
        return value.array
    return value


def _is_truncation(exc: ValueError) -> bool:
    text = str(exc)
    return "exhausted before seeing STOP" in text or "not enough data" in text or "but only" in text


def load_restricted(path, what: str = "a CIFAR batch"):
    """Read the pickle at ``path`` with the restricted reader. Arrays among the values of a top-level
    dict (or the items of a top-level list) come back as NumPy arrays; other containers are returned as
    read. Raises ``DatasetFormatError`` naming the file for a refused name or opcode, a truncated or
    corrupt pickle, a budget exceeded, or anything a plain integer-array batch would not contain."""
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetFormatError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES}-byte limit for {what} "
                                 "(deepwise.data.datasets._pickle_safe.MAX_FILE_BYTES raises it)")
    data = path.read_bytes()
    try:
        obj = _Reader(data, path, what).run()
        if type(obj) is dict:
            return {k: _resolve(v) for k, v in obj.items()}
        if type(obj) is list:
            return [_resolve(v) for v in obj]
        return _resolve(obj)
    except DatasetFormatError:
        raise
    except _Refused as exc:
        raise DatasetFormatError(f"{path}: not {what}: {exc}") from None
    except ValueError as exc:  # from the opcode decoder: bytes that are not a pickle
        if _is_truncation(exc):
            raise DatasetFormatError(f"{path}: the pickle ends early ({str(exc)[:200]}); the file is "
                                     "truncated") from None
        raise DatasetFormatError(f"{path}: could not read {what} from this pickle ({str(exc)[:200]}); the "
                                 "file is truncated or corrupt") from None
