"""``dw.save`` / ``dw.load``: a model's state dict to and from a safetensors file.

    dw.save(model.state_dict(), "model.safetensors")
    model.load_state_dict(dw.load("model.safetensors"))

Values keep their dtype (float32 weights, int64 buffers such as BatchNorm's ``num_batches_tracked``),
names and shapes are PyTorch's, so the same file loads in PyTorch with ``safetensors.torch.load_file``.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from deepwise import backend
from deepwise.io.safetensors import load_file, save_file
from deepwise.tensor import Tensor

__all__ = ["load", "save"]

_CHECKPOINT_HINT = ("checkpoints that also hold optimizer state or training progress go through "
                    "deepwise.io.save_checkpoint / load_checkpoint (or the Trainer's checkpoint callback)")


def _check_value(name: str, value) -> None:
    """Refuse anything but a tensor or an array (``save_file`` converts those to host arrays)."""

    if isinstance(value, (Tensor, np.ndarray, np.generic)) or backend.is_array(value):
        return
    if isinstance(value, Mapping):
        raise TypeError(f"dw.save: entry {name!r} is a nested dict; dw.save stores a flat dict of tensors "
                        f"(a model.state_dict()). {_CHECKPOINT_HINT[0].upper()}{_CHECKPOINT_HINT[1:]}.")
    raise TypeError(f"dw.save: entry {name!r} is a {type(value).__name__}; dw.save stores only tensors and "
                    f"arrays (a model.state_dict()); {_CHECKPOINT_HINT}")


def save(obj, path, metadata: dict[str, str] | None = None) -> None:
    """Write a dict of name -> Tensor (or NumPy/CuPy array) to ``path`` as safetensors, atomically.

    ``metadata`` is an optional dict of strings kept in the file header (see ``read_metadata``).
    """
    if not isinstance(obj, Mapping):
        if hasattr(obj, "state_dict"):
            raise TypeError(f"dw.save: got a {type(obj).__name__}; save its weights with "
                            "dw.save(model.state_dict(), path)")
        raise TypeError(f"dw.save: expected a dict of name -> tensor (a model.state_dict()), "
                        f"got {type(obj).__name__}")
    for name, value in obj.items():
        if not isinstance(name, str):
            raise TypeError(f"dw.save: keys must be strings, got {name!r} ({type(name).__name__})")
        _check_value(name, value)
    save_file(obj, path, metadata)


def load(path, device="cpu") -> dict:
    """Read a safetensors file into a dict of name -> Tensor, in the file's order, keeping each
    tensor's dtype; ``device="cuda"`` puts them on the GPU. The file is never unpickled: a corrupt or
    foreign file raises ``SafetensorsError`` (a ValueError) naming the file and the problem."""

    dev = backend.Device(device)
    arrays = load_file(path)
    if dev.type != "cpu":
        arrays = {name: backend.to_device(arr, dev) for name, arr in arrays.items()}
    return {name: Tensor._make(arr) for name, arr in arrays.items()}
