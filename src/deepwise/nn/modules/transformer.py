"""``torch.nn.modules.transformer``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.transformer``."""

from __future__ import annotations

from deepwise.nn.layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = ["Transformer", "TransformerEncoder", "TransformerDecoder", "TransformerEncoderLayer",
           "TransformerDecoderLayer"]
