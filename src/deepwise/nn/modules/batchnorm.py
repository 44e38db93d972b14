"""``torch.nn.modules.batchnorm``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.norm``."""

from __future__ import annotations

from deepwise.nn.layers.norm import BatchNorm1d, BatchNorm2d, SyncBatchNorm

__all__ = ["BatchNorm1d", "BatchNorm2d", "SyncBatchNorm"]
