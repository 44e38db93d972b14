"""Graph capture for ONNX export: run the model once and read the graph autograd recorded.

The model runs in eval mode with every input made a graph leaf (floating inputs ``requires_grad``),
inside ``autograd.function.keep_calls()`` so each recorded node keeps the arguments it was applied
with. Walking back from the outputs gives the ops in order; forward hooks on every submodule label
each node with the innermost layer that produced it, for error messages. Parameters and buffers are
recognised by their arrays and named by their state-dict keys.
"""

from __future__ import annotations

import numpy as np

from deepwise.tensor import Tensor

__all__ = ["Builder", "ExportError", "Node", "array_key", "capture"]


class ExportError(RuntimeError):
    """The model cannot be exported: an op without a converter, or a setting ONNX cannot express."""


class Node:
    """One recorded op: its Function, the arguments it was applied with and the tensors it made."""

    __slots__ = ("args", "ctx", "kwargs", "layer", "name", "outputs", "twin", "varying")

    def __init__(self, ctx, layer):
        self.ctx = ctx
        self.name = ctx.fn.__name__
        self.args, self.kwargs = ctx.call
        self.layer = layer
        self.outputs = {}  # output index -> the array it made (where some later op or the caller used it)
        self.twin = None   # the same node recorded at another size of the dynamic axes
        self.varying = ()  # positions of constant arguments whose shape changes with the dynamic axes

    def pair(self, twin, input_ids):
        """Link the node recorded at other dynamic sizes; note the constants whose shape changed
        (``input_ids``: ids of the graph inputs and their arrays, which are not constants)."""
        self.twin = twin
        varying = []
        for i, (a, b) in enumerate(zip(self.args, twin.args)):
            if isinstance(a, Tensor) and (a._ctx is not None or id(a) in input_ids):
                continue
            if id(a) in input_ids:
                continue
            if np.shape(a.array if isinstance(a, Tensor) else a) != np.shape(b.array if isinstance(b, Tensor) else b):
                varying.append(i)
        self.varying = tuple(varying)


def _label_hooks(labels, name, kind, holder):
    """Hooks that label every node made during a module's forward (and not yet labelled by one of
    its submodules, which finish first) with that module."""
    starts = []

    def pre(module, inputs):
        starts.append(len(holder["made"]))

    def post(module, inputs, output):
        made = holder["made"]
        for t in made[starts.pop():]:
            if t._ctx is not None and id(t._ctx) not in labels:
                labels[id(t._ctx)] = (name, kind)

    return pre, post


def capture(model, forward, inputs, keep_calls):
    """Run ``forward(*inputs)`` (``model`` or one of its methods) recording the graph; returns
    (outputs as a tuple, nodes in order)."""
    labels, holder = {}, {"made": []}
    handles = []
    for name, module in model.named_modules():
        pre, post = _label_hooks(labels, name or type(model).__name__, type(module).__name__, holder)
        handles.append(module.register_forward_pre_hook(pre))
        handles.append(module.register_forward_hook(post))
    try:
        with keep_calls() as made_tensors:
            holder["made"] = made_tensors
            out = forward(*inputs)
    finally:
        for h in handles:
            h.remove()
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if not isinstance(o, Tensor):
            raise ExportError(f"the model returned a {type(o).__name__}; export needs tensors (or a tuple of them)")
    producer = {id(t.array): t for t in made_tensors}  # raw array -> the tensor (and node) that made it

    def sources(ctx):
        for t in ctx.inputs or ():
            if t is not None and t._ctx is not None:
                yield t
        args, kwargs = ctx.call if ctx.call is not None else ((), {})
        for a in (*args, *kwargs.values()):
            if not isinstance(a, Tensor) and id(a) in producer:
                yield producer[id(a)]

    order, seen = [], set()
    for o in outs:  # iterative post-order over the recorded contexts
        if o._ctx is None:
            continue
        stack = [(o._ctx, False)]
        while stack:
            ctx, done = stack.pop()
            if done:
                order.append(ctx)
                continue
            if id(ctx) in seen:
                continue
            seen.add(id(ctx))
            stack.append((ctx, True))
            for t in sources(ctx):
                if id(t._ctx) not in seen:
                    stack.append((t._ctx, False))
    made = {}  # id(ctx) -> {output index: array}, for ops that receive another op's raw array
    for ctx in order:
        for t in sources(ctx):
            made.setdefault(id(t._ctx), {})[t._out_index] = t.array
    for o in outs:
        if o._ctx is not None:
            made.setdefault(id(o._ctx), {})[o._out_index] = o.array
    nodes = []
    for ctx in order:
        if ctx.call is None:
            raise ExportError(f"op {ctx.fn.__name__} was recorded without its arguments")
        nodes.append(Node(ctx, labels.get(id(ctx), ("<model>", type(model).__name__))))
        nodes[-1].outputs = made.get(id(ctx), {})
    return tuple(outs), nodes


def array_key(arr):
    """Where an array's data sits, its shape and dtype: equal for an array and a plain view of it."""
    if not isinstance(arr, np.ndarray):
        return None
    return (arr.__array_interface__["data"][0], arr.shape, arr.strides, arr.dtype.str)


_ONNX_TYPES = {"float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7,
               "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13}


def onnx_type(dtype) -> int:
    name = np.dtype(dtype).name
    if name not in _ONNX_TYPES:
        raise ExportError(f"dtype {name} has no ONNX tensor type")
    return _ONNX_TYPES[name]


class Builder:
    """Collects ONNX nodes and initializers; names every value."""

    def __init__(self, helper, numpy_helper, opset, names):
        self.helper, self.numpy_helper = helper, numpy_helper
        self.opset = opset
        self.nodes = []
        self.initializers = {}   # name -> array
        self.names = names       # id(array) (or array_key) -> state-dict key
        self.keys = set(names.values())
        self.values = {}         # value key -> name
        self.shapes = {}         # value name -> (shape, dtype), where known
        self._consts = {}
        self.input_arrays = {}   # id(array) -> graph input name
        self._n = 0
        self.current = None      # the node being converted (for error messages)
        self.dynamic = []        # (graph input name, axis, dim name, size in the example) per dynamic axis
        self._dims = {}

    # ---------------------------------------------------------------- naming
    def fresh(self, hint):
        self._n += 1
        return f"{hint}_{self._n}"

    def key_of(self, t: Tensor):
        return ("out", id(t._ctx), t._out_index) if t._ctx is not None else ("leaf", id(t))

    def bind(self, t: Tensor, name):
        self.values[self.key_of(t)] = name
        self.input_arrays[id(t.array)] = name  # ops that take an input's raw array (embedding indices)
        self.shapes[name] = (tuple(t.array.shape), t.array.dtype)

    def value(self, t):
        """The ONNX name of tensor ``t``: a graph input, an op's output, a parameter or buffer (named
        by its state-dict key) or a constant."""
        if not isinstance(t, Tensor):
            return self.const(np.asarray(t))
        key = self.key_of(t)
        if key in self.values:
            return self.values[key]
        if t._ctx is not None:
            raise ExportError(f"{self.where()}: an input of the op was never computed in the graph")
        name = self.const(t.array)
        self.values[key] = name
        self.shapes[name] = (tuple(t.array.shape), t.array.dtype)
        return name

    def const(self, arr, hint="const"):
        key = id(arr)
        if key in self.input_arrays:
            return self.input_arrays[key]
        arr = np.asarray(arr)
        key = id(arr)
        if key in self.input_arrays:
            return self.input_arrays[key]
        name = self.names.get(key) or self.names.get(array_key(arr))
        if name is not None:
            if name not in self.initializers:
                self.initializers[name] = np.ascontiguousarray(arr)
            self.shapes[name] = (arr.shape, arr.dtype)
            return name
        if arr.size <= 64:  # small constants are shared by value
            vkey = (arr.dtype.str, arr.shape, arr.tobytes())
            if vkey in self._consts:
                return self._consts[vkey]
        name = self.fresh(hint)
        self.initializers[name] = np.ascontiguousarray(arr)
        self.shapes[name] = (arr.shape, arr.dtype)
        if arr.size <= 64:
            self._consts[vkey] = name
        return name

    def named(self, key, arr):
        """``arr`` as the initializer called ``key`` when that is a state-dict key (a copy of a buffer
        that an op received, such as batch norm's running statistics), else as a constant."""
        if key in self.keys:
            if key not in self.initializers:
                self.initializers[key] = np.ascontiguousarray(arr)
                self.shapes[key] = (arr.shape, arr.dtype)
            return key
        return self.const(arr)

    # ---------------------------------------------------------------- sizes that follow the dynamic axes
    def _dim(self, size, grown):
        """A 1-element int64 value holding the size of the dynamic input axis that a size ``size``
        (``grown`` when the dynamic axes were one longer) follows; None when none does or it is unclear."""
        if grown != size + 1:
            return None
        found = [(name, axis) for name, axis, _, n in self.dynamic if n == size]
        if not found or len({dim for _, _, dim, n in self.dynamic if n == size}) > 1:
            return None
        if found[0] not in self._dims:
            name, axis = found[0]
            self._dims[found[0]] = self.op("Gather", [self.op("Shape", [name]), self.ints([axis])], axis=0)
        return self._dims[found[0]]

    def shape_value(self, shape, grown):
        """An int64 shape value: ``shape`` where it stays, and where it follows a dynamic axis
        (``grown`` differs) that axis's size read from the graph input; None when some size follows the
        dynamic axes in another way."""
        if tuple(shape) == tuple(grown):
            return self.ints(shape)
        parts = []
        for a, b in zip(shape, grown):
            part = self.ints([a]) if a == b else self._dim(int(a), int(b))
            if part is None:
                return None
            parts.append(part)
        return self.op("Concat", parts, axis=0)

    def uniform(self, value, twin):
        """Bind a constant whose shape follows the dynamic axes (zeros made to the batch size) as its
        one value expanded to the input's sizes; False when it is not uniform or its shape cannot be
        followed."""
        arr = value.array if isinstance(value, Tensor) else np.asarray(value)
        shape2 = np.shape(twin.array if isinstance(twin, Tensor) else twin)
        if not isinstance(arr, np.ndarray) or arr.size == 0 or len(shape2) != arr.ndim:
            return False
        first = arr.reshape(-1)[0]
        if not np.all(arr == first):
            return False
        shape = self.shape_value(arr.shape, shape2)
        if shape is None:
            return False
        name = self.op("Expand", [self.const(np.asarray(first, dtype=arr.dtype)), shape])
        if isinstance(value, Tensor):
            self.values[self.key_of(value)] = name
        self.input_arrays[id(arr)] = name
        self.shapes[name] = (arr.shape, arr.dtype)
        return True

    def ints(self, values):
        return self.const(np.asarray(list(values), dtype=np.int64), "ints")

    def scalar(self, value, dtype):
        return self.const(np.asarray(value, dtype=dtype), "scalar")

    # ---------------------------------------------------------------- nodes
    def op(self, op_type, inputs, n_out=1, **attrs):
        outs = [self.fresh(op_type) for _ in range(n_out)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.helper.make_node(op_type, list(inputs), outs, name=self.fresh(f"n_{op_type}"),
                                                **attrs))
        return outs[0] if n_out == 1 else outs

    def where(self):
        node = self.current
        if node is None:
            return "export"
        layer, kind = node.layer
        return f"op {node.name} in layer {layer!r} ({kind})"

    def reduce(self, op_type, x, axes, keepdims):
        axes = [int(a) for a in axes]
        if op_type == "ReduceSum" or self.opset >= 18:
            return self.op(op_type, [x, self.ints(axes)], keepdims=int(keepdims))
        return self.op(op_type, [x], axes=axes, keepdims=int(keepdims))

    def squeeze(self, x, axes):
        return self.op("Squeeze", [x, self.ints(axes)])

    def unsqueeze(self, x, axes):
        return self.op("Unsqueeze", [x, self.ints(axes)])

    def split(self, x, sizes, axis):
        return self.op("Split", [x, self.ints(sizes)], n_out=len(sizes), axis=int(axis))

    def value_info(self, name, shape, dtype, dynamic):
        dims = [dynamic.get(i, d) for i, d in enumerate(shape)]
        return self.helper.make_tensor_value_info(name, onnx_type(dtype), dims)

    def initializer_protos(self):
        return [self.numpy_helper.from_array(arr, name) for name, arr in self.initializers.items()]
