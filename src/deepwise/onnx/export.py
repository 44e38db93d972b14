"""``dw.onnx.export``: a deepwise model to an ONNX file, with ``torch.onnx.export``'s meaning."""

from __future__ import annotations

import inspect
import os

import numpy as np

from deepwise import backend
from deepwise.autograd.function import keep_calls
from deepwise.autograd.mode import enable_grad, no_grad
from deepwise.nn.module import Module
from deepwise.onnx import converters, converters_layers  # noqa: F401 - importing them registers the converters
from deepwise.onnx.graph import Builder, ExportError, array_key, capture
from deepwise.onnx.table import MAX_OPSET, MIN_OPSET, convert
from deepwise.tensor import Tensor

__all__ = ["ExportError", "compare", "export"]


def _onnx():
    try:
        import onnx  # noqa: PLC0415 - optional dependency (the `onnx` extra)
        from onnx import helper, numpy_helper  # noqa: PLC0415
    except ImportError:
        raise ImportError("ONNX export needs the onnx package: pip install 'deepwise[onnx]'") from None
    return onnx, helper, numpy_helper


def _as_inputs(args):
    if isinstance(args, Tensor) or isinstance(args, np.ndarray):
        args = (args,)
    elif isinstance(args, list):
        args = tuple(args)
    if not isinstance(args, tuple):
        raise TypeError(f"dw.onnx.export: args must be a tensor or a tuple of tensors, got {type(args).__name__}")
    out = []
    for a in args:
        arr = a.array if isinstance(a, Tensor) else np.asarray(a)
        if not isinstance(arr, np.ndarray):
            raise TypeError("dw.onnx.export: example inputs must be on the CPU (call .to('cpu') first)")
        leaf = Tensor(arr.copy())
        if backend.is_floating(arr.dtype):
            leaf.requires_grad_(True)  # so every op that reads the input is recorded
        out.append(leaf)
    return tuple(out)


def _dynamic(spec, name, ndim):
    """{axis: dim name} from torch.onnx.export's dynamic_axes entry (a dict or a list of axes)."""
    if spec is None or name not in spec:
        return {}
    entry = spec[name]
    if isinstance(entry, dict):
        return {int(a) % max(ndim, 1): str(v) for a, v in entry.items()}
    return {int(a) % max(ndim, 1): f"{name}_dim{int(a)}" for a in entry}


def _grow(arr, axes):
    for axis in axes:
        arr = np.concatenate([arr, np.take(arr, [0], axis=axis)], axis=axis)
    return arr


def _follows(size, grown, inputs, dyn_inputs):
    """The name of the one dynamic input axis an output axis follows (its size, and one more when the
    dynamic axes were grown by one), or None when that is not clear."""
    if grown != size + 1:
        return None
    names = {dim for t, axes in zip(inputs, dyn_inputs) for axis, dim in axes.items() if t.shape[axis] == size}
    return names.pop() if len(names) == 1 else None


def export(model, args, f, input_names=None, output_names=None, dynamic_axes=None, opset_version=17,
           check=True):
    """Run ``model(*args)`` once in eval mode (restoring its mode after) and write the graph autograd
    recorded to ``f`` (a path or a binary file object) as an ONNX model. ``model`` is a Module, or a
    Module's method (``vae.reconstruct``) to export that method instead of ``forward``.

    ``input_names`` / ``output_names`` name the graph's inputs and outputs (default ``input_0``...,
    ``output_0``...); ``dynamic_axes`` maps such a name to ``{axis: "name"}`` (or a list of axes) that
    stay symbolic, e.g. ``{"image": {0: "batch"}}``; reshapes and flattens keep them so. Parameters
    and buffers become initializers named by their state-dict keys. ``opset_version`` 13 to 21.
    An op without a converter raises :class:`ExportError` naming the op and the layer it came from.
    With ``check`` the model is validated with ``onnx.checker.check_model(full_check=True)``.
    Returns the ``onnx.ModelProto``.
    """
    onnx, helper, numpy_helper = _onnx()
    forward = model
    if inspect.ismethod(model) and isinstance(model.__self__, Module):
        model = model.__self__  # a module's method (``vae.reconstruct``) exports that method
    elif not isinstance(model, Module):
        raise TypeError(f"dw.onnx.export: expected a Module (or a Module's method), got {type(model).__name__}")
    if not (MIN_OPSET <= int(opset_version) <= MAX_OPSET):
        raise ValueError(f"dw.onnx.export: opset_version must be between {MIN_OPSET} and {MAX_OPSET}, "
                         f"got {opset_version}")
    inputs = _as_inputs(args)
    input_names = list(input_names or [f"input_{i}" for i in range(len(inputs))])
    if len(input_names) != len(inputs):
        raise ValueError(f"dw.onnx.export: {len(input_names)} input names for {len(inputs)} inputs")
    names = {}
    for key, t in model.state_dict(keep_vars=True).items():
        names.setdefault(id(t.array), key)
        names.setdefault(array_key(t.array), key)
    was_training = model.training
    model.eval()
    try:
        with enable_grad():
            outs, nodes = capture(model, forward, inputs, keep_calls)
    finally:
        model.train(was_training)
    dyn_inputs = [_dynamic(dynamic_axes, name, t.ndim) for t, name in zip(inputs, input_names)]
    if any(dyn_inputs):
        # record once more with every dynamic axis one longer: what changes with it (reshape targets,
        # constants made from shapes) is then known, and kept symbolic instead of baked in
        grown = _as_inputs(tuple(_grow(t.array, axes) for t, axes in zip(inputs, dyn_inputs)))
        model.eval()
        try:
            with enable_grad():
                outs2, nodes2 = capture(model, forward, grown, keep_calls)
        finally:
            model.train(was_training)
        if [n.name for n in nodes] != [n.name for n in nodes2]:
            raise ExportError("the model records a different sequence of ops when a dynamic axis changes "
                              "size; export it without that dynamic axis")
        input_ids = {id(t) for t in inputs} | {id(t.array) for t in inputs}
        for n, n2 in zip(nodes, nodes2):
            n.pair(n2, input_ids)
    else:
        outs2 = outs
    output_names = list(output_names or [f"output_{i}" for i in range(len(outs))])
    if len(output_names) != len(outs):
        raise ValueError(f"dw.onnx.export: {len(output_names)} output names for the model's {len(outs)} outputs")

    g = Builder(helper, numpy_helper, int(opset_version), names)
    for t, name in zip(inputs, input_names):
        g.bind(t, name)
    g.dynamic = [(name, axis, dim, t.shape[axis]) for t, name, axes in zip(inputs, input_names, dyn_inputs)
                 for axis, dim in axes.items()]
    for node in nodes:
        g.current = node
        produced = convert(g, node)
        ctx = node.ctx
        for i, name in enumerate(produced):
            g.values[("out", id(ctx), i)] = name
            if i in node.outputs:
                arr = node.outputs[i]
                g.input_arrays[id(arr)] = name
                # the dtype lets later converters type their constants (an int count minus 1 stays int)
                g.shapes.setdefault(name, (tuple(arr.shape), arr.dtype))
    g.current = None
    graph_outputs = []
    for t, t2, name in zip(outs, outs2, output_names):
        src = g.value(t)
        g.nodes.append(helper.make_node("Identity", [src], [name], name=g.fresh("n_output")))
        dims = {j: _follows(a, b, inputs, dyn_inputs) or f"{name}_dim{j}"
                for j, (a, b) in enumerate(zip(t.shape, t2.shape)) if a != b}
        dims.update(_dynamic(dynamic_axes, name, t.ndim))  # an output's axes that follow the inputs' stay symbolic
        graph_outputs.append(g.value_info(name, t.shape, t.array.dtype, dims))
    graph_inputs = [g.value_info(name, t.shape, t.array.dtype, _dynamic(dynamic_axes, name, t.ndim))
                    for t, name in zip(inputs, input_names)]
    unknown = set(dynamic_axes or {}) - set(input_names) - set(output_names)
    if unknown:
        raise ValueError(f"dw.onnx.export: dynamic_axes names {sorted(unknown)}, which are neither inputs "
                         f"{input_names} nor outputs {output_names}")
    graph = helper.make_graph(g.nodes, type(model).__name__, graph_inputs, graph_outputs,
                              initializer=g.initializer_protos())
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset_version))],
                              producer_name="deepwise")
    proto.ir_version = min(proto.ir_version, 10)  # what current onnxruntime releases read
    if check:
        onnx.checker.check_model(proto, full_check=True)
    data = proto.SerializeToString()
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            fh.write(data)
    else:
        f.write(data)
    return proto


def compare(model, path, args, rtol=1e-4, atol=1e-5):
    """Run the exported file in onnxruntime and ``model`` (eval mode) on ``args``; returns
    (largest absolute difference over all outputs, list of (name, shape) of the outputs)."""
    try:
        import onnxruntime as ort  # noqa: PLC0415 - optional dependency (the `onnx` extra)
    except ImportError:
        raise ImportError("checking an export needs onnxruntime: pip install 'deepwise[onnx]'") from None
    forward = model
    if inspect.ismethod(model) and isinstance(model.__self__, Module):
        model = model.__self__
    inputs = args if isinstance(args, (tuple, list)) else (args,)
    arrays = [a.array if isinstance(a, Tensor) else np.asarray(a) for a in inputs]
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    feed = {i.name: a for i, a in zip(session.get_inputs(), arrays)}
    got = session.run(None, feed)
    was_training = model.training
    model.eval()
    try:
        with no_grad():
            want = forward(*[Tensor(a) for a in arrays])
    finally:
        model.train(was_training)
    want = want if isinstance(want, (tuple, list)) else (want,)
    diff = 0.0
    for a, b in zip(got, want):
        b = b.array
        if a.shape != b.shape:
            raise ExportError(f"onnxruntime gave an output of shape {a.shape}, deepwise {b.shape}")
        if a.size:
            diff = max(diff, float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64)))))
    return diff, [(o.name, a.shape) for o, a in zip(session.get_outputs(), got)]
