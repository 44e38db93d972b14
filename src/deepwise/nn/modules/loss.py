"""``torch.nn.modules.loss``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.loss``."""

from __future__ import annotations

from deepwise.nn.layers.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)

__all__ = [
    "L1Loss", "NLLLoss", "KLDivLoss", "MSELoss", "BCELoss", "BCEWithLogitsLoss", "SmoothL1Loss", "HuberLoss",
    "CrossEntropyLoss",
]
