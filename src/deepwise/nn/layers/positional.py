"""Positional encodings: attention is blind to order, so each position's vector is added to the
token embedding at that position.

``SinusoidalPositionalEncoding`` is the fixed encoding of "Attention Is All You Need":
``pe[pos, 2i] = sin(pos / base^(2i / d_model))``, ``pe[pos, 2i + 1] = cos(...)``; nothing to learn.
``LearnedPositionalEncoding`` learns one vector per position (as GPT-2 does), drawn from N(0, 0.02^2).

Both take inputs shaped like the transformer layers' -- (L, N, E), (N, L, E) with ``batch_first``,
or unbatched (L, E) -- and an ``offset``: the position of the first element, so a decoder generating
one token at a time (with cached keys and values) encodes token t at position t.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise.creation import empty
from deepwise.nn import init
from deepwise.nn.layers.dropout import Dropout
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.tensor import Tensor


def _positive(layer, name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{layer}: {name} must be a positive int, got {value!r}")


def sinusoidal_table(max_len, d_model, base=10000.0, dtype=None):
    """The (max_len, d_model) sinusoidal table as a NumPy array (computed in float64)."""
    pos = np.arange(max_len, dtype=np.float64)[:, None]
    rate = np.exp(-math.log(base) * np.arange(0, d_model, 2, dtype=np.float64) / d_model)
    table = np.zeros((max_len, d_model))
    table[:, 0::2] = np.sin(pos * rate)
    table[:, 1::2] = np.cos(pos * rate[: d_model // 2])
    return table.astype(backend.to_dtype(dtype) or backend.DEFAULT_FLOAT)


class _PositionalEncoding(Module):
    def _add(self, x, table, offset):
        name = self._get_name()
        if not isinstance(x, Tensor) or x.ndim not in (2, 3) or x.shape[-1] != self.d_model:
            raise ValueError(
                f"{name}: input of shape {tuple(getattr(x, 'shape', ()))} should be (L, N, {self.d_model}), "
                f"(N, L, {self.d_model}) with batch_first, or (L, {self.d_model})"
            )
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise ValueError(f"{name}: offset must be a non-negative int, got {offset!r}")
        length = x.shape[1] if (x.ndim == 3 and self.batch_first) else x.shape[0]
        if offset + length > self.max_len:
            raise ValueError(
                f"{name}: positions {offset}..{offset + length - 1} go past max_len={self.max_len}; "
                "build the layer with a larger max_len"
            )
        pe = table[offset:offset + length]
        if x.ndim == 3 and not self.batch_first:
            pe = pe.unsqueeze(1)
        return self.dropout(x + pe.to(x.dtype))

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, max_len={self.max_len}" + (", batch_first=True" if self.batch_first else "")


class SinusoidalPositionalEncoding(_PositionalEncoding):
    """x + pe[offset : offset + L], then dropout; ``pe`` is a fixed (max_len, d_model) table kept as a
    non-persistent buffer (rebuilt, not saved: it is not part of ``state_dict``)."""

    def __init__(self, d_model, max_len=5000, dropout=0.0, batch_first=False, base=10000.0, device=None, dtype=None):
        super().__init__()
        _positive(self._get_name(), "d_model", d_model)
        _positive(self._get_name(), "max_len", max_len)
        self.d_model, self.max_len, self.batch_first, self.base = d_model, max_len, batch_first, base
        table = sinusoidal_table(max_len, d_model, base, dtype)
        self.register_buffer("pe", Tensor(table, dtype=table.dtype), persistent=False)
        self.dropout = Dropout(dropout)
        if device is not None:
            self.to(device)

    def forward(self, x, offset=0):
        return self._add(x, self.pe, offset)


class LearnedPositionalEncoding(_PositionalEncoding):
    """x + weight[offset : offset + L], then dropout; ``weight`` (max_len, d_model) is learned."""

    def __init__(self, max_len, d_model, dropout=0.0, batch_first=False, device=None, dtype=None):
        super().__init__()
        _positive(self._get_name(), "max_len", max_len)
        _positive(self._get_name(), "d_model", d_model)
        self.d_model, self.max_len, self.batch_first = d_model, max_len, batch_first
        self.weight = Parameter(empty(max_len, d_model, dtype=backend.to_dtype(dtype) or backend.DEFAULT_FLOAT))
        self.dropout = Dropout(dropout)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.normal_(self.weight, 0.0, 0.02)

    def forward(self, x, offset=0):
        return self._add(x, self.weight, offset)


__all__ = ["LearnedPositionalEncoding", "SinusoidalPositionalEncoding", "sinusoidal_table"]
