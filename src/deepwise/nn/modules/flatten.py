"""``torch.nn.modules.flatten``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.shape``."""

from __future__ import annotations

from deepwise.nn.layers.shape import Flatten, Unflatten

__all__ = ["Flatten", "Unflatten"]
