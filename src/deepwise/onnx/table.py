"""The converter table: each recorded op -> ONNX nodes, per opset.

``CONVERTERS[op name]`` is a list of ``(first opset, function)``; export picks the entry with the
highest first opset not above the target. A function gets the builder and the node (the op's
arguments as it was applied, and its output shapes) and returns one ONNX value name per output.
Opsets 13 to 21 are covered; where ONNX changed an op (reduce axes as an input from 18, Gelu from 20,
LayerNormalization from 17) the table has one entry per side of the change. The converters live in
``converters`` (elementwise, activations, reductions, shapes, indexing) and ``converters_layers``
(linear, conv, pool, normalisation, recurrent layers, attention); importing ``deepwise.onnx`` registers both.
"""

from __future__ import annotations

import numpy as np

from deepwise.onnx.graph import ExportError
from deepwise.tensor import Tensor

__all__ = ["CONVERTERS", "INT64_MAX", "MAX_OPSET", "MIN_OPSET", "convert", "converts", "dtype_of", "operand"]

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
    if node.name not in _HANDLE_VARYING:  # zeros made to the batch size follow the input's batch size
        node.varying = tuple(i for i in node.varying if not g.uniform(node.args[i], node.twin.args[i]))
    if node.varying and node.name not in _HANDLE_VARYING:
        raise ExportError(f"{g.where()}: argument {node.varying[0]} is a constant whose shape follows the "
                          "dynamic axes (made outside the recorded graph, e.g. from a shape); it cannot be "
                          "exported with those axes dynamic")
    out = usable[-1](g, node)
    return out if isinstance(out, (list, tuple)) else [out]


_HANDLE_VARYING = {"LSTMLayer", "GRULayer", "RNNLayer", "Reshape", "Expand"}


def dtype_of(g, name):
    return g.shapes.get(name, ((), np.dtype(np.float32)))[1]


def operand(g, value, like):
    """The ONNX name of an operand; plain numbers become constants of ``like``'s dtype."""
    if isinstance(value, Tensor):
        return g.value(value)
    arr = np.asarray(value)
    if arr.dtype.kind in "fiub" and like is not None:
        arr = arr.astype(dtype_of(g, like))
    return g.const(arr)
