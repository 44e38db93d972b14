"""``GPT``: a decoder-only transformer language model (token + learned position embeddings, pre-norm
blocks of causal self-attention and an MLP, a final LayerNorm, a head over the vocabulary that can
share the token embedding's weights).

    model = GPT(vocab_size=96, block_size=128, n_layer=4, n_head=4, n_embd=128)
    logits = model(ids)                                        # (batch, seq, vocab)
    out = model.generate(ids, max_new_tokens=200, temperature=0.8, top_k=20)   # (batch, seq + 200)

``generate`` keeps each layer's keys and values (a KV cache), so every new token costs one position's
work instead of re-running the whole sequence; ``use_cache=False`` re-runs it (the reference the cache
is tested against: both give the same tokens). Past ``block_size`` tokens the model only sees the last
``block_size``; positions then shift at every step, so the cache is rebuilt from that window each step
(still the same tokens as without a cache).

Sampling draws from ``deepwise.random.generator()`` (or ``generator=``), so a seed fixes the text;
``temperature=0`` picks the most likely token.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend, random
from deepwise.autograd import no_grad
from deepwise.nn import init
from deepwise.nn.containers import ModuleList
from deepwise.nn.layers.activation import GELU
from deepwise.nn.layers.dropout import Dropout
from deepwise.nn.layers.embedding import Embedding
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.norm import LayerNorm
from deepwise.nn.module import Module
from deepwise.ops.attention import scaled_dot_product_attention
from deepwise.ops.linalg import linear
from deepwise.ops.shape import cat
from deepwise.tensor import Tensor

__all__ = ["GPT", "CausalSelfAttention", "GPTBlock"]


class CausalSelfAttention(Module):
    """Multi-head self-attention in which position i sees positions 0..i. ``c_attn`` projects to
    query, key and value at once (stacked in that order on the output dim), ``c_proj`` mixes the heads.

    ``forward(x, past=None) -> (y, (k, v))``: with ``past`` (the keys and values of earlier positions,
    each (batch, heads, P, head_dim)) the new positions attend to those too. Set ``keep_weights = True``
    and each forward leaves its attention weights, a NumPy array (batch, heads, L, P + L), in
    ``last_weights`` (what ``deepwise.diagnostics.attention_maps`` reads)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"CausalSelfAttention: n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_embd, self.n_head, self.dropout = n_embd, n_head, float(dropout)
        self.c_attn = Linear(n_embd, 3 * n_embd, bias=bias)
        self.c_proj = Linear(n_embd, n_embd, bias=bias)
        self.resid_drop = Dropout(dropout)
        self.keep_weights = False
        self.last_weights = None

    def _heads(self, t, B, T):
        return t.reshape(B, T, self.n_head, self.n_embd // self.n_head).transpose(1, 2)

    def forward(self, x, past=None):
        B, T, C = x.shape
        if C != self.n_embd:
            raise ValueError(f"CausalSelfAttention: expected inputs (batch, seq, {self.n_embd}), got {tuple(x.shape)}")
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = self._heads(q, B, T), self._heads(k, B, T), self._heads(v, B, T)
        P = 0
        if past is not None:
            P = past[0].shape[2]
            k, v = cat([past[0], k], dim=2), cat([past[1], v], dim=2)
        p = self.dropout if self.training else 0.0
        if P == 0:
            y = scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        elif T == 1:  # one new position: it sees everything before it
            y = scaled_dot_product_attention(q, k, v, dropout_p=p)
        else:  # several new positions after a past: causal, aligned bottom-right
            xp = backend.get_array_module(q.array)
            allow = xp.arange(P + T)[None, :] <= (P + xp.arange(T))[:, None]
            y = scaled_dot_product_attention(q, k, v, attn_mask=Tensor._make(allow), dropout_p=p)
        if self.keep_weights:
            self.last_weights = _causal_weights(q.array, k.array, P)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.resid_drop(self.c_proj(y)), (k, v)


def _host(a):
    return backend.to_device(a, backend.Device("cpu"))


def _causal_weights(q, k, P):
    """softmax(q k^T / sqrt(d)) with position i (after P past ones) seeing keys 0..P+i, on the host."""
    q, k = _host(q).astype(np.float64), _host(k).astype(np.float64)
    s = q @ np.swapaxes(k, -1, -2) / math.sqrt(q.shape[-1])
    L, S = s.shape[-2:]
    s = np.where(np.arange(S)[None, :] <= (P + np.arange(L))[:, None], s, -np.inf)
    w = np.exp(s - s.max(axis=-1, keepdims=True))
    return (w / w.sum(axis=-1, keepdims=True)).astype(np.float32)


class GPTBlock(Module):
    """Pre-norm transformer block: ``x + attn(ln_1(x))`` then ``x + mlp(ln_2(x))`` (GELU, 4x wide)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln_1 = LayerNorm(n_embd, bias=bias)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, bias)
        self.ln_2 = LayerNorm(n_embd, bias=bias)
        self.mlp_fc = Linear(n_embd, 4 * n_embd, bias=bias)
        self.mlp_act = GELU()
        self.mlp_proj = Linear(4 * n_embd, n_embd, bias=bias)
        self.mlp_drop = Dropout(dropout)

    def forward(self, x, past=None):
        a, kv = self.attn(self.ln_1(x), past)
        x = x + a
        x = x + self.mlp_drop(self.mlp_proj(self.mlp_act(self.mlp_fc(self.ln_2(x)))))
        return x, kv


class GPT(Module):
    """Decoder-only transformer over ``vocab_size`` tokens and contexts of up to ``block_size``.

    ``tie_weights=True`` (default) makes the output head use the token embedding's weight (no
    ``lm_head`` parameter); ``False`` gives a separate ``lm_head`` Linear without bias. Weights start
    as GPT-2's: normal(0, 0.02), the residual projections scaled by 1/sqrt(2 * n_layer), biases zero."""

    def __init__(self, vocab_size: int, block_size: int = 128, n_layer: int = 4, n_head: int = 4,
                 n_embd: int = 128, dropout: float = 0.0, bias: bool = True, tie_weights: bool = True):
        super().__init__()
        for name, value in (("vocab_size", vocab_size), ("block_size", block_size), ("n_layer", n_layer),
                            ("n_head", n_head), ("n_embd", n_embd)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"GPT: {name} must be an int >= 1, got {value!r}")
        self.vocab_size, self.block_size, self.n_layer = vocab_size, block_size, n_layer
        self.n_head, self.n_embd, self.tie_weights = n_head, n_embd, bool(tie_weights)
        self.wte = Embedding(vocab_size, n_embd)
        self.wpe = Embedding(block_size, n_embd)
        self.drop = Dropout(dropout)
        self.blocks = ModuleList([GPTBlock(n_embd, n_head, dropout, bias) for _ in range(n_layer)])
        self.ln_f = LayerNorm(n_embd, bias=bias)
        self.lm_head = None if self.tie_weights else Linear(n_embd, vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self):
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                init.zeros_(p)
            elif name.startswith("ln_") or ".ln_" in name:
                init.ones_(p)
            elif name.endswith("c_proj.weight") or name.endswith("mlp_proj.weight"):
                init.normal_(p, 0.0, 0.02 / math.sqrt(2 * self.n_layer))
            else:
                init.normal_(p, 0.0, 0.02)

    def _run(self, idx, past=None):
        """Logits (B, T, vocab) of ``idx`` (B, T) placed after ``past`` (one (k, v) per block, or None)
        and the keys and values of every block."""
        if idx.ndim != 2:
            raise ValueError(f"GPT: expected token ids of shape (batch, seq), got {tuple(idx.shape)}")
        B, T = idx.shape
        P = 0 if past is None else past[0][0].shape[2]
        if P + T > self.block_size:
            raise ValueError(f"GPT: {P + T} positions exceed block_size={self.block_size}")
        xp = backend.get_array_module(idx.array)
        pos = Tensor._make(xp.arange(P, P + T, dtype=xp.int64))
        x = self.drop(self.wte(idx) + self.wpe(pos))
        cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, None if past is None else past[i])
            cache.append(kv)
        x = self.ln_f(x)
        logits = self.lm_head(x) if self.lm_head is not None else linear(x, self.wte.weight)
        return logits, cache

    def forward(self, idx):
        """Logits (batch, seq, vocab): at each position, the next token's."""
        return self._run(idx)[0]

    def generate(self, idx, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 use_cache: bool = True, generator=None):
        """``idx`` (batch, seq) followed by ``max_new_tokens`` sampled tokens, (batch, seq + new), int64.
        Each token is drawn from softmax(logits / temperature) over the ``top_k`` most likely ones
        (all when None); ``temperature=0`` takes the most likely. Runs in eval mode without a graph."""
        if isinstance(max_new_tokens, bool) or not isinstance(max_new_tokens, (int, np.integer)) or max_new_tokens < 0:
            raise ValueError(f"GPT.generate: max_new_tokens must be an int >= 0, got {max_new_tokens!r}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
            raise ValueError(f"GPT.generate: temperature must be a number >= 0, got {temperature!r}")
        if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
            raise ValueError(f"GPT.generate: top_k must be None or an int >= 1, got {top_k!r}")
        if not isinstance(idx, Tensor):
            idx = Tensor._make(np.asarray(idx, dtype=np.int64))
        if idx.ndim != 2 or idx.shape[1] < 1:
            raise ValueError(f"GPT.generate: idx must be token ids (batch, seq) with seq >= 1, got {tuple(idx.shape)}")
        xp = backend.get_array_module(idx.array)
        seq = idx.array.astype(xp.int64)
        gen = generator or random.generator()
        was_training = self.training
        self.eval()
        try:
            with no_grad():
                cache = None
                for _ in range(int(max_new_tokens)):
                    window = seq[:, -self.block_size:]
                    if not use_cache or cache is None or seq.shape[1] > self.block_size:
                        logits, cache = self._run(Tensor._make(window))
                    else:
                        logits, cache = self._run(Tensor._make(window[:, -1:]), cache)
                    nxt = _sample_rows(logits.array[:, -1], temperature, top_k, gen)
                    seq = xp.concatenate([seq, xp.asarray(nxt)[:, None]], axis=1)
                    if seq.shape[1] > self.block_size:
                        cache = None
        finally:
            self.train(was_training)
        return Tensor._make(seq)

    def __repr__(self):
        return (f"GPT(vocab_size={self.vocab_size}, block_size={self.block_size}, n_layer={self.n_layer}, "
                f"n_head={self.n_head}, n_embd={self.n_embd}, tie_weights={self.tie_weights})")


def _sample_rows(logits, temperature, top_k, gen):
    """One token id per row of ``logits`` (B, V), drawn on the host in float64."""
    z = _host(logits).astype(np.float64)
    if temperature == 0:
        return z.argmax(axis=1).astype(np.int64)
    z = z / temperature
    V = z.shape[1]
    if top_k is not None and top_k < V:
        kth = np.partition(z, V - top_k, axis=1)[:, V - top_k: V - top_k + 1]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max(axis=1, keepdims=True))
    cdf = np.cumsum(p, axis=1)
    u = gen.random(z.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), V - 1).astype(np.int64)
