"""ONNX converters of the layer ops: linear, conv and pool, normalisation, recurrent layers (as ONNX's
LSTM/GRU/RNN, gate order translated) and attention (decomposed); registered in ``deepwise.onnx.table``."""

from __future__ import annotations

import numpy as np

from deepwise.onnx.graph import ExportError
from deepwise.onnx.table import converts, operand
from deepwise.tensor import Tensor

__all__ = []


# ------------------------------------------------------------------------------ linear algebra
@converts("Linear")
def _linear(g, node):
    x, w, b = node.args[:3]
    xn, wn = g.value(x), g.value(w)
    if x.ndim == 2:
        ins = [xn, wn] + ([g.value(b)] if b is not None else [])
        return g.op("Gemm", ins, transB=1)
    out = g.op("MatMul", [xn, g.op("Transpose", [wn], perm=[1, 0])])
    return out if b is None else g.op("Add", [out, g.value(b)])


# ------------------------------------------------------------------------------ conv and pool
def _pads(pads):
    (pt, pb), (pl, pr) = pads
    return [int(pt), int(pl), int(pb), int(pr)]


@converts("Conv2dFn")
def _conv(g, node):
    x, w, b, stride, pads, dil, groups, _out_hw = node.args[:8]
    ins = [g.value(x), g.value(w)] + ([g.value(b)] if b is not None else [])
    return g.op("Conv", ins, strides=[int(s) for s in stride], pads=_pads(pads), dilations=[int(d) for d in dil],
                group=int(groups), kernel_shape=list(w.shape[2:]))


@converts("ConvTranspose2dFn")
def _conv_t(g, node):
    x, w, b, stride, pads, dil, groups, out_hw = node.args[:8]
    k = w.shape[2:]
    p = _pads(pads)
    extra = []
    for i in range(2):
        base = (x.shape[2 + i] - 1) * stride[i] - p[i] - p[i + 2] + dil[i] * (k[i] - 1) + 1
        extra.append(int(out_hw[i] - base))
    ins = [g.value(x), g.value(w)] + ([g.value(b)] if b is not None else [])
    return g.op("ConvTranspose", ins, strides=[int(s) for s in stride], pads=p, dilations=[int(d) for d in dil],
                group=int(groups), kernel_shape=list(k), output_padding=extra if any(extra) else None)


def _ceil(in_hw, k, s, p, d, out_hw):
    for i in range(2):
        floor = (in_hw[i] + 2 * p[i] - d[i] * (k[i] - 1) - 1) // s[i] + 1
        if out_hw[i] != floor:
            return 1
    return 0


@converts("MaxPool2dFn")
def _maxpool(g, node):
    x, k, s, p, d, out_hw, return_indices = node.args[:7]
    if return_indices:
        raise ExportError(f"{g.where()}: max pooling that returns indices is not exported")
    return g.op("MaxPool", [g.value(x)], kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
                dilations=list(d), ceil_mode=_ceil(x.shape[2:], k, s, p, d, out_hw))


@converts("AvgPool2dFn")
def _avgpool(g, node):
    x, k, s, p, out_hw, div = node.args[:6]
    # the op divides each window's sum by its own divisor (padding counted or not, or an override):
    # ONNX's average over the padded window times k*k is that sum
    dt = x.array.dtype
    ceil = _ceil(x.shape[2:], k, s, p, (1, 1), out_hw)
    avg = g.op("AveragePool", [g.value(x)], kernel_shape=list(k), strides=list(s), pads=[p[0], p[1], p[0], p[1]],
               count_include_pad=1, ceil_mode=ceil)
    factor = (k[0] * k[1]) / np.asarray(div, dtype=np.float64)
    if np.allclose(factor, 1.0):
        return avg
    return g.op("Mul", [avg, g.const(factor.astype(dt))])


@converts("AdaptiveMaxPool2dFn")
def _adaptive_max(g, node):
    x, out_hw, return_indices = node.args[:3]
    H, W = x.shape[2:]
    if return_indices:
        raise ExportError(f"{g.where()}: adaptive max pooling that returns indices is not exported")
    if tuple(out_hw) == (1, 1):
        return g.op("GlobalMaxPool", [g.value(x)])
    if H % out_hw[0] or W % out_hw[1]:
        raise ExportError(f"{g.where()}: adaptive max pooling from {(H, W)} to {tuple(out_hw)} has uneven windows, "
                          "which ONNX MaxPool cannot express")
    k = [H // out_hw[0], W // out_hw[1]]
    return g.op("MaxPool", [g.value(x)], kernel_shape=k, strides=k)


@converts("Separable")
def _separable(g, node):
    x = node.args[0]
    kw = node.kwargs
    out = g.value(x)
    if kw.get("ih") is not None or kw.get("iw") is not None:
        if kw.get("ih") is not None:
            out = g.op("Gather", [out, g.const(np.asarray(kw["ih"], np.int64))], axis=2)
        if kw.get("iw") is not None:
            out = g.op("Gather", [out, g.const(np.asarray(kw["iw"], np.int64))], axis=3)
        return out
    dt = x.array.dtype
    if kw.get("ah") is not None:
        out = g.op("MatMul", [g.const(np.asarray(kw["ah"], dt)), out])
    if kw.get("aw") is not None:
        out = g.op("MatMul", [out, g.const(np.ascontiguousarray(np.asarray(kw["aw"], dt).T))])
    return out


# ------------------------------------------------------------------------------ normalisation
def _affine(g, w, b, n, dt):
    wn = g.value(w) if w is not None else g.const(np.ones(n, dt))
    bn = g.value(b) if b is not None else g.const(np.zeros(n, dt))
    return wn, bn


@converts("BatchNorm")
def _batchnorm(g, node):
    x, w, b = node.args[:3]
    kw = node.kwargs
    if kw.get("training") or kw.get("running_mean") is None:
        raise ExportError(f"{g.where()}: batch norm with batch statistics (train mode or "
                          "track_running_stats=False) is not exported; export runs the model in eval mode")
    dt = x.array.dtype
    C = x.shape[1]
    wn, bn = _affine(g, w, b, C, dt)
    stats = []
    for which in ("running_mean", "running_var"):
        arr = kw[which].array if isinstance(kw[which], Tensor) else np.asarray(kw[which])
        stats.append(g.named(f"{node.layer[0]}.{which}", arr))
    mean, var = stats
    return g.op("BatchNormalization", [g.value(x), wn, bn, mean, var], epsilon=float(kw["eps"]))


def _layernorm_decomposed(g, xn, wn, bn, axes, eps, dt):
    mean = g.reduce("ReduceMean", xn, axes, True)
    d = g.op("Sub", [xn, mean])
    var = g.reduce("ReduceMean", g.op("Mul", [d, d]), axes, True)
    y = g.op("Div", [d, g.op("Sqrt", [g.op("Add", [var, g.scalar(eps, dt)])])])
    if wn is not None:
        y = g.op("Mul", [y, wn])
    if bn is not None:
        y = g.op("Add", [y, bn])
    return y


@converts("LayerNorm")
def _layernorm(g, node):
    x, w, b = node.args[:3]
    k, eps = node.kwargs["k"], node.kwargs["eps"]
    dt = x.array.dtype
    axes = list(range(x.ndim - k, x.ndim))
    return _layernorm_decomposed(g, g.value(x), None if w is None else g.value(w),
                                 None if b is None else g.value(b), axes, eps, dt)


@converts("LayerNorm", opset=17)
def _layernorm17(g, node):
    x, w, b = node.args[:3]
    k, eps = node.kwargs["k"], node.kwargs["eps"]
    dt = x.array.dtype
    shape = x.shape[x.ndim - k:]  # LayerNormalization needs a scale and a bias: ones and zeros stand in
    wn = g.value(w) if w is not None else g.const(np.ones(shape, dt))
    bn = g.value(b) if b is not None else g.const(np.zeros(shape, dt))
    return g.op("LayerNormalization", [g.value(x), wn, bn], axis=-k, epsilon=float(eps))


@converts("GroupNorm")
def _groupnorm(g, node):
    x, w, b = node.args[:3]
    G, eps = node.kwargs["num_groups"], node.kwargs["eps"]
    dt = x.array.dtype
    C = x.shape[1]
    xn = g.value(x)
    grouped = g.op("Reshape", [xn, g.ints([0, G, -1])])
    y = _layernorm_decomposed(g, grouped, None, None, [2], eps, dt)
    y = g.op("Reshape", [y, g.op("Shape", [xn])])
    bshape = [C] + [1] * (x.ndim - 2)
    if w is not None:
        y = g.op("Mul", [y, g.op("Reshape", [g.value(w), g.ints(bshape)])])
    if b is not None:
        y = g.op("Add", [y, g.op("Reshape", [g.value(b), g.ints(bshape)])])
    return y


# ------------------------------------------------------------------------------ recurrent layers
def _gates(g, w, order):
    """Split a stacked (n*H, ...) weight in PyTorch's gate order, restack in ONNX's, add the direction axis."""
    n = len(order)
    rows = w.shape[0] // n
    parts = g.split(g.value(w), [rows] * n, 0)
    parts = parts if isinstance(parts, list) else [parts]
    return g.unsqueeze(g.op("Concat", [parts[i] for i in order], axis=0), [0])


def _recurrent(g, node, onnx_op, n_gates, order, n_states, **attrs):
    args = node.args
    x = args[0]
    states = args[1:1 + n_states]
    w_ih, w_hh, b_ih, b_hh, lengths = args[1 + n_states:6 + n_states]
    kw = node.kwargs
    H = w_hh.shape[1]
    dt = w_ih.array.dtype
    xn = g.value(x)
    if kw.get("batch_first"):
        xn = g.op("Transpose", [xn], perm=[1, 0, 2])
    W, R = _gates(g, w_ih, order), _gates(g, w_hh, order)
    if b_ih is None:
        B = g.const(np.zeros((1, 2 * n_gates * H), dt))
    else:
        B = g.unsqueeze(g.op("Concat", [g.squeeze(_gates(g, b_ih, order), [0]),
                                        g.squeeze(_gates(g, b_hh, order), [0])], axis=0), [0])
    T = x.shape[1] if kw.get("batch_first") else x.shape[0]
    if lengths is not None and not np.all(np.asarray(lengths) == T):
        # the lengths arrive as a plain array, computed outside the recorded graph: baking them in
        # would give every later input the example's lengths
        raise ExportError(f"{g.where()}: per-sequence lengths were computed outside the recorded graph "
                          "(from raw arrays), so the exported model could not follow its input; run the "
                          "layer on the whole padded sequences and take each one's output at its last real "
                          "step with tensor ops (as deepwise.recipes.base.state_at_length does)")
    seq_lens = ""
    init = []
    for pos, s in enumerate(states, start=1):
        if pos in node.varying:
            if np.any(np.asarray(s.array if isinstance(s, Tensor) else s)):
                raise ExportError(f"{g.where()}: a non-zero initial state made outside the recorded graph "
                                  "follows the dynamic axes; it cannot be exported")
            s = None  # zeros made to the batch size: ONNX's default initial state
        if s is None:
            init.append("")
        else:
            init.append(g.unsqueeze(g.value(s), [0]))
    ins = [xn, W, R, B, seq_lens] + init
    while ins and ins[-1] == "":
        ins.pop()
    direction = "reverse" if kw.get("reverse") else "forward"
    outs = g.op(onnx_op, ins, n_out=1 + n_states, hidden_size=int(H), direction=direction, **attrs)
    y = g.squeeze(outs[0], [1])  # (T, 1, B, H) -> (T, B, H)
    if kw.get("batch_first"):
        y = g.op("Transpose", [y], perm=[1, 0, 2])
    return [y] + [g.squeeze(o, [0]) for o in outs[1:]]


@converts("LSTMLayer")
def _lstm(g, node):
    # PyTorch stacks gates i, f, g, o; ONNX wants i, o, f, c
    return _recurrent(g, node, "LSTM", 4, [0, 3, 1, 2], 2)


@converts("GRULayer")
def _gru(g, node):
    # PyTorch stacks r, z, n; ONNX wants z, r, h; PyTorch applies the reset gate after W_hn h + b_hn
    return _recurrent(g, node, "GRU", 3, [1, 0, 2], 1, linear_before_reset=1)


@converts("RNNLayer")
def _rnn(g, node):
    act = "Relu" if node.kwargs.get("nonlinearity", "tanh") == "relu" else "Tanh"
    return _recurrent(g, node, "RNN", 1, [0], 1, activations=[act])


# ------------------------------------------------------------------------------ attention
@converts("ScaledDotProductAttention")
def _attention(g, node):
    """softmax(q k^T * scale + bias, masked) v, written out in MatMul/Softmax (ONNX has no such op
    before opset 23). Masked scores are -inf, as in the op; a row with nothing left to attend to
    (every score -inf, from the boolean masks or from -inf in a float mask) gets zero weights and so
    a zero output, as deepwise's op and PyTorch's ``scaled_dot_product_attention`` give, where a
    plain Softmax would give NaN."""
    q, k, v, bias, allow, keep = node.args[:6]
    kw = node.kwargs
    if keep is not None:
        raise ExportError(f"{g.where()}: attention dropout is active; export runs the model in eval mode")
    qn, kn, vn = g.value(q), g.value(k), g.value(v)
    dt = q.array.dtype
    nd = q.ndim
    perm = list(range(nd - 2)) + [nd - 1, nd - 2]
    scores = g.op("MatMul", [qn, g.op("Transpose", [kn], perm=perm)])
    scores = g.op("Mul", [scores, g.scalar(kw["scale"], dt)])
    if bias is not None:
        scores = g.op("Add", [scores, operand(g, bias, scores)])
    neg = g.scalar(-np.inf, dt) if kw.get("causal") or allow is not None else None
    if kw.get("causal"):
        L, S = q.shape[-2], k.shape[-2]
        mask = np.tri(L, S, dtype=bool)  # top-left aligned, as the op (and PyTorch) does
        scores = g.op("Where", [g.const(mask), scores, neg])
    if allow is not None:
        am = allow.array if isinstance(allow, Tensor) else allow  # another op's output, or a constant
        scores = g.op("Where", [g.op("Cast", [g.const(am)], to=9), scores, neg])
    # causal alone leaves key 0 to every query, and so does a constant mask with something in every
    # row; a mask computed in the graph, or a float one, may leave a row nothing
    dead = None
    computed = allow is not None and id(allow.array if isinstance(allow, Tensor) else allow) in g.input_arrays
    constant_ok = allow is None
    if allow is not None and not computed:
        effective = np.asarray(am)
        if kw.get("causal"):
            effective = effective & np.tri(q.shape[-2], k.shape[-2], dtype=bool)
        constant_ok = bool(np.all(effective.any(axis=-1)))
    if bias is not None or not constant_ok:
        dead = g.op("IsInf", [g.reduce("ReduceMax", scores, [nd - 1], True)], detect_positive=0)
        scores = g.op("Where", [dead, g.scalar(0, dt), scores])
    weights = g.op("Softmax", [scores], axis=-1)
    if dead is not None:
        weights = g.op("Where", [dead, g.scalar(0, dt), weights])
    out = g.op("MatMul", [weights, vn])
    if kw.get("need_weights"):
        return [out, weights]
    return [out]
