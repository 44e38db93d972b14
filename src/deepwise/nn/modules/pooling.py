"""``torch.nn.modules.pooling``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.pool``."""

from __future__ import annotations

from deepwise.nn.layers.pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
)

__all__ = [
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d",
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
]
