"""``MultiheadAttention``: PyTorch's layer -- arguments, state-dict keys, layouts, initialisation and
mask conventions -- over the fused ``scaled_dot_product_attention`` op.

Mask conventions (as PyTorch's ``nn.MultiheadAttention``): a boolean ``attn_mask`` or
``key_padding_mask`` marks with True the positions that may NOT be attended (the opposite of
``F.scaled_dot_product_attention``); a float mask is added to the scores. ``attn_mask`` is (L, S) or
(N * num_heads, L, S); ``key_padding_mask`` is (N, S). A query whose every key is masked gets zero
weights and a zero attention output (so the layer's output is ``out_proj``'s bias there), and a
padded batch stays finite. PyTorch's ``scaled_dot_product_attention`` gives those zeros too; its
``nn.MultiheadAttention`` gives NaN there with ``need_weights=True`` or on its no-grad fast path. An
ONNX export gives the zeros as well (``deepwise.onnx``). The masks are combined with tensor ops, so
an export computes them from the graph's inputs.
"""

from __future__ import annotations

from deepwise import backend
from deepwise.creation import empty, zeros
from deepwise.nn import init
from deepwise.nn.layers.linear import Linear
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.ops.attention import attention
from deepwise.ops.linalg import linear
from deepwise.ops.shape import cat, pad
from deepwise.tensor import Tensor


def _shape(t):
    return tuple(t.shape)


def _mask_kind(layer, name, mask, dtype):
    """'bool' or 'float' for an MHA-style mask; a clear error for any other dtype."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"{layer}: {name} must be a Tensor (bool or {dtype}), got {type(mask).__name__}")
    if mask.dtype == backend.bool_:
        return "bool"
    if backend.is_floating(mask.dtype):
        if mask.dtype != dtype:
            raise TypeError(
                f"{layer}: a float {name} must have the query's dtype {dtype} (it is added to the scores), "
                f"got {mask.dtype}"
            )
        return "float"
    raise TypeError(
        f"{layer}: {name} must be bool (True = not attended) or float (added to the scores), got {mask.dtype}"
    )


def check_attention_masks(layer, attn_mask, key_padding_mask, *, batch, L, S, num_heads, dtype,
                          names=("attn_mask", "key_padding_mask")):
    """Check PyTorch-style attention masks for a layer, naming ``layer`` and the masks (``names``:
    what the caller calls them, e.g. ``src_mask``) in errors with the shapes expected.

    ``batch`` is N, or None for an unbatched input: then ``attn_mask`` is (L, S) or
    (num_heads, L, S) and ``key_padding_mask`` is (S,); batched, (L, S) or (N * num_heads, L, S) and
    (N, S). Returns the masks' kinds ('bool' or 'float', None when absent)."""
    kinds = [None, None]
    if attn_mask is not None:
        kinds[0] = _mask_kind(layer, names[0], attn_mask, dtype)
        stacked = num_heads if batch is None else batch * num_heads
        if _shape(attn_mask) not in ((L, S), (stacked, L, S)):
            what = "num_heads" if batch is None else "N * num_heads"
            raise ValueError(
                f"{layer}: {names[0]} of shape {_shape(attn_mask)} should be (L, S) = ({L}, {S}) or "
                f"({what}, L, S) = ({stacked}, {L}, {S})"
            )
    if key_padding_mask is not None:
        kinds[1] = _mask_kind(layer, names[1], key_padding_mask, dtype)
        want = (S,) if batch is None else (batch, S)
        if _shape(key_padding_mask) != want:
            raise ValueError(
                f"{layer}: {names[1]} of shape {_shape(key_padding_mask)} should be "
                f"{'(S,)' if batch is None else '(N, S)'} = {want}"
            )
    return tuple(kinds)


class MultiheadAttention(Module):
    """Attention with ``num_heads`` heads of size ``embed_dim // num_heads``, as ``torch.nn.MultiheadAttention``.

    Parameters (PyTorch's keys and layouts): ``in_proj_weight`` (3E, E) stacking the q, k and v
    projections -- or, when ``kdim`` or ``vdim`` differ from ``embed_dim``, ``q_proj_weight`` (E, E),
    ``k_proj_weight`` (E, kdim) and ``v_proj_weight`` (E, vdim) -- ``in_proj_bias`` (3E),
    ``out_proj.weight`` / ``out_proj.bias``, and with ``add_bias_kv`` ``bias_k`` and ``bias_v``
    (1, 1, E). Inputs are (L, N, E) -- or (N, L, E) with ``batch_first`` -- or unbatched (L, E).

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``: weights are
    (N, L, S) averaged over heads, (N, num_heads, L, S) with ``average_attn_weights=False``, or
    None when ``need_weights=False``. ``is_causal`` is a hint that ``attn_mask`` is the causal mask
    (it must be given, as in PyTorch). See the module docstring for the masks.
    """

    def __init__(self, embed_dim, num_heads, dropout=0.0, bias=True, add_bias_kv=False, add_zero_attn=False,
                 kdim=None, vdim=None, batch_first=False, device=None, dtype=None):
        super().__init__()
        for name, value in (("embed_dim", embed_dim), ("num_heads", num_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"MultiheadAttention: {name} must be a positive int, got {value!r}")
        if embed_dim % num_heads:
            raise ValueError(
                f"MultiheadAttention: embed_dim {embed_dim} must be divisible by num_heads {num_heads}"
            )
        if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0.0 <= dropout <= 1.0:
            raise ValueError(f"MultiheadAttention: dropout must be a probability in [0, 1], got {dropout!r}")
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        self.embed_dim = embed_dim
        self.kdim = kdim if kdim is not None else embed_dim
        self.vdim = vdim if vdim is not None else embed_dim
        self._qkv_same_embed_dim = self.kdim == embed_dim and self.vdim == embed_dim
        self.num_heads = num_heads
        self.dropout = float(dropout)
        self.batch_first = batch_first
        self.head_dim = embed_dim // num_heads
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(empty(3 * embed_dim, embed_dim, dtype=dtype))
            for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(name, None)
        else:
            self.q_proj_weight = Parameter(empty(embed_dim, embed_dim, dtype=dtype))
            self.k_proj_weight = Parameter(empty(embed_dim, self.kdim, dtype=dtype))
            self.v_proj_weight = Parameter(empty(embed_dim, self.vdim, dtype=dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(empty(3 * embed_dim, dtype=dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, dtype=dtype)
        if add_bias_kv:
            self.bias_k = Parameter(empty(1, 1, embed_dim, dtype=dtype))
            self.bias_v = Parameter(empty(1, 1, embed_dim, dtype=dtype))
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        """PyTorch's initialisation: Xavier-uniform projections, zero projection biases, Xavier-normal
        ``bias_k``/``bias_v``; ``out_proj.weight`` keeps ``Linear``'s default."""
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            for w in (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight):
                init.xavier_uniform_(w)
        if self.in_proj_bias is not None:
            init.constant_(self.in_proj_bias, 0.0)
            init.constant_(self.out_proj.bias, 0.0)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
            init.xavier_normal_(self.bias_v)

    # ------------------------------------------------------------------------------- forward
    def _check_inputs(self, query, key, value):
        name = self._get_name()
        for label, t, width in (("query", query, self.embed_dim), ("key", key, self.kdim), ("value", value, self.vdim)):
            if not isinstance(t, Tensor):
                raise TypeError(f"{name}: {label} must be a Tensor, got {type(t).__name__}")
            if t.ndim != query.ndim or t.ndim not in (2, 3):
                raise ValueError(
                    f"{name}: query, key and value must all be 3-D (batched) or all 2-D (unbatched), got "
                    f"shapes {_shape(query)}, {_shape(key)} and {_shape(value)}"
                )
            if t.shape[-1] != width:
                raise ValueError(
                    f"{name}: {label} of shape {_shape(t)} has {t.shape[-1]} features, expected {width}"
                )
        seq, batch = (1, 0) if self.batch_first else (0, 1)
        if query.ndim == 3 and not query.shape[batch] == key.shape[batch] == value.shape[batch]:
            raise ValueError(
                f"{name}: query {_shape(query)}, key {_shape(key)} and value {_shape(value)} have different "
                f"batch sizes (dim {batch}{', batch_first' if self.batch_first else ''})"
            )
        if key.shape[:-1] != value.shape[:-1]:
            raise ValueError(f"{name}: key of shape {_shape(key)} and value of shape {_shape(value)} differ "
                             "in their sequence or batch dims")

    def _project(self, query, key, value):
        """The q, k, v projections, each (..., E) in the input's layout; one GEMM for self-attention."""
        E = self.embed_dim
        b = self.in_proj_bias
        bq, bk, bv = (None, None, None) if b is None else b.split(E)
        if self._qkv_same_embed_dim:
            if query is key and key is value:
                return linear(query, self.in_proj_weight, b).split(E, dim=-1)
            wq, wk, wv = self.in_proj_weight.split(E)
            if key is value:
                k, v = linear(key, self.in_proj_weight[E:], None if b is None else b[E:]).split(E, dim=-1)
                return linear(query, wq, bq), k, v
        else:
            wq, wk, wv = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        return linear(query, wq, bq), linear(key, wk, bk), linear(value, wv, bv)

    def _heads(self, x, first):
        """(N, L, E) when ``first`` else (L, N, E) -> (N, H, L, D)."""
        a, b = x.shape[0], x.shape[1]
        x = x.reshape(a, b, self.num_heads, self.head_dim)
        return x.permute(0, 2, 1, 3) if first else x.permute(1, 2, 0, 3)

    def forward(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
                average_attn_weights=True, is_causal=False):
        self._check_inputs(query, key, value)
        name = self._get_name()
        batched = query.ndim == 3
        first = self.batch_first or not batched
        if not batched:
            query, key, value = query.unsqueeze(0), key.unsqueeze(0), value.unsqueeze(0)
        N = query.shape[0 if first else 1]
        L = query.shape[1 if first else 0]
        S = key.shape[1 if first else 0]
        H = self.num_heads
        kinds = check_attention_masks(name, attn_mask, key_padding_mask, batch=N if batched else None, L=L, S=S,
                                      num_heads=H, dtype=query.dtype)
        if is_causal and attn_mask is None:
            raise RuntimeError(
                f"{name}: is_causal=True is a hint that attn_mask is the causal mask; pass that mask too "
                "(nn.Transformer.generate_square_subsequent_mask(L) makes it)"
            )
        causal = bool(is_causal) and key_padding_mask is None and not need_weights
        if causal:
            attn_mask = None  # trust the hint: the fused op masks the upper triangle itself
        q, k, v = self._project(query, key, value)
        if self.bias_k is not None:
            seq = 1 if first else 0
            shape = (N, 1, self.embed_dim) if first else (1, N, self.embed_dim)
            k = cat([k, self.bias_k.expand(*shape)], dim=seq)
            v = cat([v, self.bias_v.expand(*shape)], dim=seq)
        q, k, v = self._heads(q, first), self._heads(k, first), self._heads(v, first)
        if self.add_zero_attn:
            z = zeros(N, H, 1, self.head_dim, dtype=k.dtype, device=k.device)
            k, v = cat([k, z], dim=2), cat([v, z], dim=2)
        extra = k.shape[2] - S  # key positions added by bias_kv / zero_attn: never masked

        # the masks are combined with tensor ops (not on raw arrays) so that an exporter records them:
        # ``allow`` is a boolean tensor, True where a key may be attended
        bias, allow = None, None
        if attn_mask is not None:
            m = attn_mask if attn_mask.ndim == 2 else attn_mask.reshape(N, H, L, S)
            if kinds[0] == "bool":
                allow = m.logical_not()
            else:
                bias = m
        if key_padding_mask is not None:
            m = key_padding_mask.reshape(N, 1, 1, S)
            if kinds[1] == "bool":
                keep = m.logical_not()
                allow = keep if allow is None else allow.logical_and(keep)
            else:
                bias = m if bias is None else bias + m
        if extra:
            if allow is not None:
                allow = pad(allow, (0, extra), value=True)
            if bias is not None:
                bias = pad(bias, (0, extra))

        p = self.dropout if self.training else 0.0
        out, weights = attention(q, k, v, attn_mask=bias, dropout_p=p, is_causal=causal, need_weights=need_weights,
                                 bool_mask=None if allow is None else allow.array, op=name)
        out = out.permute(0, 2, 1, 3) if first else out.permute(2, 0, 1, 3)
        out = self.out_proj(out.reshape(out.shape[0], out.shape[1], self.embed_dim))
        if weights is not None and average_attn_weights:
            weights = weights.mean(dim=1)
        if not batched:
            out = out.squeeze(0)
            weights = None if weights is None else weights.squeeze(0)
        return out, weights

    def extra_repr(self) -> str:
        parts = [f"embed_dim={self.embed_dim}", f"num_heads={self.num_heads}"]
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.in_proj_bias is None:
            parts.append("bias=False")
        if self.bias_k is not None:
            parts.append("add_bias_kv=True")
        if self.add_zero_attn:
            parts.append("add_zero_attn=True")
        if not self._qkv_same_embed_dim:
            parts += [f"kdim={self.kdim}", f"vdim={self.vdim}"]
        if self.batch_first:
            parts.append("batch_first=True")
        return ", ".join(parts)


__all__ = ["MultiheadAttention", "check_attention_masks"]
