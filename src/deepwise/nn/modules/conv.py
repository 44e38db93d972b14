"""``torch.nn.modules.conv``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.conv``."""

from __future__ import annotations

from deepwise.nn.layers.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d

__all__ = ["Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d"]
