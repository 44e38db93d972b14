"""``torch.nn.modules.container``'s names, for programs that import from there; the classes live in
``deepwise.nn.containers``."""

from __future__ import annotations

from deepwise.nn.containers import ModuleDict, ModuleList, Sequential

__all__ = ["Sequential", "ModuleList", "ModuleDict"]
