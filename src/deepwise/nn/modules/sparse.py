"""``torch.nn.modules.sparse``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.embedding``."""

from __future__ import annotations

from deepwise.nn.layers.embedding import Embedding

__all__ = ["Embedding"]
