"""Dropout layers: active in training mode, the identity after ``model.eval()``."""

from __future__ import annotations

import warnings

from deepwise.nn.module import Module
from deepwise.ops.dropout import alpha_dropout, dropout, dropout1d, dropout2d


class _DropoutNd(Module):
    _fn = None

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ValueError(f"{type(self).__name__}: probability p must be between 0 and 1, got {p!r}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return type(self)._fn(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zero each element with probability ``p`` while training; survivors are scaled by 1/(1-p)."""

    _fn = staticmethod(dropout)


class Dropout1d(_DropoutNd):
    """Zero whole channels of (N, C, L) inputs with probability ``p`` while training."""

    _fn = staticmethod(dropout1d)


class Dropout2d(_DropoutNd):
    """Zero whole feature maps of (N, C, H, W) or (C, H, W) inputs with probability ``p`` while
    training. As in PyTorch, a 2-D input warns and gets element-wise dropout, and a 3-D input warns
    and is read as (N, C, L) (channel-wise 1-D dropout)."""

    _fn = staticmethod(dropout2d)

    def forward(self, input):
        if input.ndim == 2:
            warnings.warn(
                "Dropout2d: received a 2-D input, which is deprecated (PyTorch too will reject it): "
                "dropping single elements as Dropout does; use nn.Dropout for 2-D inputs, and "
                "Dropout2d for (N, C, H, W) or (C, H, W) feature maps", UserWarning, stacklevel=2)
            return dropout(input, self.p, self.training)
        if input.ndim == 3:
            warnings.warn(
                "Dropout2d: received a 3-D input and, as PyTorch does, reading it as (N, C, L) with "
                "channel-wise 1-D dropout; use nn.Dropout1d to say so, or add the batch dim for "
                "(C, H, W) feature maps", UserWarning, stacklevel=2)
            return dropout1d(input, self.p, self.training)
        return dropout2d(input, self.p, self.training)


class AlphaDropout(_DropoutNd):
    """Dropout that keeps SELU activations' mean and variance."""

    _fn = staticmethod(alpha_dropout)


__all__ = ["AlphaDropout", "Dropout", "Dropout1d", "Dropout2d"]
