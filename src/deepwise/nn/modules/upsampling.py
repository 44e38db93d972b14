"""``torch.nn.modules.upsampling``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.pool``."""

from __future__ import annotations

from deepwise.nn.layers.pool import Upsample

__all__ = ["Upsample"]
