"""``dw.save`` / ``dw.load``: tensors and checkpoints to and from safetensors files; PyTorch files read.

    dw.save(model.state_dict(), "model.safetensors")
    model.load_state_dict(dw.load("model.safetensors"))
    dw.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}, f)  # a file object
    state = dw.load("resnet_block.pt")            # a file torch.save wrote: read without pickle

Values keep their dtype (float32 weights, int64 buffers such as BatchNorm's ``num_batches_tracked``),
names and shapes are PyTorch's, so a flat state dict's file loads in PyTorch with
``safetensors.torch.load_file``.

Nested objects (dicts, lists and tuples of tensors, numbers, strings, booleans and ``None``; what
programs pass to ``torch.save``) are stored in the same format with this key scheme:

- each tensor is stored under its path of keys and list positions joined by ``.``
  (``{"model": {"fc.weight": w}, "optimizer": {"state": {0: {"exp_avg": m}}}}`` stores
  ``model.fc.weight`` and ``optimizer.state.0.exp_avg``), so other safetensors tools see readable names;
- the header's metadata key ``deepwise.structure`` holds the object's shape as JSON: a tensor is
  ``{"tensor": "<stored name>"}``, a dict ``{"dict": [[key, node], ...]}`` (keys keep their type, int or
  str, and their order), a list ``{"list": [...]}``, a tuple ``{"tuple": [...]}``, a number, string,
  boolean or None ``{"value": v}`` and a non-finite float ``{"float": "nan" | "inf" | "-inf"}``.

A flat dict of tensors is written exactly as before (no structure key), so its bytes do not change.
``dw.load`` reads all of these back, and also PyTorch's own ``torch.save`` files (zip archives and the
legacy format) through :mod:`deepwise.io.torch_format`, which never runs pickle.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping

import numpy as np

from deepwise import backend
from deepwise.io.safetensors import load_bytes, load_file_with_metadata, save_bytes, save_file
from deepwise.io.torch_format import is_torch_file, load_torch
from deepwise.nn.parameter import Parameter
from deepwise.tensor import Tensor

__all__ = ["STRUCTURE_KEY", "load", "save"]

STRUCTURE_KEY = "deepwise.structure"


def _is_tensor(value) -> bool:
    return isinstance(value, (Tensor, np.ndarray, np.generic)) or backend.is_array(value)


def _is_flat(obj) -> bool:
    return isinstance(obj, Mapping) and all(isinstance(k, str) and _is_tensor(v) for k, v in obj.items())


def _flatten(obj):
    """(structure node, {stored name: tensor}) for a nested object, following the module's key scheme."""
    tensors, seen = {}, {}

    def walk(value, path, depth):
        where = repr(".".join(path)) if path else "the object"
        if depth > 100:
            raise ValueError(f"dw.save: {where}: nested more than 100 deep (a container that holds itself?)")
        if _is_tensor(value):
            name = ".".join(path) if path else "tensor"
            if name in tensors:
                raise ValueError(f"dw.save: two entries are both stored as {name!r} (keys containing '.' "
                                 "that collide with a nested path); rename one")
            tensors[name] = value
            return {"tensor": name}
        if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            return {"value": value}
        if isinstance(value, float):
            if math.isfinite(value):
                return {"value": value}
            return {"float": "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
        if id(value) in seen:
            raise ValueError(f"dw.save: {where}: the same container appears twice (or holds itself); "
                             "dw.save stores trees")
        if isinstance(value, Mapping):
            seen[id(value)] = value
            items = []
            for k, v in value.items():
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise TypeError(f"dw.save: {where}: dict keys must be str or int, got {k!r} "
                                    f"({type(k).__name__})")
                items.append([k, walk(v, [*path, str(k)], depth + 1)])
            return {"dict": items}
        if isinstance(value, (list, tuple)):
            seen[id(value)] = value
            kind = "list" if isinstance(value, list) else "tuple"
            return {kind: [walk(v, [*path, str(i)], depth + 1) for i, v in enumerate(value)]}
        if hasattr(value, "state_dict"):
            raise TypeError(f"dw.save: {where} is a {type(value).__name__}; save its state_dict() instead")
        raise TypeError(f"dw.save: {where} is a {type(value).__name__}; dw.save stores tensors, numbers, "
                        "strings, booleans, None, and dicts/lists/tuples of them")

    return walk(obj, [], 0), tensors


def _unflatten(node, tensors, source):
    def bad(what):
        return ValueError(f"{source}: the {STRUCTURE_KEY} metadata is malformed ({what})")

    def build(n, depth):
        if depth > 200 or not isinstance(n, dict) or len(n) != 1:
            raise bad("a node is not a one-key object")
        (kind, v), = n.items()
        if kind == "tensor":
            if v not in tensors:
                raise bad(f"it names a tensor {v!r} that the file does not hold")
            return tensors[v]
        if kind == "value":
            if isinstance(v, (dict, list)):
                raise bad("a value is a container")
            return v
        if kind == "float":
            if v not in ("nan", "inf", "-inf"):
                raise bad(f"float {v!r}")
            return float(v)
        if kind == "dict":
            if not isinstance(v, list) or not all(isinstance(p, list) and len(p) == 2 for p in v):
                raise bad("a dict is not a list of [key, node] pairs")
            out = {}
            for k, child in v:
                if isinstance(k, bool) or not isinstance(k, (str, int)):
                    raise bad(f"dict key {k!r}")
                out[k] = build(child, depth + 1)
            return out
        if kind in ("list", "tuple"):
            if not isinstance(v, list):
                raise bad(f"a {kind} is not a JSON list")
            items = [build(child, depth + 1) for child in v]
            return items if kind == "list" else tuple(items)
        raise bad(f"unknown node kind {kind!r}")

    return build(node, 0)


def _write(arrays, f, metadata):
    if isinstance(f, (str, os.PathLike)):
        save_file(arrays, f, metadata)
    elif hasattr(f, "write"):
        f.write(save_bytes(arrays, metadata))
    else:
        raise TypeError(f"dw.save: expected a path or a binary file object to write to, got {type(f).__name__}")


def save(obj, f, metadata: dict[str, str] | None = None) -> None:
    """Write ``obj`` to ``f`` (a path, written atomically, or a binary file object) as safetensors.

    ``obj`` is a dict of name -> Tensor (or NumPy/CuPy array), such as ``model.state_dict()``, or a
    nested object of dicts, lists and tuples holding tensors, numbers, strings, booleans and ``None``
    (an optimizer's state dict, a training checkpoint), stored with the key scheme above.
    ``metadata`` is an optional dict of strings kept in the file header (see ``read_metadata``).
    """
    if hasattr(obj, "state_dict") and not isinstance(obj, Mapping):
        raise TypeError(f"dw.save: got a {type(obj).__name__}; save its weights with "
                        "dw.save(model.state_dict(), path)")
    if metadata and STRUCTURE_KEY in metadata:
        raise ValueError(f"dw.save: the metadata key {STRUCTURE_KEY!r} is reserved for the object's structure")
    if _is_flat(obj):
        _write(obj, f, metadata)
        return
    structure, tensors = _flatten(obj)
    meta = dict(metadata or {})
    meta[STRUCTURE_KEY] = json.dumps(structure, separators=(",", ":"), allow_nan=False)
    _write(tensors, f, meta)


def _metadata_of_bytes(data: bytes) -> dict:
    # the bytes were validated by load_bytes already; this only reads the header's metadata back
    (n,) = struct.unpack("<Q", data[:8])
    meta = json.loads(data[8:8 + n].decode("utf-8")).get("__metadata__") or {}
    return meta if isinstance(meta, dict) else {}


def _differentiable(dtype):
    return dtype.kind == "c" or backend.is_floating(dtype)


def _torch_tensor(arr, requires_grad, is_parameter):
    if is_parameter:
        return Parameter(Tensor._make(arr), requires_grad=requires_grad and _differentiable(arr.dtype))
    t = Tensor._make(arr)
    if requires_grad and _differentiable(arr.dtype):
        t.requires_grad_(True)
    return t


def _to_device(obj, dev):
    if isinstance(obj, Tensor):
        return obj.to(dev.type if dev.index is None else f"{dev.type}:{dev.index}")
    if isinstance(obj, dict):
        return {k: _to_device(v, dev) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, dev) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_device(v, dev) for v in obj)
    return obj


def load(f, device="cpu"):
    """Read what :func:`save` wrote, or a file PyTorch's ``torch.save`` wrote, from a path or a binary
    file object.

    A flat safetensors file gives a dict of name -> Tensor in the file's order, each keeping its
    dtype; a nested one (see the key scheme above) gives back the dicts, lists, tuples and numbers that
    were saved. A ``torch.save`` file (zip archive or legacy format) is read by an interpreter of
    pickle's opcodes that rebuilds only tensors and containers (:mod:`deepwise.io.torch_format`):
    nothing in the file is ever executed. ``device="cuda"`` puts the tensors on the GPU. A corrupt
    or foreign file raises ``SafetensorsError`` or ``TorchFormatError`` (both ValueErrors) naming the
    file and the problem.
    """
    dev = backend.Device(device)
    is_path = isinstance(f, (str, os.PathLike))
    source = os.fspath(f) if is_path else getattr(f, "name", None) or "<file object>"
    if is_path:
        with open(f, "rb") as fh:
            first = fh.read(32)
    elif hasattr(f, "read"):
        start = f.tell() if hasattr(f, "tell") else 0
        first = f.read(32)
        f.seek(start)
    else:
        raise TypeError(f"dw.load: expected a path or a binary file object, got {type(f).__name__}")
    if is_torch_file(first):
        obj = load_torch(f, _torch_tensor, source=str(source))
        return _to_device(obj, dev) if dev.type != "cpu" else obj
    if is_path:
        arrays, meta = load_file_with_metadata(f)
    else:
        data = f.read()
        arrays = load_bytes(data)
        meta = _metadata_of_bytes(data)
    if dev.type != "cpu":
        arrays = {name: backend.to_device(arr, dev) for name, arr in arrays.items()}
    tensors = {name: Tensor._make(arr) for name, arr in arrays.items()}
    if STRUCTURE_KEY not in meta:
        return tensors
    try:
        node = json.loads(meta[STRUCTURE_KEY])
    except ValueError:
        raise ValueError(f"{source}: the {STRUCTURE_KEY} metadata is not JSON") from None
    return _unflatten(node, tensors, source)
