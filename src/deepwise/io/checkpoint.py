"""Checkpoint files: a flat dict of arrays plus JSON state, in one safetensors file.

The training loop stores weights, optimizer state (moments, step counts) and JSON-able state (epoch,
history, random-generator state, settings) together, so a checkpoint is one atomic write: after a
crash the file on disk is either the previous checkpoint or the new one. The JSON goes into the
header's metadata under the key ``"deepwise"``; the arrays are ordinary safetensors tensors, so
other tools can still read the weights.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np

from deepwise.io.safetensors import SafetensorsError, load_file_with_metadata, save_file

__all__ = ["load_checkpoint", "save_checkpoint"]

META_KEY = "deepwise"
FORMAT = "deepwise-checkpoint"


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
        raise SafetensorsError(f"{path}: a safetensors file, but not a deepwise checkpoint (its metadata "
                               f"has no {META_KEY!r} entry); load plain weight files with dw.load")
    try:
        meta = json.loads(metadata[META_KEY])
    except ValueError as exc:
        raise SafetensorsError(f"{path}: the checkpoint's {META_KEY!r} metadata is not valid JSON "
                               f"({exc})") from None
    if not isinstance(meta, dict):
        raise SafetensorsError(f"{path}: the checkpoint's {META_KEY!r} metadata is a {type(meta).__name__}, "
                               "expected a JSON object")
    return arrays, meta
