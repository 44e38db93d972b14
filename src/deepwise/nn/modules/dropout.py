"""``torch.nn.modules.dropout``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.dropout``."""

from __future__ import annotations

from deepwise.nn.layers.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d

__all__ = ["Dropout", "Dropout1d", "Dropout2d", "AlphaDropout"]
