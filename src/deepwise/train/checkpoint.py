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
from deepwise.io import load_checkpoint, save_checkpoint
from deepwise.tensor import Tensor

__all__ = [
    "CHECKPOINT_NAME", "FORMAT", "TrainingCheckpoint", "load_training_checkpoint", "pack_state", "resolve_path",
    "save_training_checkpoint", "unpack_state",
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


def unpack_state(obj, arrays: Mapping):
    """The inverse of ``pack_state``: arrays come back as NumPy arrays."""
    if isinstance(obj, list):
        return [unpack_state(v, arrays) for v in obj]
    if isinstance(obj, dict):
        if len(obj) == 1:
            (tag, value), = obj.items()
            if tag == "__array__":
                if value not in arrays:
                    raise ValueError(f"checkpoint: the state refers to an array {value!r} the file does not hold")
                return arrays[value]
            if tag == "__tuple__":
                return tuple(unpack_state(v, arrays) for v in value)
            if tag == "__dict__":
                return {k: unpack_state(v, arrays) for k, v in value}
        return {k: unpack_state(v, arrays) for k, v in obj.items()}
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
        raise ValueError(f"{path}: a deepwise checkpoint, but not one written by the Trainer (format "
                         f"{meta.get('format')!r}); the Trainer resumes only from its own checkpoints")
    if meta.get("version") != VERSION:
        raise ValueError(f"{path}: trainer checkpoint version {meta.get('version')!r}, this deepwise reads "
                         f"version {VERSION}")
    model = {name: arrays[f"model/{name}"] for name in meta["model_keys"]}
    return TrainingCheckpoint(
        path=path,
        model=model,
        objects={k: unpack_state(v, arrays) for k, v in meta["objects"].items()},
        callbacks={k: unpack_state(v, arrays) for k, v in meta["callbacks"].items()},
        history=meta["history"],
        position=unpack_state(meta["position"], arrays),
        rng_state=meta["rng_state"],
        settings=meta["settings"],
    )
