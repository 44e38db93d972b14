"""Transformer layers as in ``torch.nn``: ``TransformerEncoderLayer``, ``TransformerEncoder``,
``TransformerDecoderLayer``, ``TransformerDecoder`` and ``Transformer``, with PyTorch's arguments,
defaults, submodule names (so state-dict keys match) and mask conventions (those of
``nn.MultiheadAttention``: boolean True = not attended, float masks are added).

Post-norm (``norm_first=False``, the 2017 paper and PyTorch's default) computes
``x = norm(x + block(x))``; pre-norm (``norm_first=True``) computes ``x = x + block(norm(x))``.
"""

from __future__ import annotations

import copy

import numpy as np

from deepwise import backend
from deepwise.creation import full
from deepwise.nn import init
from deepwise.nn.containers import ModuleList
from deepwise.nn.layers.attention import MultiheadAttention, check_attention_masks
from deepwise.nn.layers.dropout import Dropout
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.norm import LayerNorm
from deepwise.nn.module import Module
from deepwise.ops.activation import gelu, relu
from deepwise.ops.shape import triu
from deepwise.tensor import Tensor

_ACTIVATIONS = {"relu": relu, "gelu": gelu}


def _activation(layer, activation):
    if isinstance(activation, str):
        if activation not in _ACTIVATIONS:
            raise ValueError(f"{layer}: activation should be 'relu' or 'gelu' (or a callable), got {activation!r}")
        return _ACTIVATIONS[activation]
    if not callable(activation):
        raise TypeError(f"{layer}: activation must be 'relu', 'gelu' or a callable, got {type(activation).__name__}")
    return activation


def generate_square_subsequent_mask(sz, device=None, dtype=None):
    """The (sz, sz) causal mask: -inf above the diagonal (a position may not attend to later ones),
    0 elsewhere; float32 unless ``dtype`` says otherwise."""
    dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
    return triu(full((sz, sz), float("-inf"), dtype=dtype, device=device), diagonal=1)


def _is_causal_mask(mask, size):
    """Whether ``mask`` (float or bool, (size, size) or with leading ones) is the causal mask."""
    if mask is None or mask.shape[-2:] != (size, size) or any(n != 1 for n in mask.shape[:-2]):
        return False
    a = mask.array.reshape(size, size)
    xp = backend.get_array_module(a)
    upper = xp.triu(xp.ones((size, size), dtype=bool), 1)
    if a.dtype == bool:
        return bool(xp.array_equal(a, upper))
    return bool(xp.all(a[upper] == -np.inf)) and bool(xp.all(a[~upper] == 0))


def _detect_causal(mask, is_causal, size):
    """PyTorch's rule: an explicit ``is_causal`` is kept; None means "is ``mask`` the causal mask?"."""
    if is_causal is not None:
        return bool(is_causal)
    return _is_causal_mask(mask, size)


def _dims(x, batch_first):
    """(batch or None when unbatched, sequence length) of an (L, N, E) / (N, L, E) / (L, E) input."""
    if x.ndim == 2:
        return None, x.shape[0]
    return (x.shape[0], x.shape[1]) if batch_first else (x.shape[1], x.shape[0])


def _check_input(layer, name, x, d_model):
    if not isinstance(x, Tensor):
        raise TypeError(f"{layer}: {name} must be a Tensor, got {type(x).__name__}")
    if x.ndim not in (2, 3) or x.shape[-1] != d_model:
        raise ValueError(
            f"{layer}: {name} of shape {tuple(x.shape)} should be (L, N, d_model), (N, L, d_model) with "
            f"batch_first, or unbatched (L, d_model), with d_model = {d_model}"
        )


class TransformerEncoderLayer(Module):
    """Self-attention then a feed-forward block (linear1 -> activation -> dropout -> linear2), each
    with dropout, a residual connection and layer norm; as ``torch.nn.TransformerEncoderLayer``.

    Submodules: ``self_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``, ``norm2``,
    ``dropout1``, ``dropout2``. ``activation`` is 'relu', 'gelu' or any callable.
    ``forward(src, src_mask=None, src_key_padding_mask=None, is_causal=False)``."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.activation = _activation(self._get_name(), activation)
        if device is not None:
            self.to(device)

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        name = self._get_name()
        attn = self.self_attn
        _check_input(name, "src", src, attn.embed_dim)
        batch, length = _dims(src, attn.batch_first)
        check_attention_masks(name, src_mask, src_key_padding_mask, batch=batch, L=length, S=length,
                              num_heads=attn.num_heads, dtype=src.dtype, names=("src_mask", "src_key_padding_mask"))
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, need_weights=False,
                           is_causal=is_causal)[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))


class TransformerDecoderLayer(Module):
    """Self-attention, attention over the encoder's ``memory``, then the feed-forward block, each with
    dropout, a residual connection and layer norm; as ``torch.nn.TransformerDecoderLayer``.

    Submodules: ``self_attn``, ``multihead_attn``, ``linear1``, ``dropout``, ``linear2``, ``norm1``-
    ``norm3``, ``dropout1``-``dropout3``. ``forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False)``."""

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation=relu, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                            dtype=dtype)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias, batch_first=batch_first,
                                                 dtype=dtype)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, dtype=dtype)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, dtype=dtype)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = _activation(self._get_name(), activation)
        if device is not None:
            self.to(device)

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=False, memory_is_causal=False):
        name = self._get_name()
        attn = self.self_attn
        _check_input(name, "tgt", tgt, attn.embed_dim)
        _check_input(name, "memory", memory, attn.embed_dim)
        batch, T = _dims(tgt, attn.batch_first)
        mem_batch, S = _dims(memory, attn.batch_first)
        if batch != mem_batch:
            raise ValueError(
                f"{name}: tgt of shape {tuple(tgt.shape)} and memory of shape {tuple(memory.shape)} have "
                f"different batch sizes ({batch} and {mem_batch})"
            )
        check_attention_masks(name, tgt_mask, tgt_key_padding_mask, batch=batch, L=T, S=T, num_heads=attn.num_heads,
                              dtype=tgt.dtype, names=("tgt_mask", "tgt_key_padding_mask"))
        check_attention_masks(name, memory_mask, memory_key_padding_mask, batch=batch, L=T, S=S,
                              num_heads=attn.num_heads, dtype=tgt.dtype,
                              names=("memory_mask", "memory_key_padding_mask"))
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask, tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask, memory_key_padding_mask, memory_is_causal)
            x = x + self._ff_block(self.norm3(x))
        else:
            x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
            x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask, memory_is_causal))
            x = self.norm3(x + self._ff_block(x))
        return x

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask, is_causal=is_causal,
                           need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, mem, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, mem, mem, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                                is_causal=is_causal, need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))


def _clones(layer, n, owner):
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{owner}: num_layers must be a positive int, got {n!r}")
    return ModuleList([copy.deepcopy(layer) for _ in range(n)])


class TransformerEncoder(Module):
    """``num_layers`` deep copies of ``encoder_layer`` (``layers.0`` ... in the state dict), then the
    optional ``norm``; as ``torch.nn.TransformerEncoder``. ``forward(src, mask=None,
    src_key_padding_mask=None, is_causal=None)``: ``is_causal=None`` detects a causal ``mask``.
    ``enable_nested_tensor`` and ``mask_check`` are accepted for PyTorch compatibility (deepwise has
    no nested tensors; outputs at padded positions are computed, not zeroed)."""

    def __init__(self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(f"TransformerEncoder: encoder_layer must be a Module, got {type(encoder_layer).__name__}")
        self.layers = _clones(encoder_layer, num_layers, "TransformerEncoder")
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor = enable_nested_tensor
        self.mask_check = mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        first = self.layers[0]
        batch_first = first.self_attn.batch_first if hasattr(first, "self_attn") else False
        is_causal = _detect_causal(mask, is_causal, _dims(src, batch_first)[1])
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, is_causal=is_causal, src_key_padding_mask=src_key_padding_mask)
        return out if self.norm is None else self.norm(out)


class TransformerDecoder(Module):
    """``num_layers`` deep copies of ``decoder_layer``, then the optional ``norm``; as
    ``torch.nn.TransformerDecoder``. ``forward(tgt, memory, tgt_mask=None, memory_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False)``."""

    def __init__(self, decoder_layer, num_layers, norm=None):
        super().__init__()
        if not isinstance(decoder_layer, Module):
            raise TypeError(f"TransformerDecoder: decoder_layer must be a Module, got {type(decoder_layer).__name__}")
        self.layers = _clones(decoder_layer, num_layers, "TransformerDecoder")
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None, memory_is_causal=False):
        first = self.layers[0]
        batch_first = first.self_attn.batch_first if hasattr(first, "self_attn") else False
        tgt_is_causal = _detect_causal(tgt_mask, tgt_is_causal, _dims(tgt, batch_first)[1])
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)
        return out if self.norm is None else self.norm(out)


class Transformer(Module):
    """The encoder-decoder transformer of "Attention Is All You Need", as ``torch.nn.Transformer``:
    ``encoder`` (a ``TransformerEncoder`` ending in a LayerNorm) and ``decoder`` (likewise), every
    weight matrix Xavier-uniform initialised.

    ``forward(src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
    tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
    memory_is_causal=False)`` returns the decoder output, shaped as ``tgt``. Use
    ``Transformer.generate_square_subsequent_mask(T)`` for the causal ``tgt_mask``."""

    def __init__(self, d_model=512, nhead=8, num_encoder_layers=6, num_decoder_layers=6, dim_feedforward=2048,
                 dropout=0.1, activation=relu, custom_encoder=None, custom_decoder=None, layer_norm_eps=1e-5,
                 batch_first=False, norm_first=False, bias=True, device=None, dtype=None):
        super().__init__()
        if custom_encoder is not None:
            self.encoder = custom_encoder
        else:
            layer = TransformerEncoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.encoder = TransformerEncoder(layer, num_encoder_layers, norm)
        if custom_decoder is not None:
            self.decoder = custom_decoder
        else:
            layer = TransformerDecoderLayer(d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                                            batch_first, norm_first, bias, dtype=dtype)
            norm = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, dtype=dtype)
            self.decoder = TransformerDecoder(layer, num_decoder_layers, norm)
        self.d_model = d_model
        self.nhead = nhead
        self.batch_first = batch_first
        self._reset_parameters()
        if device is not None:
            self.to(device)

    def _reset_parameters(self):
        for p in self.parameters():
            if p.ndim > 1:
                init.xavier_uniform_(p)

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None, src_key_padding_mask=None,
                tgt_key_padding_mask=None, memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal=False):
        name = self._get_name()
        for label, x in (("src", src), ("tgt", tgt)):
            if not isinstance(x, Tensor):
                raise TypeError(f"{name}: {label} must be a Tensor, got {type(x).__name__}")
        batched = src.ndim == 3
        axis = 0 if self.batch_first else 1
        if batched and (tgt.ndim != 3 or src.shape[axis] != tgt.shape[axis]):
            raise ValueError(
                f"{name}: src of shape {tuple(src.shape)} and tgt of shape {tuple(tgt.shape)} must have the same "
                f"batch size (dim {axis}{' with batch_first' if self.batch_first else ''})"
            )
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ValueError(
                f"{name}: src {tuple(src.shape)} and tgt {tuple(tgt.shape)} must both have d_model = "
                f"{self.d_model} features in their last dim"
            )
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask, is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask, memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    generate_square_subsequent_mask = staticmethod(generate_square_subsequent_mask)

    def extra_repr(self) -> str:
        return f"d_model={self.d_model}, nhead={self.nhead}" + (", batch_first=True" if self.batch_first else "")


__all__ = [
    "Transformer",
    "TransformerDecoder",
    "TransformerDecoderLayer",
    "TransformerEncoder",
    "TransformerEncoderLayer",
    "generate_square_subsequent_mask",
]
