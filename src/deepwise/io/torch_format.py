"""PyTorch's own checkpoint files, read without pickle.

``torch.save`` writes a Python pickle. Unpickling runs whatever callables the file names, so a
downloaded ``.pt`` file can execute any code. This module never calls ``pickle``: it runs the file on
``deepwise.io.pickle_machine``, an interpreter of the pickle opcodes, admitting only what a checkpoint
holds — tensors, numbers, strings, ``None``, and dicts/lists/tuples of them (a state dict, an
optimizer state dict, a training checkpoint). A global it does not know (``os.system``,
``builtins.eval``, a class of a user's program, NumPy's reconstructors) stops the read at once with
an error naming it; nothing is ever called.

Both of PyTorch's layouts are read:

- the zip archive (``torch.save`` since 1.6): ``<name>/data.pkl`` plus one ``<name>/data/<key>``
  entry per storage. A stored (uncompressed) entry is read straight into its array; a tensor that
  is its whole storage in order keeps that array, others copy their view out of it, so loading
  takes about the size of the tensors in memory.
- the legacy stream (``_use_new_zipfile_serialization=False``): four pickles in a row (magic number,
  protocol version, system info, the object), the sorted storage keys, then each storage as an
  8-byte element count followed by its bytes.

Storages of float16 load as float16, and of bfloat16 as bfloat16 (``dw.bfloat16``, ml_dtypes' type);
without ml_dtypes, bfloat16 is widened exactly to float32 and a warning says so. Bounds against
hostile files: the pickle program is limited in size, the stack and memo in length, containers in
nesting depth, and the bytes of all rebuilt tensors together to a few times the file's size, so a
crafted file cannot make the reader use unbounded memory or time.
"""

from __future__ import annotations

import io
import mmap
import os
import struct
import warnings
import zipfile
import zlib

import numpy as np

from deepwise import backend
from deepwise.io.pickle_machine import MAX_PICKLE_BYTES, PickleMachine, short

__all__ = ["TorchFormatError", "is_torch_file", "load_torch"]


class TorchFormatError(ValueError):
    """A PyTorch checkpoint file that cannot be read safely: corrupt, or holding something other than
    tensors, numbers, strings and containers."""


# storage class (as named in the pickle) -> (NumPy dtype of the stored bytes, dtype of the result)
_STORAGES = {
    "FloatStorage": ("<f4", "float32"), "DoubleStorage": ("<f8", "float64"),
    "HalfStorage": ("<f2", "float16"), "BFloat16Storage": ("<u2", "float32"),
    "LongStorage": ("<i8", "int64"), "IntStorage": ("<i4", "int32"), "ShortStorage": ("<i2", "int16"),
    "CharStorage": ("i1", "int8"), "ByteStorage": ("u1", "uint8"), "BoolStorage": ("?", "bool"),
    "ComplexFloatStorage": ("<c8", "complex64"), "ComplexDoubleStorage": ("<c16", "complex128"),
    "UntypedStorage": ("u1", "uint8"),  # bytes; the tensor's dtype comes with _rebuild_tensor_v3
}
# dtypes that _rebuild_tensor_v3 names next to an untyped storage (PyTorch uses it for the unsigned
# types without a typed storage class)
_V3_DTYPES = {"uint8": "u1", "int8": "i1", "int16": "<i2", "int32": "<i4", "int64": "<i8", "uint16": "<u2",
              "uint32": "<u4", "uint64": "<u8", "float16": "<f2", "float32": "<f4", "float64": "<f8",
              "bool": "?", "complex64": "<c8", "complex128": "<c16"}

MAX_DEPTH = 200                    # nesting of containers in the result
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


# ------------------------------------------------------------------------------ the objects built

class _Global:
    """A global the file named and the allowlist accepted; it is a tag, never a Python object."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return self.name


class _Storage:
    __slots__ = ("big_endian", "dtype", "key", "numel", "out_dtype", "storage_name")

    def __init__(self, storage_name, key, numel):
        self.storage_name = storage_name
        self.dtype, self.out_dtype = (np.dtype(d) for d in _STORAGES[storage_name])
        self.key = key
        self.numel = numel
        self.big_endian = False  # set by the zip reader for an archive written on a big-endian machine


class _PendingTensor:
    """A tensor whose storage bytes are fetched once the whole object has been read."""

    __slots__ = ("dtype", "offset", "parameter", "requires_grad", "size", "storage", "stride")

    def __init__(self, storage, offset, size, stride, requires_grad):
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.requires_grad = requires_grad
        self.parameter = False
        self.dtype = None  # set for a tensor over an untyped (byte) storage


class _OrderedDictTag(dict):
    """``collections.OrderedDict()`` as rebuilt here: a dict that accepts BUILD's attribute state
    (PyTorch stores a state dict's ``_metadata`` that way) and then drops it."""


_ALLOWED_GLOBALS = {"collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor",
                    "torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state",
                    "torch._tensor._rebuild_from_type_v2", "torch.Tensor", "torch.nn.parameter.Parameter",
                    "torch.Size", "torch.device", "builtins.set", "builtins.frozenset", "__builtin__.set"}
_ALLOWED_GLOBALS |= {f"torch.{name}" for name in _STORAGES if name != "UntypedStorage"}
_ALLOWED_GLOBALS |= {"torch.storage.UntypedStorage", "torch._utils._rebuild_tensor_v3"}
_ALLOWED_GLOBALS |= {f"torch.{name}" for name in _V3_DTYPES}


class _TorchMachine(PickleMachine):
    """The pickle machine admitting what ``torch.save`` writes for tensors and containers."""

    def __init__(self, data, pos, source, persistent_load):
        super().__init__(data, pos, source, TorchFormatError)
        self.persistent_load = persistent_load

    def find_global(self, module, name):
        full = f"{module}.{name}"
        if full not in _ALLOWED_GLOBALS:
            self.fail(f"refusing the global {full}: a PyTorch checkpoint read by deepwise may hold only "
                      "tensors, numbers, strings and dicts/lists/tuples of them, and nothing is ever called")
        return _Global(full)

    def build(self, target, state):
        if not isinstance(target, _OrderedDictTag) or not isinstance(state, dict):
            self.fail(f"BUILD (setting the state of a {type(target).__name__}) is not supported")

    # the callables the allowlist admits, applied by REDUCE
    def call(self, func, args):
        if not isinstance(func, _Global):
            self.fail(f"REDUCE of something that is not a known global ({type(func).__name__})")
        if not isinstance(args, tuple):
            self.fail(f"{func.name} called with {type(args).__name__} arguments, not a tuple")
        name = func.name
        if name == "collections.OrderedDict":
            if args:
                self.fail("collections.OrderedDict called with arguments")
            return _OrderedDictTag()
        if name in ("torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor"):
            return self.rebuild_tensor(name, args)
        if name == "torch._utils._rebuild_tensor_v3":
            if len(args) < 7 or getattr(args[6], "name", "")[6:] not in _V3_DTYPES:
                self.fail(f"{name} without a supported dtype ({short(args[6] if len(args) > 6 else None)})")
            dtype = np.dtype(_V3_DTYPES[args[6].name[6:]])
            if not isinstance(args[0], _Storage) or args[0].storage_name != "UntypedStorage":
                self.fail(f"{name} over something that is not an untyped storage")
            if args[0].numel % dtype.itemsize:
                self.fail(f"{name}: a storage of {args[0].numel} bytes does not hold whole {dtype} elements")
            return self.rebuild_tensor(name, args[:5], dtype)
        if name in ("torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"):
            if len(args) < 2 or not isinstance(args[0], _PendingTensor):
                self.fail(f"{name} without a tensor")
            args[0].parameter = True
            args[0].requires_grad = bool(args[1])
            return args[0]
        if name == "torch._tensor._rebuild_from_type_v2":
            if len(args) != 4 or not isinstance(args[0], _Global) or not isinstance(args[2], tuple):
                self.fail(f"{name} with unexpected arguments")
            if getattr(args[1], "name", None) not in ("torch.Tensor", "torch.nn.parameter.Parameter"):
                self.fail(f"{name} rebuilds a tensor subclass {short(args[1])}, which is not supported")
            if args[3]:
                self.fail(f"{name}: a tensor carrying Python attributes {short(args[3])} is not supported")
            out = self.call(args[0], args[2])
            if args[1].name == "torch.nn.parameter.Parameter" and isinstance(out, _PendingTensor):
                out.parameter = True
            return out
        if name == "torch.Size":
            if len(args) != 1 or not isinstance(args[0], (tuple, list)):
                self.fail("torch.Size with unexpected arguments")
            return tuple(args[0])
        if name == "torch.device":
            if not args or not all(isinstance(a, (str, int)) for a in args):
                self.fail("torch.device with unexpected arguments")
            return ":".join(str(a) for a in args)
        if name in ("builtins.set", "__builtin__.set", "builtins.frozenset"):
            if len(args) > 1 or (args and not isinstance(args[0], (list, tuple))):
                self.fail(f"{name} with unexpected arguments")
            items = args[0] if args else ()
            try:
                return set(items) if name != "builtins.frozenset" else frozenset(items)
            except TypeError:
                self.fail(f"{name} of unhashable items")
        self.fail(f"{name} cannot be called")

    def rebuild_tensor(self, name, args, dtype=None):
        if len(args) < 4:
            self.fail(f"{name} with {len(args)} arguments")
        storage, offset, size, stride = args[:4]
        requires_grad = bool(args[4]) if len(args) > 4 else False
        if not isinstance(storage, _Storage):
            self.fail(f"{name}: its first argument is not a storage")
        if dtype is None and storage.storage_name == "UntypedStorage":
            self.fail(f"{name} over an untyped storage without a dtype")
        elements = storage.numel // (dtype.itemsize if dtype is not None else 1)
        if not (isinstance(offset, int) and offset >= 0):
            self.fail(f"{name}: storage offset {short(offset)} is not a non-negative integer")
        for what, dims in (("size", size), ("stride", stride)):
            if not isinstance(dims, tuple) or not all(isinstance(d, int) and d >= 0 for d in dims):
                self.fail(f"{name}: {what} {short(dims)} is not a tuple of non-negative integers")
        if len(size) != len(stride):
            self.fail(f"{name}: size {size} and stride {stride} differ in length")
        if len(size) > 64:
            self.fail(f"{name}: {len(size)} dimensions")
        if all(size):
            last = offset + sum((n - 1) * s for n, s in zip(size, stride))
            if last >= elements:
                self.fail(f"{name}: a tensor of size {size}, stride {stride} at offset {offset} reaches "
                          f"element {last} of a storage of {elements} elements")
        out = _PendingTensor(storage, offset, size, stride, requires_grad)
        out.dtype = dtype
        return out


# ------------------------------------------------------------------------------ storages and tensors

class _Resolver:
    """Turns the interpreter's result into plain containers of arrays, fetching each storage once."""

    def __init__(self, source, fetch, budget, make_tensor):
        self.source = source
        self.fetch = fetch          # key -> 1-D array of the storage's elements (dtype as stored)
        self.budget = budget        # bytes all tensors together may take
        self.make_tensor = make_tensor
        self.storages = {}
        self.taken = set()   # storages whose array a tensor kept (later views of them copy)
        self.done = {}
        self.bf16 = False

    def storage(self, st: _Storage):
        arr = self.storages.get(st.key)
        if arr is None:
            arr = self.fetch(st)
            if arr.dtype.newbyteorder("=") != st.dtype.newbyteorder("=") or arr.shape != (st.numel,):
                raise TorchFormatError(f"{self.source}: storage {st.key!r} holds {arr.size} elements of "
                                       f"{arr.dtype}, the pickle says {st.numel} of {st.dtype}")
            self.storages[st.key] = arr
        return arr

    def tensor(self, p: _PendingTensor):
        st = p.storage
        numel = int(np.prod(p.size, dtype=np.int64)) if p.size else 1
        nbytes = numel * (p.dtype or st.out_dtype).itemsize
        if nbytes > self.budget:
            raise TorchFormatError(f"{self.source}: the tensors rebuilt from this file would take more than "
                                   f"{self.budget} bytes (a tensor of size {p.size} over storage {st.key!r}); "
                                   "refusing a file that expands far beyond its own size")
        self.budget -= nbytes
        base = self.storage(st)
        if p.dtype is not None:  # an untyped storage: its bytes seen as the tensor's dtype
            base = base.view(p.dtype.newbyteorder(">") if st.big_endian else p.dtype)
        total = base.size
        contiguous = all(s == int(np.prod(p.size[i + 1:], dtype=np.int64)) for i, s in enumerate(p.stride)
                         if p.size[i] > 1)
        if numel == 0:
            arr = np.empty(p.size, dtype=base.dtype)
        elif (p.offset == 0 and numel == total and contiguous and st.key not in self.taken
              and (base.flags.owndata or (isinstance(base.base, np.ndarray) and base.base.flags.owndata))
              and base.flags.writeable):
            arr = base.reshape(p.size)  # the whole storage, in order: its array, without a copy
            self.taken.add(st.key)
        else:
            item = base.itemsize
            view = np.lib.stride_tricks.as_strided(base[p.offset:], shape=p.size,
                                                   strides=[s * item for s in p.stride], writeable=False)
            arr = np.array(view, order="C")
        if st.storage_name == "BFloat16Storage":
            bf16 = backend.bfloat16_dtype()
            if bf16 is not None:  # ml_dtypes: the bits as they are, in native byte order
                arr = (arr if arr.dtype.isnative else arr.astype(arr.dtype.newbyteorder("="))).view(bf16)
            else:  # the top half of a float32: exact
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
                self.bf16 = True
        elif not arr.dtype.isnative:
            arr = arr.astype(arr.dtype.newbyteorder("="))
        return self.make_tensor(arr, p.requires_grad, p.parameter)

    def resolve(self, obj, depth=0):
        if isinstance(obj, (bool, int, float, complex, str, bytes)) or obj is None:
            return obj
        key = id(obj)
        if key in self.done:
            return self.done[key]
        if depth > MAX_DEPTH:
            raise TorchFormatError(f"{self.source}: containers nested more than {MAX_DEPTH} deep")
        if isinstance(obj, _PendingTensor):
            out = self.tensor(obj)
        elif isinstance(obj, dict):
            out = {}
            self.done[key] = out
            for k, v in obj.items():
                rk = self.resolve(k, depth + 1)
                try:
                    out[rk] = self.resolve(v, depth + 1)
                except TypeError as exc:
                    raise TorchFormatError(f"{self.source}: a dict key cannot be hashed ({exc})") from None
        elif isinstance(obj, list):
            out = []
            self.done[key] = out
            out.extend(self.resolve(v, depth + 1) for v in obj)
        elif isinstance(obj, tuple):
            out = tuple(self.resolve(v, depth + 1) for v in obj)
        elif isinstance(obj, (set, frozenset)):
            out = type(obj)(self.resolve(v, depth + 1) for v in obj)
        elif isinstance(obj, _Storage):
            raise TorchFormatError(f"{self.source}: the file holds a bare storage ({obj.storage_name}), "
                                   "not a tensor; deepwise reads tensors only")
        elif isinstance(obj, _Global):
            raise TorchFormatError(f"{self.source}: the file holds the global {obj.name} itself, not a value")
        else:
            raise TorchFormatError(f"{self.source}: unexpected {type(obj).__name__} in the file")
        self.done[key] = out
        return out


def _persistent_loader(source, storages):
    def load(pid):
        if not isinstance(pid, tuple) or len(pid) < 5 or pid[0] != "storage":
            raise TorchFormatError(f"{source}: unknown persistent id {short(pid)} (only storages are read)")
        _, stype, key, _location, numel = pid[:5]
        name = getattr(stype, "name", "")
        if name == "torch.storage.UntypedStorage":
            name = "torch.UntypedStorage"
        elif name == "torch.UntypedStorage" or not name.startswith("torch.") or name[6:] not in _STORAGES:
            raise TorchFormatError(f"{source}: storage of type {short(stype)} is not supported")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise TorchFormatError(f"{source}: a malformed storage record {short(pid)}")
        if len(pid) > 5 and pid[5] is not None:
            raise TorchFormatError(f"{source}: storage views (an old PyTorch feature) are not supported")
        st = storages.get(key)
        if st is None:
            st = storages[key] = _Storage(name[6:], key, numel)
        elif st.storage_name != name[6:] or st.numel != numel:
            raise TorchFormatError(f"{source}: storage {key!r} is described two different ways")
        return st
    return load


def _read_zip(f, source):
    try:
        zf = zipfile.ZipFile(f)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise TorchFormatError(f"{source}: not a readable zip archive ({exc})") from None
    names = zf.namelist()
    encrypted = [i.filename for i in zf.infolist() if i.flag_bits & 0x1]
    if encrypted:
        raise TorchFormatError(f"{source}: the zip entry {encrypted[0]!r} is encrypted")
    pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
    if len(pkl) != 1:
        jit = any(n.endswith("constants.pkl") for n in names)
        hint = " (a TorchScript archive from torch.jit.save?)" if jit else ""
        raise TorchFormatError(f"{source}: a zip archive without exactly one data.pkl{hint}")
    prefix = pkl[0][: -len("data.pkl")]
    info = zf.getinfo(pkl[0])
    if info.file_size > MAX_PICKLE_BYTES:
        raise TorchFormatError(f"{source}: data.pkl is {info.file_size} bytes, more than {MAX_PICKLE_BYTES}")
    byteorder = "little"
    if prefix + "byteorder" in names:
        try:
            byteorder = zf.read(prefix + "byteorder").decode("ascii", "replace").strip()
        except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:  # e.g. an offset past the file
            raise TorchFormatError(f"{source}: the byteorder entry cannot be read ({exc})") from None
        if byteorder not in ("little", "big"):
            raise TorchFormatError(f"{source}: unknown byteorder {byteorder!r}")
    try:
        program = zf.read(pkl[0])
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise TorchFormatError(f"{source}: data.pkl cannot be read ({exc})") from None
    storages = {}
    root = _TorchMachine(program, 0, source, _persistent_loader(source, storages)).run()
    total = f.seek(0, io.SEEK_END)

    def fetch(st):
        name = f"{prefix}data/{st.key}"
        try:
            entry = zf.getinfo(name)
        except KeyError:
            raise TorchFormatError(f"{source}: storage {st.key!r} has no entry {name!r} in the archive") from None
        dt = st.dtype.newbyteorder(">") if byteorder == "big" and st.dtype.itemsize > 1 else st.dtype
        st.big_endian = byteorder == "big"
        want = st.numel * dt.itemsize
        if entry.file_size != want:
            raise TorchFormatError(f"{source}: storage {st.key!r} is {entry.file_size} bytes, its "
                                   f"{st.numel} elements of {st.storage_name} need {want}")
        if entry.compress_type == zipfile.ZIP_STORED and hasattr(f, "readinto"):
            # a stored entry's bytes sit right after its local header: read them straight into the
            # array (one copy of the data, no intermediate buffer)
            hdr = entry.header_offset
            f.seek(hdr)
            local = f.read(30)
            if len(local) == 30 and local[:4] == b"PK\x03\x04":
                n_name, n_extra = struct.unpack("<HH", local[26:30])
                start = hdr + 30 + n_name + n_extra
                if start + want <= total:
                    return _read_into(f, start, dt, st.numel, source, name)
            raise TorchFormatError(f"{source}: the zip entry {name!r} is malformed")
        try:
            with zf.open(entry) as g:
                raw = g.read(want + 1)
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, NotImplementedError) as exc:
            raise TorchFormatError(f"{source}: the zip entry {name!r} cannot be read ({exc})") from None
        if len(raw) != want:
            raise TorchFormatError(f"{source}: the zip entry {name!r} holds {len(raw)} bytes, expected {want}")
        return np.frombuffer(raw, dtype=dt)

    return root, fetch, zf


def _read_legacy(data, source, file=None):
    def one(pos, what):
        interp = _TorchMachine(data, pos, source, _no_persistent(source, what))
        return interp.run(), interp.pos

    magic, pos = one(0, "the magic number")
    if magic != _LEGACY_MAGIC:
        raise TorchFormatError(f"{source}: a pickle, but not a PyTorch checkpoint (no PyTorch magic number)")
    version, pos = one(pos, "the protocol version")
    if version != _LEGACY_PROTOCOL:
        raise TorchFormatError(f"{source}: legacy PyTorch protocol version {version!r}, expected 1001")
    sys_info, pos = one(pos, "the system information")
    if isinstance(sys_info, dict) and sys_info.get("little_endian") is False:
        raise TorchFormatError(f"{source}: a big-endian legacy checkpoint is not supported")
    storages = {}
    interp = _TorchMachine(data, pos, source, _persistent_loader(source, storages))
    root = interp.run()
    keys, pos = one(interp.pos, "the storage keys")
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise TorchFormatError(f"{source}: the storage key list is malformed")
    where = {}
    for key in keys:
        st = storages.get(key)
        if st is None:
            raise TorchFormatError(f"{source}: storage {key!r} is listed but never used")
        if pos + 8 > len(data):
            raise TorchFormatError(f"{source}: the file ends before storage {key!r}")
        (numel,) = struct.unpack("<q", bytes(data[pos:pos + 8]))
        nbytes = numel * st.dtype.itemsize
        if numel != st.numel or pos + 8 + nbytes > len(data):
            raise TorchFormatError(f"{source}: storage {key!r} claims {numel} elements "
                                   f"(the pickle says {st.numel}, the file has room for fewer?)")
        where[key] = pos + 8
        pos += 8 + nbytes

    def fetch(st):
        if st.key not in where:
            raise TorchFormatError(f"{source}: storage {st.key!r} is used but its data is missing")
        if file is not None:
            return _read_into(file, where[st.key], st.dtype, st.numel, source, f"storage {st.key!r}")
        return np.frombuffer(data, dtype=st.dtype, count=st.numel, offset=where[st.key])

    return root, fetch


def _no_persistent(source, what):
    def load(pid):
        raise TorchFormatError(f"{source}: {what} refers to a storage")
    return load


def _legacy_prefix(first: bytes) -> bool:
    # PROTO n, (FRAME 8-byte length,) then LONG1 of 10 bytes holding PyTorch's magic number
    at = 11 if len(first) > 2 and first[2] == 0x95 else 2
    return (len(first) >= at + 12 and first[0] == 0x80 and first[at] == 0x8A and first[at + 1] == 10
            and int.from_bytes(first[at + 2:at + 12], "little") == _LEGACY_MAGIC)


def is_torch_file(first: bytes) -> bool:
    """Whether a file starting with ``first`` (32 bytes or more) looks like one ``torch.save`` wrote."""
    return first.startswith(b"PK\x03\x04") or _legacy_prefix(first)


def load_torch(file, make_tensor, source=None):
    """Read a ``torch.save`` file (a path or a binary file object) without unpickling it.

    ``make_tensor(array, requires_grad, is_parameter)`` turns each rebuilt NumPy array into the
    caller's tensor type. Returns the saved object made of those tensors, numbers, strings, ``None``,
    dicts (``OrderedDict`` becomes ``dict``), lists and tuples. Raises :class:`TorchFormatError`
    naming the file and what was wrong or refused.
    """
    own = isinstance(file, (str, os.PathLike))
    source = source or (os.fspath(file) if own else getattr(file, "name", None) or "<file object>")
    f = open(file, "rb") if own else file  # closed below
    try:
        if not own and hasattr(f, "seek"):
            f.seek(0, io.SEEK_SET)
        first = f.read(32)
        f.seek(0)
        try:
            size = os.fstat(f.fileno()).st_size
        except (OSError, AttributeError, io.UnsupportedOperation):
            size = f.seek(0, io.SEEK_END)
            f.seek(0)
        budget = 8 * size + 64 * 2**20
        zf = None
        if first.startswith(b"PK\x03\x04"):
            root, fetch, zf = _read_zip(f, source)
        elif _legacy_prefix(first):
            data = _mapped_or_read(f)  # the pickles are read from a map; tensor data straight from the file
            root, fetch = _read_legacy(data, source, f if isinstance(data, mmap.mmap) else None)
        elif first.startswith(b"\x1f\x8b") or (len(first) >= 2 and first[0] == 0x80):
            raise TorchFormatError(f"{source}: a pickle or compressed file that is not a PyTorch checkpoint")
        else:
            raise TorchFormatError(f"{source}: not a PyTorch checkpoint (neither a zip archive nor the "
                                   "legacy torch.save stream)")
        resolver = _Resolver(source, fetch, budget, make_tensor)
        try:
            out = resolver.resolve(root)
        finally:
            if zf is not None:
                zf.close()
        if resolver.bf16:
            warnings.warn(f"{source}: bfloat16 tensors were widened to float32 (exactly; NumPy has no "
                          'bfloat16 without ml_dtypes: pip install "deepwise[bf16]")', stacklevel=3)
        return out
    except RecursionError:
        raise TorchFormatError(f"{source}: the object is nested too deeply") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, struct.error, OverflowError,
            UnicodeDecodeError) as exc:
        raise TorchFormatError(f"{source}: a corrupt PyTorch checkpoint ({type(exc).__name__}: {exc})") from None
    finally:
        if own:
            f.close()


def _read_into(f, start, dtype, count, source, what):
    arr = np.empty(count, dtype=dtype)
    if count:
        f.seek(start)
        got = f.readinto(arr.view(np.uint8))
        if got != arr.nbytes:
            raise TorchFormatError(f"{source}: {what} ends early ({got} of {arr.nbytes} bytes)")
    return arr


def _mapped_or_read(f):
    try:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    except (OSError, ValueError, AttributeError, io.UnsupportedOperation):
        f.seek(0)
        return f.read()
