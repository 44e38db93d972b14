"""Training checkpoints: everything needed to continue a ``fit`` exactly, in one file.

A checkpoint is one safetensors file written atomically by ``deepwise.io.save_checkpoint`` (so after a
crash the file is the previous checkpoint or the new one, never a torn mix). It holds

- ``model/<name>``: the model's ``state_dict()`` (parameters and persistent buffers), as arrays;
- the states of the trainer's stateful objects (``optimizer``, ``scheduler``, and whatever a
  subclass adds in ``Trainer.state_objects()``): arrays under ``state/<object>/...``, the rest JSON;
- the random generator's state, and where training stands: epoch, batches done in that epoch, the
  generator state at the start of that epoch (so its data order can be drawn again), the running
  loss and metric sums of the unfinished epoch;
- every callback's ``state_dict()`` (EarlyStopping's best weights and patience counter, the
  ModelCheckpoint's best value, ...), the ``History`` so far, and the fit settings that must not
  change on resume (batch size, number of samples, ...).

Nested state is stored as JSON with arrays replaced by references, ``{"__array__": key}``; tuples
and dicts with non-string keys are tagged so they come back as they were.

The Trainer writes ``<checkpoint_dir>/last.ckpt`` (see ``Trainer.fit``); ``load_training_checkpoint``
reads any such file, or a directory holding ``last.ckpt``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np

from deepwise import backend
from deepwise.io import CheckpointError, load_checkpoint, save_checkpoint
from deepwise.tensor import Tensor

__all__ = [
    "CHECKPOINT_NAME", "FORMAT", "CheckpointError", "TrainingCheckpoint", "load_training_checkpoint", "pack_state",
    "resolve_path", "save_training_checkpoint", "unpack_state",
]

FORMAT = "deepwise-trainer-checkpoint"
VERSION = 1
CHECKPOINT_NAME = "last.ckpt"
_TAGS = ("__array__", "__tuple__", "__dict__")


def _host_c(arr) -> np.ndarray:
    """A C-contiguous host copy-if-needed of an array, keeping 0-d arrays 0-d (np.ascontiguousarray
    would make them 1-d)."""
    arr = backend.to_device(arr, backend.Device("cpu"))
    return arr if arr.flags.c_contiguous else np.array(arr, order="C")


# ------------------------------------------------------------------------------ nested state
def pack_state(obj, arrays: dict, prefix: str, where: str = "state"):
    """``obj`` as JSON-able data; every Tensor / array inside goes into ``arrays`` under a key
    starting with ``prefix`` and is replaced by ``{"__array__": key}``."""
    if isinstance(obj, Tensor):
        obj = obj.array
    if backend.is_array(obj):
        key = prefix
        if key in arrays:
            raise ValueError(f"checkpoint: two arrays would be stored under {key!r}")
        arrays[key] = _host_c(obj)
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, tuple):
        return {"__tuple__": [pack_state(v, arrays, f"{prefix}/{i}", where) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [pack_state(v, arrays, f"{prefix}/{i}", where) for i, v in enumerate(obj)]
    if isinstance(obj, Mapping):
        plain = all(isinstance(k, str) for k in obj) and not any(k in _TAGS for k in obj)
        if plain:
            return {k: pack_state(v, arrays, f"{prefix}/{k}", where) for k, v in obj.items()}
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"checkpoint: {where} has a dict key of type {type(k).__name__} ({k!r}); "
                                "keys must be strings or numbers")
            items.append([k, pack_state(v, arrays, f"{prefix}/{k}", where)])
        return {"__dict__": items}
    raise TypeError(f"checkpoint: {where} holds a {type(obj).__name__} at {prefix!r}, which cannot be saved "
                    "(state dicts may hold numbers, strings, lists, tuples, dicts and arrays/Tensors)")


def unpack_state(obj, arrays: Mapping, source: str = "checkpoint"):
    """The inverse of ``pack_state``: arrays come back as NumPy arrays. A tag that ``pack_state``
    would not have written (an array reference that is not a key of ``arrays``, a tuple that is not a
    list, dict items that are not [key, value] pairs) raises ``CheckpointError`` naming ``source``."""
    if isinstance(obj, list):
        return [unpack_state(v, arrays, source) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            (tag, value), = obj.items()
            if tag == "__array__":
                if not isinstance(value, str) or value not in arrays:
                    shown = repr(value[:80]) if isinstance(value, str) else f"a {type(value).__name__}"
                    raise CheckpointError(f"{source}: the state refers to an array {shown} the file does not hold")
                return arrays[value]
            if tag == "__tuple__":
                if not isinstance(value, list):
                    raise CheckpointError(f"{source}: a tuple in the state is stored as a {type(value).__name__}, "
                                          "not a list")
                return tuple(unpack_state(v, arrays, source) for v in value)
            if tag == "__dict__":
                if not isinstance(value, list) or not all(
                        isinstance(kv, list) and len(kv) == 2
                        and (kv[0] is None or isinstance(kv[0], (str, int, float))) for kv in value):
                    raise CheckpointError(f"{source}: a dict in the state is not stored as [key, value] pairs "
                                          "with string or number keys")
                return {k: unpack_state(v, arrays, source) for k, v in value}
        return {k: unpack_state(v, arrays, source) for k, v in obj.items()}
    return obj


# ------------------------------------------------------------------------------ files
def resolve_path(path) -> str:
    """A checkpoint file, or a directory holding ``last.ckpt``."""
    path = os.fspath(path)
    if os.path.isdir(path):
        candidate = os.path.join(path, CHECKPOINT_NAME)
        if not os.path.exists(candidate):
            raise FileNotFoundError(f"resume_from={path!r} is a directory without a {CHECKPOINT_NAME} "
                                    "(the file Trainer.fit(checkpoint_dir=...) writes)")
        return candidate
    if not os.path.exists(path):
        raise FileNotFoundError(f"resume_from={path!r}: no such checkpoint file or directory")
    return path


class TrainingCheckpoint:
    """A checkpoint read back: ``model`` (name -> array), ``objects`` (name -> state dict),
    ``callbacks`` (key -> state), ``history`` (dict), ``position`` (dict), ``rng_state``,
    ``settings`` (dict), ``path``."""

    def __init__(self, path, model, objects, callbacks, history, position, rng_state, settings):
        self.path = path
        self.model = model
        self.objects = objects
        self.callbacks = callbacks
        self.history = history
        self.position = position
        self.rng_state = rng_state
        self.settings = settings

    def __repr__(self):
        p = self.position
        return (f"TrainingCheckpoint({self.path!r}: epoch {p.get('epoch')}, batch {p.get('batch')}, "
                f"step {p.get('global_step')})")


def save_training_checkpoint(path, *, model_state: Mapping, objects: Mapping, callbacks: Mapping,
                             history: dict, position: dict, rng_state: dict, settings: dict) -> None:
    """Write one checkpoint file atomically (see the module docstring for what goes in it)."""
    arrays: dict[str, np.ndarray] = {}
    model_keys = []
    for name, value in model_state.items():
        arr = value.array if isinstance(value, Tensor) else value
        arrays[f"model/{name}"] = _host_c(arr)
        model_keys.append(name)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "model_keys": model_keys,
        "objects": {name: pack_state(state, arrays, f"state/{name}", name) for name, state in objects.items()},
        "callbacks": {key: pack_state(state, arrays, f"callback/{key}", f"callback {key}")
                      for key, state in callbacks.items()},
        "history": history,
        "position": pack_state(position, arrays, "position", "the training position"),
        "rng_state": rng_state,
        "settings": settings,
    }
    save_checkpoint(path, arrays, meta)


def load_training_checkpoint(path) -> TrainingCheckpoint:
    """Read a file written by ``save_training_checkpoint`` (or the ``last.ckpt`` in a directory)."""
    path = resolve_path(path)
    arrays, meta = load_checkpoint(path)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: a deepwise checkpoint, but not one written by the Trainer (format "
                              f"{_shown(meta.get('format'))}); the Trainer resumes only from its own checkpoints")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: trainer checkpoint version {_shown(meta.get('version'))}, this deepwise "
                              f"reads version {VERSION}")
    fields = {name: _field(meta, name, kind, path) for name, kind in _FIELDS.items()}
    model = {}
    for name in fields["model_keys"]:
        if not isinstance(name, str) or f"model/{name}" not in arrays:
            raise CheckpointError(f"{path}: the checkpoint lists the model weight {_shown(name)} but holds no "
                                  f"tensor 'model/{name if isinstance(name, str) else '?'}' (corrupt or edited)")
        model[name] = arrays[f"model/{name}"]
    position = unpack_state(fields["position"], arrays, path)
    for key in ("epoch", "batch", "global_step"):
        value = position.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckpointError(f"{path}: the checkpoint's 'position' needs a non-negative integer {key!r}, "
                                  f"got {_shown(value)}")
    _check_rng(fields["rng_state"], path, "'rng_state'")
    if position["batch"]:
        _check_rng(position.get("epoch_rng_state"), path, "'position' 'epoch_rng_state'")
    return TrainingCheckpoint(
        path=path,
        model=model,
        objects={k: unpack_state(v, arrays, path) for k, v in fields["objects"].items()},
        callbacks={k: unpack_state(v, arrays, path) for k, v in fields["callbacks"].items()},
        history=fields["history"],
        position=position,
        rng_state=fields["rng_state"],
        settings=fields["settings"],
    )


# what a Trainer checkpoint's JSON holds besides format and version, and of what kind
_FIELDS = {"model_keys": list, "objects": dict, "callbacks": dict, "history": dict, "position": dict,
           "rng_state": dict, "settings": dict}
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _shown(value) -> str:
    """A short description of a value read from a checkpoint, for a message."""
    if isinstance(value, str):
        return repr(value[:80])
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value) if not isinstance(value, int) or value.bit_length() <= 64 else "a huge integer"
    return f"a {type(value).__name__}"


def _field(meta: dict, name: str, kind: type, path: str):
    if name not in meta:
        raise CheckpointError(f"{path}: the checkpoint has no {name!r} field (it was not written by "
                              "Trainer.fit, or has been edited or damaged)")
    value = meta[name]
    if not isinstance(value, kind):
        raise CheckpointError(f"{path}: the checkpoint's {name!r} field is {_shown(value)}, expected a JSON "
                              f"{'array' if kind is list else 'object'}")
    return value


def _check_rng(state, path: str, where: str) -> None:
    """A generator state names its bit generator; only NumPy's are accepted (the name is looked up)."""
    if not isinstance(state, dict) or state.get("bit_generator") not in _BIT_GENERATORS:
        got = state.get("bit_generator") if isinstance(state, dict) else state
        raise CheckpointError(f"{path}: the checkpoint's {where} must be a NumPy generator state (bit_generator "
                              f"one of {', '.join(_BIT_GENERATORS)}), got {_shown(got)}")
