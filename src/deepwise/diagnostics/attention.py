"""What attention looks at: every attention layer's weights for some inputs, per head, and a plain-words
sentence on what each head does.

    maps = dw.diagnostics.attention_maps(model, ids)          # runs model(ids) once, in eval mode
    maps[0].name, maps[0].weights.shape                        # 'blocks.0.attn', (batch, heads, L, S)
    print(describe_attention(maps, tokens=list("hello")))      # "head 2 of layer 1 mostly looks at ..."
    fig = plot_attention_map({"weights": w, "x_tokens": src, "y_tokens": tgt, "title": "..."}, plt)

The layers found are ``nn.MultiheadAttention`` (inside ``nn.Transformer*`` or alone: run with
``need_weights=True, average_attn_weights=False`` for the pass, whatever its caller asked, and
given back what the caller asked for) and any module with a ``keep_weights`` switch and a
``last_weights`` array (``models.GPT``'s ``CausalSelfAttention``). Maps come in the order the layers ran.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.nn.layers import attention as attention_layers
from deepwise.tensor import Tensor

__all__ = ["AttentionMap", "attention_maps", "describe_attention", "describe_head", "plot_attention_map"]


@dataclass
class AttentionMap:
    """One attention layer's weights: ``weights`` (batch, heads, L queries, S keys), rows summing to 1
    (or 0 for a query with nothing to attend to)."""

    name: str
    weights: np.ndarray

    @property
    def num_heads(self) -> int:
        return self.weights.shape[1]


def _host(w):
    if isinstance(w, Tensor):
        w = w.array
    return np.asarray(backend.to_device(w, backend.Device("cpu")), dtype=np.float32)


def attention_maps(model, *inputs, **kwargs) -> list[AttentionMap]:
    """Run ``model(*inputs, **kwargs)`` once (eval mode, no graph) and return the attention weights of
    every attention layer it called, in call order (a layer called twice gives two maps)."""
    found = []
    patched, switched = [], []
    for name, module in model.named_modules():
        if isinstance(module, attention_layers.MultiheadAttention):
            patched.append(module)
            module.__dict__["forward"] = _recording_forward(module, name, found)
        elif hasattr(module, "keep_weights") and hasattr(module, "last_weights"):
            switched.append((name, module, module.keep_weights))
            module.keep_weights = True
            module.__dict__["forward"] = _collecting_forward(module, name, found)
    if not patched and not switched:
        raise ValueError(f"attention_maps: {type(model).__name__} has no attention layers "
                         "(nn.MultiheadAttention, or a module with keep_weights / last_weights)")
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            model(*inputs, **kwargs)
    finally:
        model.train(was_training)
        for module in patched:
            del module.__dict__["forward"]
        for _, module, keep in switched:
            del module.__dict__["forward"]
            module.keep_weights = keep
    return found


def _recording_forward(module, name, found):
    forward = type(module).forward.__get__(module)

    def run(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
            average_attn_weights=True, is_causal=False):
        out, w = forward(query, key, value, key_padding_mask=key_padding_mask, need_weights=True,
                         attn_mask=attn_mask, average_attn_weights=False, is_causal=is_causal)
        arr = _host(w)
        if arr.ndim == 3:  # unbatched input: (heads, L, S)
            arr = arr[None]
        found.append(AttentionMap(name, arr))
        if not need_weights:
            return out, None
        return out, (w.mean(dim=-3) if average_attn_weights else w)

    return run


def _collecting_forward(module, name, found):
    forward = type(module).forward.__get__(module)

    def run(*args, **kwargs):
        out = forward(*args, **kwargs)
        found.append(AttentionMap(name, _host(module.last_weights)))
        return out

    return run


# ------------------------------------------------------------------------------------ in plain words
def describe_head(weights, tokens=None, key_tokens=None) -> str:
    """What one head (``weights`` (L, S) or (batch, L, S)) mostly attends to, as a phrase: the previous
    token, the token itself, the first token, a particular token (when ``key_tokens`` or ``tokens``
    name the keys), the source position that moves along with the query or the source token equal
    to the query's own (cross-attention, with ``tokens`` naming the queries), or
    "spreads its attention" when no pattern takes most of the weight."""
    w = np.asarray(weights, dtype=np.float64)
    if w.ndim == 2:
        w = w[None]
    if w.ndim != 3:
        raise ValueError(f"describe_head: expected weights (L, S) or (batch, L, S), got shape {w.shape}")
    _, L, S = w.shape
    keys = key_tokens if key_tokens is not None else tokens
    rows = w.sum(-1) > 0  # queries that attend to something
    total = max(float(rows.sum()), 1.0)
    i = np.arange(L)[:, None]
    j = np.arange(S)[None, :]
    candidates = []
    if key_tokens is None and L == S:  # self-attention: offsets mean something
        candidates.append((float(w[:, 1:][:, np.arange(L - 1), np.arange(L - 1)].sum()) / max(total - w.shape[0], 1.0),
                           "the previous token"))
        candidates.append((float((w * (i == j)).sum()) / total, "the token itself"))
    if S > 1:
        candidates.append((float(w[:, 1:, 0].sum()) / max(total - w.shape[0], 1.0) if L > 1 else 0.0,
                           "the first token"))
    if key_tokens is not None and L > 1 and S > 1:  # cross-attention: does the focus move with the query?
        focus = w.argmax(-1)
        moves = float(np.mean(np.diff(focus, axis=1) >= 0))
        peak = float(w.max(-1).mean())
        if moves > 0.8 and peak > 0.5 and np.ptp(focus) > 0:
            candidates.append((peak, "the source position that lines up with the output (a monotonic alignment)"))
    share, what = max(candidates, key=lambda c: c[0]) if candidates else (0.0, "")
    if key_tokens is not None and tokens is not None and len(tokens) == L and len(key_tokens) == S:
        same = np.array([[q == k for k in key_tokens] for q in tokens])  # the query's own token among the keys
        copy = float((w * same).sum()) / total
        if copy > share:
            share, what = copy, "the source token equal to the one it writes (copying)"
    if keys is not None and len(keys) == S:
        mass = {}
        for k, tok in enumerate(keys):
            mass[tok] = mass.get(tok, 0.0) + float(w[..., k].sum()) / total
        tok, tok_share = max(mass.items(), key=lambda kv: kv[1])
        n = list(keys).count(tok)
        # a token pattern only when it says more than the positional one (a token seen once at the
        # start is "the first token")
        if n < S and tok_share > share + 0.15 and not (n == 1 and keys[0] == tok and share >= 0.4):
            share, what = tok_share, f"the {tok!r} token{'s' if n > 1 else ''}"
    if share >= 0.4:
        return f"mostly looks at {what} ({100 * share:.0f}% of its attention)"
    ent = -(w * np.log(np.where(w > 0, w, 1.0))).sum(-1)
    spread = float(np.exp(ent[rows]).mean()) if rows.any() else 0.0
    return f"spreads its attention (about {spread:.1f} positions per query; no single pattern above 40%)"


def describe_attention(maps, tokens=None, key_tokens=None, sample: int = 0) -> list[str]:
    """One sentence per head of every map, e.g. "head 3 of layer 1 mostly looks at the previous token
    (62% of its attention)"; layers and heads counted from 1, batch item ``sample``. ``key_tokens``
    (cross-attention) names the keys when they differ from the queries ``tokens``."""
    out = []
    for n, m in enumerate(maps, start=1):
        for h in range(m.num_heads):
            cross = key_tokens is not None and m.weights.shape[-1] == len(key_tokens) and (
                tokens is None or m.weights.shape[-1] != len(tokens) or "cross" in m.name or "multihead" in m.name)
            phrase = describe_head(m.weights[sample, h], tokens=tokens, key_tokens=key_tokens if cross else None)
            out.append(f"head {h + 1} of layer {n} ({m.name}) {phrase}")
    return out


# ------------------------------------------------------------------------------------------ drawing
def plot_attention_map(entry, plt):
    """A heat map of one head (or a mean of heads): ``entry`` is a dict with ``weights`` (L, S), and
    optionally ``x_tokens`` (the S keys, on the horizontal axis), ``y_tokens`` (the L queries) and
    ``title``. Returns the matplotlib figure."""
    w = np.asarray(entry["weights"], dtype=np.float64)
    if w.ndim != 2:
        raise ValueError(f"plot_attention_map: weights must be (L, S), got shape {w.shape}")
    L, S = w.shape
    fig, ax = plt.subplots(figsize=(max(3.0, 0.22 * S + 1.5), max(2.5, 0.22 * L + 1.2)))
    im = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=max(float(w.max()), 1e-9), aspect="auto")
    for axis, toks, n in (("x", entry.get("x_tokens"), S), ("y", entry.get("y_tokens"), L)):
        if toks is not None and len(toks) == n:
            shown = [repr(t)[1:-1] if t.strip() else "\u2423" for t in toks]
            if axis == "x":
                ax.set_xticks(range(n))
                ax.set_xticklabels(shown, fontsize=7, rotation=90)
            else:
                ax.set_yticks(range(n))
                ax.set_yticklabels(shown, fontsize=7)
    ax.set_xlabel(entry.get("x_label", "attended to (keys)"))
    ax.set_ylabel(entry.get("y_label", "attending (queries)"))
    if entry.get("title"):
        ax.set_title(entry["title"], fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    return fig
