"""ONNX converters of the elementwise ops, activations, reductions, shapes, indexing and comparisons
(registered in ``deepwise.onnx.table``)."""

from __future__ import annotations

import math

import numpy as np

from deepwise.onnx.graph import ExportError, onnx_type
from deepwise.onnx.table import INT64_MAX, converts, dtype_of, operand
from deepwise.tensor import Tensor

__all__ = []


# ------------------------------------------------------------------------------ elementwise
def _binary(op_type):
    def conv(g, node):
        a, b = node.args[:2]
        first = g.value(a) if isinstance(a, Tensor) else None
        second = g.value(b) if isinstance(b, Tensor) else None
        first = first or operand(g, a, second)
        second = second or operand(g, b, first)
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
    return g.op("Log", [g.op("Add", [x, g.scalar(1, dtype_of(g, x))])])


@converts("Rsqrt")
def _rsqrt(g, node):
    return g.op("Reciprocal", [g.op("Sqrt", [g.value(node.args[0])])])


@converts("Square")
def _square(g, node):
    x = g.value(node.args[0])
    return g.op("Mul", [x, x])


@converts("LogAddExp")
def _logaddexp(g, node):
    a, b = (operand(g, v, None) for v in node.args[:2])
    m = g.op("Max", [a, b])
    d = g.op("Neg", [g.op("Abs", [g.op("Sub", [a, b])])])
    one = g.scalar(1, dtype_of(g, a))
    return g.op("Add", [m, g.op("Log", [g.op("Add", [one, g.op("Exp", [d])])])])


@converts("Cast")
def _cast(g, node):
    return g.op("Cast", [g.value(node.args[0])], to=onnx_type(np.dtype(node.args[1])))


@converts("Where")
def _where(g, node):
    cond, a, b = node.args[:3]
    c = g.op("Cast", [operand(g, cond, None)], to=9)
    an = g.value(a) if isinstance(a, Tensor) else None
    bn = g.value(b) if isinstance(b, Tensor) else None
    an = an or operand(g, a, bn)
    bn = bn or operand(g, b, an)
    return g.op("Where", [c, an, bn])


@converts("Clamp")
def _clamp(g, node):
    x, lo, hi = node.args[:3]
    xn = g.value(x)
    ins = [xn, "" if lo is None else operand(g, lo, xn), "" if hi is None else operand(g, hi, xn)]
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
    m = g.op("Cast", [operand(g, mask, None)], to=9)
    return g.op("Where", [m, operand(g, np.asarray(value), xn), xn])


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
    dt = dtype_of(g, x)
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
    dt = dtype_of(g, x)
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
    dt = dtype_of(g, xn)
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
    out = g.op("Mul", [g.value(x), operand(g, scale, g.value(x))])
    if shift is not None:
        out = g.op("Add", [out, operand(g, shift, out)])
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
    dt = dtype_of(g, xn)
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
        grown = [1 if (s == d or s == -1) else int(s) for s, d in zip(node.twin.args[1], xs2)]
        # a size that follows a dynamic axis (bias_k expanded to the batch) is read from the graph input
        value = g.shape_value(target, grown)
        if value is None:
            raise ExportError(f"{g.where()}: expand to {tuple(shape)} grows an axis to a size that follows "
                              "the dynamic axes other than as one of them, which the exporter cannot express")
        return g.op("Expand", [g.value(x), value])
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
    return g.op("Concat", [operand(g, x, None) for x in xs], axis=int(axis) % nd)


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
        ins.append(g.scalar(0 if value is None else value, dtype_of(g, xn)))
    return g.op("Pad", ins, mode=onnx_mode)


@converts("Flip")
def _flip(g, node):
    x, axes = node.args[:2]
    axes = _axes(axes, x.ndim)
    n = len(axes)
    return g.op("Slice", [g.value(x), g.ints([-1] * n), g.ints([-INT64_MAX] * n), g.ints(axes), g.ints([-1] * n)])


@converts("_Tri")
def _tri13(g, node):
    """Before opset 14 (no Trilu): a triangle of a constant (a causal mask made with
    ``generate_square_subsequent_mask``) is folded into a constant; of a computed value, refused."""
    x, k, upper = node.args[:3]
    if x._ctx is not None or g.key_of(x) in g.values:
        raise ExportError(f"{g.where()}: triu/tril of a computed value needs ONNX's Trilu, from opset 14; "
                          f"exporting at {g.opset}")
    return g.const((np.triu if upper else np.tril)(x.array, int(k)))


@converts("_Tri", opset=14)
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
    return g.op("GatherElements", [g.value(x), operand(g, np.asarray(index, np.int64), None)],
                axis=int(axis) % x.ndim)


@converts("ScatterAdd", opset=16)
def _scatter_add(g, node):
    x, axis, index, src = node.args[:4]
    idx = g.value(index) if isinstance(index, Tensor) else g.const(np.asarray(index, np.int64))
    return g.op("ScatterElements", [g.value(x), idx, operand(g, src, g.value(x))], axis=int(axis) % x.ndim,
                reduction="add")


@converts("Embedding")
def _embedding(g, node):
    weight, indices = node.args[:2]
    idx = g.value(indices) if isinstance(indices, Tensor) else g.const(np.asarray(indices, np.int64))
    return g.op("Gather", [g.value(weight), idx], axis=0)


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
    an = an or operand(g, a, bn)
    bn = bn or operand(g, b, an)
    if np_name in ("logical_and", "logical_or", "logical_xor"):
        an, bn = g.op("Cast", [an], to=9), g.op("Cast", [bn], to=9)
    if np_name in _COMPARE:
        return g.op(_COMPARE[np_name], [an, bn])
    if np_name == "not_equal":
        return g.op("Not", [g.op("Equal", [an, bn])])
    if np_name == "floor_divide" and np.dtype(dtype_of(g, an)).kind == "f":
        return g.op("Floor", [g.op("Div", [an, bn])])
    if np_name == "remainder" and np.dtype(dtype_of(g, an)).kind in "iu":
        return g.op("Mod", [an, bn], fmod=0)
    raise ExportError(f"{g.where()}: {np_name} on {np.dtype(dtype_of(g, an))} has no ONNX converter")
