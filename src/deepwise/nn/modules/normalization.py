"""``torch.nn.modules.normalization``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.norm``."""

from __future__ import annotations

from deepwise.nn.layers.norm import GroupNorm, LayerNorm

__all__ = ["LayerNorm", "GroupNorm"]
