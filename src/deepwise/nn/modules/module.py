"""``torch.nn.modules.module``'s names, for programs that import from there; the classes live in
``deepwise.nn.module``."""

from __future__ import annotations

from deepwise.nn.module import Module

__all__ = ["Module"]
