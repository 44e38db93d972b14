"""Draw the computation graph behind a tensor (Graphviz DOT).

    loss = F.cross_entropy(model(x), y)
    dot = dw.diagnostics.graph(loss, params=dict(model.named_parameters()))
    dw.diagnostics.render_graph(dot, "graph.svg")      # needs the `dot` program (Graphviz)

Every op that ``backward`` would visit is a box labelled with its name and output shape; arrows run
the way data flows, from inputs to outputs. Leaves are ellipses: parameters (named when ``params``
maps names to them) in green, other tensors that require grad in yellow, constants (inputs that need
no gradient) in grey. The tensor itself is marked with a double border. Call it before
``backward()``: backward frees the graph unless ``retain_graph=True``.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from deepwise.tensor import Tensor

__all__ = ["graph", "render_graph"]


def _esc(text: str) -> str:
    return str(text).replace("\\", "\\\\").replace('"', '\\"')


def _label(*lines) -> str:
    """A DOT label: each line escaped, joined by DOT's line break (backslash n)."""
    return "\\n".join(_esc(line) for line in lines)


def _shape(shape) -> str:
    shape = tuple(shape)
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def graph(tensor, params=None, show_constants: bool = True, name: str = "deepwise") -> str:
    """The DOT source of the graph that produced ``tensor``.

    Args:
        tensor: a deepwise Tensor (a loss, an output...).
        params: ``{name: tensor}`` (e.g. ``dict(model.named_parameters())``) to label parameters.
        show_constants: draw inputs that do not require grad (data, targets) too.
        name: the graph's name in the DOT source.
    """
    if not isinstance(tensor, Tensor):
        raise TypeError(f"graph: expected a deepwise Tensor, got {type(tensor).__name__}")
    param_names = {id(p): n for n, p in (params or {}).items()}
    lines = [f'digraph "{_esc(name)}" {{', "  rankdir=TB;",
             '  node [fontname="Helvetica", fontsize=10];', '  edge [color="#555555"];']
    declared = set()

    def leaf(t) -> str:
        key = f"t{id(t)}"
        if key in declared:
            return key
        declared.add(key)
        label_shape = f"{_shape(t.shape)} {t.dtype}"
        if id(t) in param_names:
            label, color = _label(param_names[id(t)], label_shape), "#c8e6c9"
        elif t.requires_grad:
            label, color = _label("leaf (requires grad)", label_shape), "#fff59d"
        else:
            label, color = _label("tensor", label_shape), "#e0e0e0"
        extra = ", peripheries=2" if t is tensor else ""
        lines.append(f'  {key} [label="{label}", shape=ellipse, style=filled, fillcolor="{color}"{extra}];')
        return key

    if tensor._ctx is None:
        leaf(tensor)
        lines.append("}")
        return "\n".join(lines) + "\n"

    out_shapes = {id(tensor._ctx): {tensor._out_index: tuple(tensor.shape)}}
    nodes, edges, order = {}, [], []
    stack = [tensor._ctx]
    while stack:
        node = stack.pop()
        if id(node) in nodes:
            continue
        if node.freed or node.inputs is None:
            raise RuntimeError(
                f"graph: the graph behind this tensor was freed by backward() (at {node.name}); draw it before "
                "calling backward(), or pass retain_graph=True to backward()"
            )
        nodes[id(node)] = node
        order.append(node)
        for t in node.inputs:
            if t is None:
                continue
            if t._ctx is not None:
                out_shapes.setdefault(id(t._ctx), {})[t._out_index] = tuple(t.shape)
                edges.append((f"n{id(t._ctx)}", f"n{id(node)}"))
                stack.append(t._ctx)
            elif t.requires_grad or show_constants or id(t) in param_names:
                edges.append((leaf(t), f"n{id(node)}"))
    for node in order:
        shapes = out_shapes.get(id(node), {})
        shown = ", ".join(_shape(shapes[i]) for i in sorted(shapes)) if shapes else "?"
        label = _label(node.name, shown)
        extra = ", peripheries=2" if node is tensor._ctx else ""
        lines.append(f'  n{id(node)} [label="{label}", shape=box, style="rounded,filled", '
                     f'fillcolor="#bbdefb"{extra}];')
    seen = set()
    for a, b in edges:
        if (a, b) not in seen:
            seen.add((a, b))
            lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render_graph(dot: str, path, format: str | None = None) -> str:  # format: Graphviz's own word
    """Render DOT source to a file with Graphviz's ``dot`` program; the format comes from the file
    extension (``.svg``, ``.png``, ``.pdf``) unless given. Returns the path. The file is written
    atomically (a temporary file renamed into place)."""
    exe = shutil.which("dot")
    if exe is None:
        raise RuntimeError(
            "render_graph needs Graphviz's `dot` program, which is not on PATH: install Graphviz "
            "(apt install graphviz, brew install graphviz, conda install graphviz), or paste the DOT text into "
            "an online viewer"
        )
    path = os.fspath(path)
    fmt = format or os.path.splitext(path)[1].lstrip(".").lower() or "svg"
    if fmt not in ("svg", "png", "pdf", "dot", "json"):
        raise ValueError(f"render_graph: unsupported format {fmt!r}; use svg, png, pdf, dot or json")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.tmp{os.getpid()}")
    try:
        done = subprocess.run([exe, f"-T{fmt}", "-o", tmp], input=dot.encode("utf-8"), capture_output=True,
                              check=False, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"render_graph: dot failed (exit {done.returncode}): "
                               f"{done.stderr.decode('utf-8', 'replace').strip()}")
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
