"""Where did the NaN come from? Anomaly mode and a NaN explainer.

A NaN or an infinity in the loss is a symptom; the cause is the first operation that produced one.
Two tools find it:

``with dw.autograd.detect_anomaly():`` (it lives in ``deepwise.autograd.anomaly``; re-exported
here) checks every op while it runs. The first op whose forward outputs, or whose backward
gradients, hold NaN or Inf raises a ``FloatingPointError`` naming the op, its inputs' shapes and
dtypes, the line of *your* code that created it and the usual cause::

    anomaly: the forward of Log produced 3 NaN of 12 values (inputs: (3, 4) float32)
      created at train.py:41: loss = -(p.log() * y).sum()
      via Tensor.log > log
      hint: log is NaN for negative inputs and -inf at 0; its input has 3 negative values ...

Outside the block it costs nothing: no site is recorded and no value is checked.

``explain_nan(tensor)`` works after the fact, on a tensor already computed: it walks the graph behind
the tensor and names the first op whose output is not finite although its inputs are. Without
anomaly mode the graph keeps only the values backward needs and not the lines of code, so it names an
op only where the values around it are still held (a Log's input, kept for its derivative, say), and
otherwise says where the NaN is first seen and that it may come from before; rerun inside
``detect_anomaly()`` for the op and the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepwise.autograd.anomaly import (
    anomaly_error,
    count_non_finite,
    creation_site,
    detect_anomaly,
    hint,
    is_finite,
)
from deepwise.tensor import Tensor

__all__ = ["NanSource", "anomaly_error", "detect_anomaly", "explain_nan", "find_nan", "hint"]


# --------------------------------------------------------------------------------- after the fact
@dataclass
class NanSource:
    """The first op (in forward order) whose output is not finite although its inputs are.

    ``op`` is the op's name ("Log"), or "input" when a leaf tensor (data, a parameter) already held
    NaN/Inf; ``input_shapes`` and ``output_shape`` its shapes; ``hint`` the likely cause;
    ``filename`` / ``lineno`` / ``line`` the creating line when the graph was built in anomaly mode.
    """

    op: str
    input_shapes: list = field(default_factory=list)
    output_shape: tuple | None = None
    hint: str = ""
    filename: str | None = None
    lineno: int | None = None
    line: str | None = None
    values: str = ""
    uncertain: bool = False  # some input's values were no longer held: the NaN may come from before

    def __str__(self) -> str:
        if self.uncertain:
            return (f"NaN/Inf is in the output of {self.op} ({self.values}), or came from an op before it: "
                    "outside anomaly mode the graph keeps only the values backward needs, and those before "
                    f"{self.op} are gone. Rerun the computation inside `with dw.autograd.detect_anomaly():` "
                    "to stop at the op that makes it, with its line of code")
        if self.op == "input":
            return (f"NaN/Inf is already in a leaf tensor of shape {self.output_shape} ({self.values}): it was "
                    "not produced by an op; check the data (or a parameter that went bad in an earlier step)")
        text = (f"NaN/Inf first appears in the output of {self.op} (inputs {self.input_shapes} -> output "
                f"{self.output_shape}; {self.values})")
        if self.filename is not None:
            text += f", created at {self.filename}:{self.lineno}: {self.line}"
        else:
            text += ". Rerun the computation inside `with dw.autograd.detect_anomaly():` to get the line of code"
        if self.hint:
            text += f". Hint: {self.hint}"
        return text


def find_nan(tensor) -> NanSource | None:
    """Walk the graph behind ``tensor`` and return where NaN/Inf first appears, or None when the
    tensor is finite. Raises when the graph was already freed by ``backward()``. The graph keeps an
    intermediate's values only where a backward needs them, so outside ``detect_anomaly()`` (where
    every op's inputs are kept) an op is named only when the values around it are still known."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"find_nan: expected a deepwise Tensor, got {type(tensor).__name__}")
    if is_finite(tensor.array):
        return None
    if tensor._ctx is None:
        return NanSource("input", output_shape=tuple(tensor.shape), values=count_non_finite([tensor.array]))
    # collect the nodes and, for each, one output tensor seen (the root, or an input of a consumer)
    outputs = {id(tensor._ctx): tensor}
    nodes, order, seen = {}, [], set()
    stack = [(tensor._ctx, False)]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)  # after all its inputs: forward order
            continue
        if id(node) in seen:
            continue
        if node.freed or node.inputs is None:
            raise RuntimeError(
                f"find_nan: the graph behind this tensor was freed by backward() (at {node.name}); call "
                "find_nan/explain_nan before backward(), or pass retain_graph=True to backward()"
            )
        seen.add(id(node))
        nodes[id(node)] = node
        stack.append((node, True))
        for t in node.inputs:
            if t is not None and t._ctx is not None:
                outputs.setdefault(id(t._ctx), t)
                if id(t._ctx) not in seen:
                    stack.append((t._ctx, False))
    leaves_bad, suspect = [], None
    for node in order:
        for t in node.inputs:
            if t is not None and t._ctx is None and not is_finite(t.array):
                leaves_bad.append(t)
        out = outputs.get(id(node))
        if out is None or out.array is None or is_finite(out.array):
            continue
        inputs = [t.array if t is not None else None for t in node.inputs]
        # an input whose values the graph no longer holds (None: no backward saved it) clears nobody
        if all(t is None or (a is not None and is_finite(a)) for t, a in zip(node.inputs, inputs)):
            filename, lineno, line = creation_site(node)
            return NanSource(node.name, [tuple(a.shape) for a in inputs if a is not None], tuple(out.shape),
                             hint(node.name, "forward", inputs), filename, lineno, line, count_non_finite([out.array]))
        if leaves_bad:
            leaf = leaves_bad[0]
            return NanSource("input", output_shape=tuple(leaf.shape), values=count_non_finite([leaf.array]))
        if suspect is None:
            suspect = NanSource(node.name, output_shape=tuple(out.shape), values=count_non_finite([out.array]),
                                uncertain=True)
    # the first non-finite output seen whose inputs' values are gone; None: a NaN in a node whose output
    # we never saw (an unused output of a multi-output op)
    return suspect


def explain_nan(tensor) -> str:
    """A sentence saying where the NaN/Inf in ``tensor`` (a loss, say) comes from and what usually
    causes it; "no NaN or Inf" when it is finite."""
    source = find_nan(tensor)
    if source is None:
        if is_finite(tensor.array):
            return f"the tensor of shape {tuple(tensor.shape)} holds no NaN or Inf"
        return "NaN/Inf found, but no op in the graph produced it from finite inputs"
    return str(source)
