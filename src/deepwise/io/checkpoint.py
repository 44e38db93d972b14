"""Checkpoint files: a flat dict of arrays plus JSON state, in one safetensors file.

The training loop stores weights, optimizer state (moments, step counts) and JSON-able state (epoch,
history, random-generator state, settings) together, so a checkpoint is one atomic write: after a
crash the file on disk is either the previous checkpoint or the new one. The JSON goes into the
header's metadata under the key ``"deepwise"``; the arrays are ordinary safetensors tensors, so
other tools can still read the weights.

The JSON is untrusted input like the rest of the file: its nesting depth is measured (without
recursion) before it is parsed, so a deeply nested value gives a ``CheckpointError`` rather than a
RecursionError, and everything that reads the parsed state can walk it without running out of stack.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import numpy as np

from deepwise.io.safetensors import SafetensorsError, load_file_with_metadata, save_file

__all__ = ["CheckpointError", "json_depth", "load_checkpoint", "loads_json", "save_checkpoint"]

META_KEY = "deepwise"
FORMAT = "deepwise-checkpoint"
# deeper JSON is refused: the Trainer's own state nests about 10 levels
MAX_JSON_DEPTH = 100
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_CHUNK = 1 << 20


class CheckpointError(SafetensorsError):
    """A checkpoint (or run-folder JSON) that is not what deepwise wrote: a field missing or of the
    wrong kind, JSON too deeply nested. A ValueError, like every format error of ``deepwise.io``."""


def json_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest (0 for a scalar), counted with NumPy over
    the text with its strings removed: linear time, no recursion, whatever the input."""
    raw = _JSON_STRING.sub("", text).encode("utf-8", "replace")
    depth = peak = 0
    for start in range(0, len(raw), _CHUNK):
        b = np.frombuffer(raw, np.uint8, count=min(_CHUNK, len(raw) - start), offset=start)
        step = (b == ord("[")).astype(np.int32) + (b == ord("{")) - (b == ord("]")) - (b == ord("}"))
        run = np.cumsum(step) + depth
        peak, depth = max(peak, int(run.max())), int(run[-1])
    return peak


def loads_json(text: str, source: str, what: str, max_depth: int = MAX_JSON_DEPTH):
    """``json.loads`` for untrusted text: a ``CheckpointError`` naming ``source`` and ``what`` for
    invalid JSON or JSON nested deeper than ``max_depth``."""
    depth = json_depth(text)
    if depth > max_depth:
        raise CheckpointError(f"{source}: {what} nests {depth} levels deep, more than the {max_depth} "
                              "deepwise ever writes (corrupt or crafted)")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise CheckpointError(f"{source}: {what} is not valid JSON ({str(exc)[:200]})") from None


def save_checkpoint(path, arrays: Mapping, meta: Mapping) -> None:
    """Write ``arrays`` (flat dict of str -> array or Tensor) and ``meta`` (a JSON-serialisable dict)
    to ``path`` atomically."""
    if not isinstance(meta, Mapping):
        raise TypeError(f"save_checkpoint: meta must be a dict, got {type(meta).__name__}")
    try:
        text = json.dumps(meta)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"save_checkpoint: meta must be JSON-serialisable: {exc}") from None
    save_file(arrays, path, {"format": FORMAT, META_KEY: text})


def load_checkpoint(path) -> tuple[dict[str, np.ndarray], dict]:
    """Read a file written by :func:`save_checkpoint`: ``(arrays, meta)``, arrays as NumPy arrays in
    the order they were written."""
    arrays, metadata = load_file_with_metadata(path)
    if META_KEY not in metadata:
        raise CheckpointError(f"{path}: a safetensors file, but not a deepwise checkpoint (its metadata "
                              f"has no {META_KEY!r} entry); load plain weight files with dw.load")
    meta = loads_json(metadata[META_KEY], str(path), f"the checkpoint's {META_KEY!r} metadata")
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path}: the checkpoint's {META_KEY!r} metadata is a {type(meta).__name__}, "
                              "expected a JSON object")
    return arrays, meta
