"""``torch.nn.modules.linear``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.linear, deepwise.nn.layers.shape``."""

from __future__ import annotations

from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.shape import Identity

__all__ = ["Identity", "Linear"]
