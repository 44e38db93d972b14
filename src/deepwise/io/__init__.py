"""Reading and writing weights and checkpoints: safetensors files, written atomically, never pickled.

- ``save(state_dict, path)`` / ``load(path, device="cpu")``: a model's weights (``dw.save``/``dw.load``).
- ``save_checkpoint(path, arrays, meta)`` / ``load_checkpoint(path)``: arrays plus JSON training state.
  A damaged or crafted checkpoint raises ``CheckpointError`` (a ``SafetensorsError``) naming the file.
- ``read_metadata(path)``: the header's string metadata, without reading tensor data.
- ``atomic_open`` / ``atomic_write_bytes`` / ``atomic_write_text``: all-or-nothing file writes.
- ``deepwise.io.safetensors``: the format itself on NumPy arrays (``save_file``, ``load_file``, ...).
"""

from deepwise.io.atomic import atomic_open, atomic_write_bytes, atomic_write_text
from deepwise.io.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from deepwise.io.safetensors import SafetensorsError, read_header, read_metadata
from deepwise.io.weights import load, save

__all__ = [
    "CheckpointError",
    "SafetensorsError",
    "atomic_open",
    "atomic_write_bytes",
    "atomic_write_text",
    "load",
    "load_checkpoint",
    "read_header",
    "read_metadata",
    "save",
    "save_checkpoint",
]
