"""The converter table: each recorded op -> ONNX nodes, per opset.

``CONVERTERS[op name]`` is a list of ``(first opset, function)``; export picks the entry with the
highest first opset not above the target. A function gets the builder and the node (the op's
arguments as it was applied, and its output shapes) and returns one ONNX value name per output.
Opsets 13 to 21 are covered; where ONNX changed an op (reduce axes as an input from 18, Gelu from 20,
LayerNormalization from 17) the table has one entry per side of the change.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise.onnx.graph import ExportError, onnx_type
from deepwise.tensor import Tensor

__all__ = ["CONVERTERS", "MAX_OPSET", "MIN_OPSET", "convert"]

MIN_OPSET, MAX_OPSET = 13, 21
INT64_MAX = np.iinfo(np.int64).max
CONVERTERS: dict[str, list] = {}


def converts(*names, opset=MIN_OPSET):
    def register(fn):
        for name in names:
            CONVERTERS.setdefault(name, []).append((opset, fn))
            CONVERTERS[name].sort(key=lambda e: e[0])
        return fn
    return register


def convert(g, node):
    entries = CONVERTERS.get(node.name)
    layer, kind = node.layer
    if not entries:
        raise ExportError(f"op {node.name} (in layer {layer!r}, {kind}) has no ONNX converter; "
                          f"ops with converters: {', '.join(sorted(CONVERTERS))}")
    usable = [fn for first, fn in entries if first <= g.opset]
    if not usable:
        raise ExportError(f"op {node.name} (in layer {layer!r}, {kind}) needs opset >= {entries[0][0]}, "
                          f"exporting at {g.opset}")
    node.varying = tuple(i for i in node.varying if id(node.args[i]) not in g.input_arrays)  # raw arrays of values
    if node.varying and node.name not in _HANDLE_VARYING:
        raise ExportError(f"{g.where()}: argument {node.varying[0]} is a constant whose shape follows the "
                          "dynamic axes (made outside the recorded graph, e.g. from a shape); it cannot be "
                          "exported with those axes dynamic")
    out = usable[-1](g, node)
    return out if isinstance(out, (list, tuple)) else [out]


_HANDLE_VARYING = {"LSTMLayer", "GRULayer", "RNNLayer", "Reshape", "Expand"}


def _dtype_of(g, name):
    return g.shapes.get(name, ((), np.dtype(np.float32)))[1]


def _operand(g, value, like):
    """The ONNX name of an operand; plain numbers become constants of ``like``'s dtype."""
    if isinstance(value, Tensor):
        return g.value(value)
    arr = np.asarray(value)
    if arr.dtype.kind in "fiub" and like is not None:
        arr = arr.astype(_dtype_of(g, like))
    return g.const(arr)


def _in_shape(node, i=0):
    a = node.args[i]
    return tuple(a.array.shape) if isinstance(a, Tensor) else tuple(np.shape(a))


# ------------------------------------------------------------------------------ elementwise
def _binary(op_type):
    def conv(g, node):
        a, b = node.args[:2]
        first = g.value(a) if isinstance(a, Tensor) else None
        second = g.value(b) if isinstance(b, Tensor) else None
        first = first or _operand(g, a, second)
        second = second or _operand(g, b, first)
        return g.op(op_type, [first, second])
    return conv


for _name, _op in (("Add", "Add"), ("Sub", "Sub"), ("Mul", "Mul"), ("Div", "Div"), ("Pow", "Pow"),
                   ("Maximum", "Max"), ("Minimum", "Min"), ("MatMul", "MatMul")):
    converts(_name)(_binary(_op))

for _name, _op in (("Abs", "Abs"), ("Exp", "Exp"), ("Log", "Log"), ("Sqrt", "Sqrt"), ("Sin", "Sin"),
                   ("Cos", "Cos"), ("Tanh", "Tanh"), ("Sigmoid", "Sigmoid"), ("ReLU", "Relu"),
                   ("Clone", "Identity"), ("ToDevice", "Identity"), ("SafeSqrt", "Sqrt")):
    converts(_name)(lambda g, node, _op=_op: g.op(_op, [g.value(node.args[0])]))


@converts("Log1p")
def _log1p(g, node):
    x = g.value(node.args[0])
    return g.op("Log", [g.op("Add", [x, g.scalar(1, _dtype_of(g, x))])])


@converts("Rsqrt")
def _rsqrt(g, node):
    return g.op("Reciprocal", [g.op("Sqrt", [g.value(node.args[0])])])


@converts("Square")
def _square(g, node):
    x = g.value(node.args[0])
    return g.op("Mul", [x, x])


@converts("LogAddExp")
def _logaddexp(g, node):
    a, b = (_operand(g, v, None) for v in node.args[:2])
    m = g.op("Max", [a, b])
    d = g.op("Neg", [g.op("Abs", [g.op("Sub", [a, b])])])
    one = g.scalar(1, _dtype_of(g, a))
    return g.op("Add", [m, g.op("Log", [g.op("Add", [one, g.op("Exp", [d])])])])


@converts("Cast")
def _cast(g, node):
    return g.op("Cast", [g.value(node.args[0])], to=onnx_type(np.dtype(node.args[1])))


@converts("Where")
def _where(g, node):
    cond, a, b = node.args[:3]
    c = g.op("Cast", [_operand(g, cond, None)], to=9)
    an = g.value(a) if isinstance(a, Tensor) else None
    bn = g.value(b) if isinstance(b, Tensor) else None
    an = an or _operand(g, a, bn)
    bn = bn or _operand(g, b, an)
    return g.op("Where", [c, an, bn])


@converts("Clamp")
def _clamp(g, node):
    x, lo, hi = node.args[:3]
    xn = g.value(x)
    ins = [xn, "" if lo is None else _operand(g, lo, xn), "" if hi is None else _operand(g, hi, xn)]
    if any(isinstance(v, Tensor) or np.ndim(v) for v in (lo, hi) if v is not None):
        out = xn
        if lo is not None:
            out = g.op("Max", [out, ins[1]])
        if hi is not None:
            out = g.op("Min", [out, ins[2]])
        return out
    while ins and ins[-1] == "":
        ins.pop()
    return g.op("Clip", ins)


@converts("MaskedFill")
def _masked_fill(g, node):
    x, mask, value = node.args[:3]
    xn = g.value(x)
    m = g.op("Cast", [_operand(g, mask, None)], to=9)
    return g.op("Where", [m, _operand(g, np.asarray(value), xn), xn])


# ------------------------------------------------------------------------------ activations
@converts("LeakyReLU")
def _leaky(g, node):
    return g.op("LeakyRelu", [g.value(node.args[0])], alpha=float(node.args[1]))


@converts("ELU")
def _elu(g, node):
    return g.op("Elu", [g.value(node.args[0])], alpha=float(node.args[1]))


@converts("GELU")
def _gelu(g, node):
    x = g.value(node.args[0])
    dt = _dtype_of(g, x)
    half, one = g.scalar(0.5, dt), g.scalar(1.0, dt)
    if node.args[1] == "tanh":
        cube = g.op("Mul", [x, g.op("Mul", [x, x])])
        inner = g.op("Mul", [g.scalar(math.sqrt(2 / math.pi), dt),
                             g.op("Add", [x, g.op("Mul", [g.scalar(0.044715, dt), cube])])])
        t = g.op("Tanh", [inner])
    else:
        t = g.op("Erf", [g.op("Mul", [x, g.scalar(1 / math.sqrt(2), dt)])])
    return g.op("Mul", [g.op("Mul", [half, x]), g.op("Add", [one, t])])


@converts("GELU", opset=20)
def _gelu20(g, node):
    return g.op("Gelu", [g.value(node.args[0])], approximate="tanh" if node.args[1] == "tanh" else "none")


@converts("_NormalCdf")
def _normal_cdf(g, node):
    x = g.value(node.args[0])
    dt = _dtype_of(g, x)
    t = g.op("Erf", [g.op("Mul", [x, g.scalar(1 / math.sqrt(2), dt)])])
    return g.op("Mul", [g.scalar(0.5, dt), g.op("Add", [g.scalar(1.0, dt), t])])


@converts("SiLU")
def _silu(g, node):
    x = g.value(node.args[0])
    return g.op("Mul", [x, g.op("Sigmoid", [x])])


@converts("Softplus")
def _softplus(g, node):
    x, beta, threshold = node.args[:3]
    xn = g.value(x)
    dt = _dtype_of(g, xn)
    bx = g.op("Mul", [xn, g.scalar(beta, dt)])
    soft = g.op("Div", [g.op("Softplus", [bx]), g.scalar(beta, dt)])
    return g.op("Where", [g.op("Greater", [bx, g.scalar(threshold, dt)]), xn, soft])


@converts("Softmax")
def _softmax(g, node):
    return g.op("Softmax", [g.value(node.args[0])], axis=int(node.args[1]))


@converts("LogSoftmax")
def _log_softmax(g, node):
    return g.op("LogSoftmax", [g.value(node.args[0])], axis=int(node.args[1]))


@converts("Dropout")
def _dropout(g, node):
    x, scale, shift = node.args[:3]  # recorded only in train mode; a fixed mask is a constant here
    out = g.op("Mul", [g.value(x), _operand(g, scale, g.value(x))])
    if shift is not None:
        out = g.op("Add", [out, _operand(g, shift, out)])
    return out


# ------------------------------------------------------------------------------ reductions
def _axes(axes, ndim):
    if axes is None:
        return list(range(ndim))
    axes = axes if isinstance(axes, (tuple, list)) else (axes,)
    return [int(a) % max(ndim, 1) for a in axes]


@converts("Sum")
def _sum(g, node):
    x, axes, keepdim = node.args[:3]
    return g.reduce("ReduceSum", g.value(x), _axes(axes, x.ndim), keepdim)


@converts("Mean")
def _mean(g, node):
    x, axes, keepdim = node.args[:3]
    return g.reduce("ReduceMean", g.value(x), _axes(axes, x.ndim), keepdim)


@converts("AMax")
def _amax(g, node):
    x, axes, keepdim, use_min = node.args[:4]
    return g.reduce("ReduceMin" if use_min else "ReduceMax", g.value(x), _axes(axes, x.ndim), keepdim)


@converts("LogSumExp")
def _lse(g, node):
    x, axes, keepdim = node.args[:3]
    return g.reduce("ReduceLogSumExp", g.value(x), _axes(axes, x.ndim), keepdim)


@converts("Prod")
def _prod(g, node):
    x, axis, keepdim = node.args[:3]
    return g.reduce("ReduceProd", g.value(x), _axes(axis, x.ndim), keepdim)


@converts("MaxDim")
def _maxdim(g, node):
    x, axis, keepdim, use_min = node.args[:4]
    xn = g.value(x)
    axis = int(axis) % x.ndim
    vals = g.reduce("ReduceMin" if use_min else "ReduceMax", xn, [axis], keepdim)
    idx = g.op("ArgMin" if use_min else "ArgMax", [xn], axis=axis, keepdims=int(keepdim),
               select_last_index=0)
    return [vals, idx]


@converts("Var")
def _var(g, node):
    x, axes, correction, keepdim = node.args[:4]
    xn = g.value(x)
    ax = _axes(axes, x.ndim)
    n = int(np.prod([x.shape[a] for a in ax]))
    dt = _dtype_of(g, xn)
    mean = g.reduce("ReduceMean", xn, ax, True)
    d = g.op("Sub", [xn, mean])
    ss = g.reduce("ReduceSum", g.op("Mul", [d, d]), ax, keepdim)
    return g.op("Div", [ss, g.scalar(max(n - correction, 0), dt)])


@converts("Cumsum")
def _cumsum(g, node):
    x, axis = node.args[:2]
    return g.op("CumSum", [g.value(x), g.const(np.asarray(int(axis), np.int64))])


# ------------------------------------------------------------------------------ shapes
def _reshape_target(g, node):
    """The Reshape target with every dim that follows a dynamic axis kept symbolic: copied from the
    input (0) where it sits at the same place there, else inferred (-1); one such dim at most."""
    x, target = node.args[:2]
    target = [int(t) for t in target]
    if node.twin is None:
        return target
    x2, target2 = node.twin.args[:2]
    out, inferred = [], False
    for j, (t1, t2) in enumerate(zip(target, [int(t) for t in target2])):
        if t1 == t2:
            out.append(t1)
        elif j < x.ndim and x.shape[j] == t1 and x2.shape[j] == t2:
            out.append(0)
        elif not inferred and -1 not in target:
            out.append(-1)
            inferred = True
        else:
            raise ExportError(f"{g.where()}: reshape to {tuple(target)} has more than one dim that follows "
                              "the dynamic axes, which a Reshape target cannot express")
    return out


@converts("Reshape")
def _reshape(g, node):
    return g.op("Reshape", [g.value(node.args[0]), g.ints(_reshape_target(g, node))])


@converts("Permute")
def _permute(g, node):
    return g.op("Transpose", [g.value(node.args[0])], perm=[int(a) for a in node.args[1]])


@converts("Expand")
def _expand(g, node):
    x, shape = node.args[:2]
    xs = (1,) * (len(shape) - x.ndim) + tuple(x.shape)
    target = [1 if (s == d or s == -1) else int(s) for s, d in zip(shape, xs)]
    if node.twin is not None and [int(s) for s in node.twin.args[1]] != [int(s) for s in shape]:
        x2 = node.twin.args[0]
        xs2 = (1,) * (len(shape) - x2.ndim) + tuple(x2.shape)
        for j, (s1, s2) in enumerate(zip(shape, node.twin.args[1])):
            if s1 != s2 and not (xs[j] == s1 and xs2[j] == s2):
                raise ExportError(f"{g.where()}: expand to {tuple(shape)} grows an axis to a size that follows "
                                  "the dynamic axes, which the exporter cannot express")
    return g.op("Expand", [g.value(x), g.ints(target)])


@converts("Repeat")
def _repeat(g, node):
    x, reps = node.args[:2]
    xn = g.value(x)
    if len(reps) > x.ndim:
        xn = g.unsqueeze(xn, list(range(len(reps) - x.ndim)))
    return g.op("Tile", [xn, g.ints(reps)])


@converts("Cat")
def _cat(g, node):
    axis, *xs = node.args
    nd = xs[0].ndim
    return g.op("Concat", [_operand(g, x, None) for x in xs], axis=int(axis) % nd)


@converts("Split")
def _split(g, node):
    x, sizes, axis = node.args[:3]
    outs = g.split(g.value(x), list(sizes), int(axis) % x.ndim)
    return outs if isinstance(outs, list) else [outs]


@converts("Pad")
def _pad(g, node):
    x, widths, mode, value = node.args[:4]
    nd = x.ndim
    widths = list(widths)  # one (before, after) per axis
    if len(widths) != nd:
        raise ExportError(f"{g.where()}: pad widths {widths} for a {nd}-d input")
    pads = [int(w[0]) for w in widths] + [int(w[1]) for w in widths]
    onnx_mode = {"constant": "constant", "reflect": "reflect", "replicate": "edge", "edge": "edge"}.get(mode)
    if onnx_mode is None:
        raise ExportError(f"{g.where()}: pad mode {mode!r} has no ONNX equivalent")
    xn = g.value(x)
    ins = [xn, g.ints(pads)]
    if onnx_mode == "constant":
        ins.append(g.scalar(0 if value is None else value, _dtype_of(g, xn)))
    return g.op("Pad", ins, mode=onnx_mode)


@converts("Flip")
def _flip(g, node):
    x, axes = node.args[:2]
    axes = _axes(axes, x.ndim)
    n = len(axes)
    return g.op("Slice", [g.value(x), g.ints([-1] * n), g.ints([-INT64_MAX] * n), g.ints(axes), g.ints([-1] * n)])


@converts("_Tri")
def _tri(g, node):
    x, k, upper = node.args[:3]
    return g.op("Trilu", [g.value(x), g.const(np.asarray(int(k), np.int64))], upper=int(bool(upper)))


# ------------------------------------------------------------------------------ indexing
@converts("GetItem")
def _getitem(g, node):
    x, index = node.args[:2]
    xn = g.value(x)
    index = index if isinstance(index, tuple) else (index,)
    if any(i is Ellipsis for i in index):
        at = next(n for n, i in enumerate(index) if i is Ellipsis)
        fill = x.ndim - (len(index) - 1 - sum(i is None for i in index))
        index = index[:at] + (slice(None),) * fill + index[at + 1:]
    starts, ends, axes, steps, squeeze, unsq = [], [], [], [], [], []
    gathers = []
    dim = 0
    out_dim = 0
    for item in index:
        if item is None:
            unsq.append(out_dim)
            out_dim += 1
            continue
        if isinstance(item, slice):
            size = x.shape[dim]
            start, stop, step = item.indices(size)
            if item != slice(None):
                if step > 0:
                    stop_v = INT64_MAX if item.stop is None else stop
                else:
                    stop_v = -INT64_MAX if item.stop is None else stop
                starts.append(start if item.start is not None or step < 0 else 0)
                ends.append(stop_v)
                axes.append(dim)
                steps.append(step)
            dim += 1
            out_dim += 1
        elif isinstance(item, (int, np.integer)):
            i = int(item)
            starts.append(i)
            ends.append(i + 1 if i != -1 else INT64_MAX)
            axes.append(dim)
            steps.append(1)
            squeeze.append(dim)
            dim += 1
        else:
            arr = item.array if isinstance(item, Tensor) else np.asarray(item)
            if arr.dtype == bool or arr.ndim != 1:
                raise ExportError(f"{g.where()}: indexing with a {arr.dtype} array of shape {arr.shape} "
                                  "is not supported by the exporter (use integer lists or slices)")
            gathers.append((dim, arr.astype(np.int64)))
            dim += 1
            out_dim += 1
    if len(gathers) > 1:
        raise ExportError(f"{g.where()}: indexing with more than one array is not supported by the exporter")
    out = xn
    if starts:
        out = g.op("Slice", [out, g.ints(starts), g.ints(ends), g.ints(axes), g.ints(steps)])
    for d, arr in gathers:
        out = g.op("Gather", [out, g.const(arr)], axis=d)
    if squeeze:
        out = g.squeeze(out, squeeze)
    if unsq:
        out = g.unsqueeze(out, unsq)
    return out


@converts("Gather")
def _gather(g, node):
    x, axis, index = node.args[:3]
    return g.op("GatherElements", [g.value(x), _operand(g, np.asarray(index, np.int64), None)],
                axis=int(axis) % x.ndim)


@converts("Embedding")
def _embedding(g, node):
    weight, indices = node.args[:2]
    idx = g.value(indices) if isinstance(indices, Tensor) else g.const(np.asarray(indices, np.int64))
    return g.op("Gather", [g.value(weight), idx], axis=0)


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
                          "(from raw arrays), so the exported model could not follow its input; export "
                          "a model that runs on whole (unpadded) sequences")
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
    before opset 23)."""
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
        scores = g.op("Add", [scores, _operand(g, bias, scores)])
    neg = g.scalar(np.finfo(dt).min, dt)
    if kw.get("causal"):
        L, S = q.shape[-2], k.shape[-2]
        mask = np.tri(L, S, dtype=bool)  # top-left aligned, as the op (and PyTorch) does
        scores = g.op("Where", [g.const(mask), scores, neg])
    if allow is not None:
        am = allow.array if isinstance(allow, Tensor) else np.asarray(allow)
        scores = g.op("Where", [g.op("Cast", [g.const(am)], to=9), scores, neg])
    weights = g.op("Softmax", [scores], axis=-1)
    out = g.op("MatMul", [weights, vn])
    if kw.get("need_weights"):
        return [out, weights]
    return [out]


# ------------------------------------------------------------------------------ comparisons and masks
_COMPARE = {"equal": "Equal", "less": "Less", "less_equal": "LessOrEqual", "greater": "Greater",
            "greater_equal": "GreaterOrEqual", "logical_and": "And", "logical_or": "Or", "logical_xor": "Xor"}


@converts("Compare")
def _compare(g, node):
    a, b, np_name = node.args[:3]
    an = g.value(a) if isinstance(a, Tensor) else None
    if np_name == "logical_not":
        return g.op("Not", [g.op("Cast", [an], to=9)])
    bn = g.value(b) if isinstance(b, Tensor) else None
    an = an or _operand(g, a, bn)
    bn = bn or _operand(g, b, an)
    if np_name in ("logical_and", "logical_or", "logical_xor"):
        an, bn = g.op("Cast", [an], to=9), g.op("Cast", [bn], to=9)
    if np_name in _COMPARE:
        return g.op(_COMPARE[np_name], [an, bn])
    if np_name == "not_equal":
        return g.op("Not", [g.op("Equal", [an, bn])])
    if np_name == "floor_divide" and np.dtype(_dtype_of(g, an)).kind == "f":
        return g.op("Floor", [g.op("Div", [an, bn])])
    if np_name == "remainder" and np.dtype(_dtype_of(g, an)).kind in "iu":
        return g.op("Mod", [an, bn], fmod=0)
    raise ExportError(f"{g.where()}: {np_name} on {np.dtype(_dtype_of(g, an))} has no ONNX converter")
