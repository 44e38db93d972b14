"""Where did the NaN come from? Anomaly mode and a NaN explainer.

A NaN or an infinity in the loss is a symptom; the cause is the first operation that produced one.
Two tools find it:

``with dw.autograd.detect_anomaly():`` (re-exported here) checks every op while it runs. The first
op whose forward outputs, or whose backward gradients, hold NaN or Inf raises a
``FloatingPointError`` naming the op, its inputs' shapes and dtypes, the line of *your* code that
created it and the usual cause::

    anomaly: the forward of Log produced 3 NaN of 12 values (inputs: (3, 4) float32)
      created at train.py:41: loss = -(p.log() * y).sum()
      via Tensor.log > log
      hint: log is NaN for negative inputs and -inf at 0; its input has 3 negative values ...

Outside the block it costs nothing: no site is recorded and no value is checked.

``explain_nan(tensor)`` works after the fact, on a tensor already computed (no anomaly mode needed):
it walks the graph behind the tensor and names the first op whose output is not finite although
its inputs are. Without anomaly mode the graph does not know the lines of code, so the answer says
which op, not which line; rerun inside ``detect_anomaly()`` for the line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from deepwise.autograd.engine import detect_anomaly
from deepwise.backend import get_array_module

__all__ = ["NanSource", "anomaly_error", "detect_anomaly", "explain_nan", "find_nan", "hint"]


# ------------------------------------------------------------------------------- value helpers
def _is_float_array(a) -> bool:
    return a is not None and hasattr(a, "dtype") and hasattr(a, "shape") and a.dtype.kind in "fc"


def _finite(a) -> bool:
    if not _is_float_array(a):
        return True
    return bool(get_array_module(a).isfinite(a).all())


def _counts(arrays) -> str:
    """'3 NaN and 1 Inf of 12 values'."""
    nan = inf = total = 0
    for a in arrays:
        if not _is_float_array(a):
            continue
        xp = get_array_module(a)
        nan += int(xp.isnan(a).sum())
        inf += int(xp.isinf(a).sum())
        total += int(a.size)
    parts = [f"{n} {kind}" for n, kind in ((nan, "NaN"), (inf, "Inf")) if n]
    return " and ".join(parts or ["no NaN or Inf"]) + f" of {total} values"


def _describe_inputs(values) -> str:
    parts = []
    for v in values:
        if hasattr(v, "shape") and hasattr(v, "dtype"):
            parts.append(f"{tuple(v.shape)} {v.dtype}")
        elif v is not None:
            parts.append(repr(v) if isinstance(v, (int, float)) else type(v).__name__)
    return ", ".join(parts) if parts else "none"


def _stats(a) -> dict:
    """Counts and extremes of a float array as Python numbers (finite elements only for min/max)."""
    xp = get_array_module(a)
    finite = xp.isfinite(a)
    out = {"negative": int((a < 0).sum()), "zero": int((a == 0).sum()), "size": int(a.size)}
    if bool(finite.any()):
        vals = a[finite]
        out["min"] = float(vals.min())
        out["max"] = float(vals.max())
        out["absmax"] = float(xp.abs(vals).max())
    return out


def _arg(inputs, i):
    a = inputs[i] if i < len(inputs) else None
    return a if _is_float_array(a) else None


# ------------------------------------------------------------------------------------- hints
_OVERFLOW = ("values grew past what {dtype} can hold (largest finite input magnitude {absmax:.3g}); "
             "this usually means exploding activations or weights: lower the learning rate, clip "
             "gradients (fit(grad_clip_norm=1.0) or nn.utils.clip_grad_norm_), normalise the inputs, "
             "or check the weight initialisation")


def _hint_forward(op: str, inputs) -> str:
    x = _arg(inputs, 0)
    if x is None:
        return ""
    s = _stats(x)
    if op == "Log":
        return (f"log is NaN for negative inputs and -inf at 0; its input has {s['negative']} negative "
                f"value(s) and {s['zero']} zero(s). Keep the argument positive (x.clamp(min=1e-12).log()), or use a "
                "fused, stable op: log_softmax / cross_entropy instead of softmax().log(), "
                "bce_with_logits instead of sigmoid() then BCE")
    if op == "Log1p":
        return f"log1p(x) is NaN below -1 and -inf at -1; its input's smallest value is {s.get('min', 'n/a')}"
    if op in ("Sqrt", "Rsqrt"):
        return (f"{op.lower()} is NaN for negative inputs{' and inf at 0' if op == 'Rsqrt' else ''}; its input "
                f"has {s['negative']} negative value(s) and {s['zero']} zero(s) (tiny negatives often come from "
                "rounding, e.g. a variance computed as E[x^2] - E[x]^2): clamp it (x.clamp(min=0)) or add an "
                "epsilon")
    if op == "Div":
        y = _arg(inputs, 1)
        if y is not None:
            zeros = int((y == 0).sum())
            if zeros:
                return (f"division by zero: the divisor has {zeros} zero(s) (x/0 is Inf, 0/0 is NaN); add an "
                        "epsilon to the denominator (x / (d + 1e-8)) or mask those entries")
    if op == "Exp":
        return (f"exp overflows float32 above about 88 (its largest input is {s.get('max', float('nan')):.3g}); "
                "subtract the maximum first, or use logsumexp / log_softmax / softmax, which do")
    if op == "Pow":
        return ("pow is NaN for a negative base with a fractional exponent and Inf for 0 to a negative power; "
                f"the base has {s['negative']} negative value(s) and {s['zero']} zero(s)")
    if op in ("BinaryCrossEntropy",):
        return ("BCE takes log(p) and log(1 - p): predictions of exactly 0 or 1 give Inf; feed logits to "
                "bce_with_logits (loss='bce_with_logits') instead of sigmoid outputs to BCE")
    if "absmax" in s:
        return _OVERFLOW.format(dtype=x.dtype, absmax=s["absmax"])
    return ""


def _hint_backward(op: str, inputs) -> str:
    x = _arg(inputs, 0)
    if x is None:
        return ""
    s = _stats(x)
    if op == "Sqrt" and s["zero"]:
        return (f"the derivative of sqrt, 1/(2*sqrt(x)), is infinite at x = 0 and the input has {s['zero']} "
                "zero(s) (a norm or distance of identical vectors, say): add an epsilon inside the root, "
                "(x + 1e-12).sqrt(), or clamp it (x.clamp(min=1e-12).sqrt())")
    if op == "Log" and s["zero"]:
        return (f"the derivative of log, 1/x, is infinite at x = 0 and the input has {s['zero']} zero(s): clamp "
                "the argument (x.clamp(min=1e-12)) or use a fused op (log_softmax, cross_entropy, "
                "bce_with_logits)")
    if op == "Rsqrt":
        return "the derivative of 1/sqrt(x) blows up near 0: add an epsilon (x + 1e-5).rsqrt()"
    if op == "Div":
        y = _arg(inputs, 1)
        if y is not None and y.size:
            small = float(get_array_module(y).abs(y).min())
            return (f"the gradient of x / d is -x/d^2 for d; the smallest |d| is {small:.3g}, so it overflows: "
                    "add an epsilon to the denominator")
    if op == "Pow" and s["zero"]:
        return ("the derivative of x**p for p < 1 is infinite at x = 0 and the base has "
                f"{s['zero']} zero(s): add an epsilon to the base")
    if op == "Abs":
        return ""
    return ("the gradient overflowed: gradients are exploding. Clip them (fit(grad_clip_norm=1.0) or "
            "nn.utils.clip_grad_norm_), lower the learning rate, or normalise activations (BatchNorm/LayerNorm)")


def hint(op: str, phase: str, inputs) -> str:
    """A plain-words guess at why ``op`` produced NaN/Inf in ``phase`` ("forward" or "backward"),
    looking at its input arrays ("" when there is nothing specific to say)."""
    inputs = list(inputs or ())
    if phase == "forward":
        return _hint_forward(op, inputs)
    if phase == "backward":
        return _hint_backward(op, inputs)
    raise ValueError(f"hint: phase must be 'forward' or 'backward', got {phase!r}")


# ------------------------------------------------------------------------------------ the error
def _site(ctx):
    stack = getattr(ctx, "stack", None)
    if not stack:
        return None, None, None
    import linecache  # noqa: PLC0415

    user = stack[0]
    return user.filename, user.lineno, linecache.getline(user.filename, user.lineno).strip()


def anomaly_error(ctx, phase: str, inputs, values, site_text: str = "") -> FloatingPointError:
    """The error anomaly mode raises: ``values`` are the forward outputs (phase "forward") or the
    gradients backward returned for each input (phase "backward"); ``inputs`` the forward inputs as
    arrays. Attributes: ``op``, ``phase``, ``input_shapes``, ``filename``, ``lineno``, ``line``."""
    inputs = list(inputs)
    received = [i for i, a in enumerate(inputs) if not _finite(a)] if phase == "forward" else []
    if received:
        i = received[0]
        message = (f"anomaly: {ctx.name} received {_counts([inputs[i]])} in its input {i} (inputs: "
                   f"{_describe_inputs(inputs)}). No op inside anomaly mode produced them: they come from the "
                   "data, a parameter, or a tensor computed before the `with detect_anomaly():` block")
        tip = ""
    elif phase == "forward":
        message = f"anomaly: the forward of {ctx.name} produced {_counts(values)} (inputs: {_describe_inputs(inputs)})"
        tip = hint(ctx.name, "forward", inputs)
    else:
        bad = [i for i, g in enumerate(values) if not _finite(g)]
        which = ", ".join(f"input {i} ({_counts([values[i]])}, shape {tuple(values[i].shape)})" for i in bad)
        message = (f"anomaly: the backward of {ctx.name} produced a NaN or Inf gradient for {which}; its forward "
                   f"inputs were {_describe_inputs(inputs)}")
        tip = hint(ctx.name, "backward", inputs)
    message += site_text
    if tip:
        message += "\n  hint: " + tip
    err = FloatingPointError(message)
    err.op = ctx.name
    err.phase = phase
    err.input_shapes = [tuple(v.shape) if hasattr(v, "shape") else None for v in inputs]
    err.filename, err.lineno, err.line = _site(ctx)
    return err


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

    def __str__(self) -> str:
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
    tensor is finite. Raises when the graph was already freed by ``backward()``."""
    from deepwise.tensor import Tensor  # noqa: PLC0415

    if not isinstance(tensor, Tensor):
        raise TypeError(f"find_nan: expected a deepwise Tensor, got {type(tensor).__name__}")
    if _finite(tensor.data):
        return None
    if tensor._ctx is None:
        return NanSource("input", output_shape=tuple(tensor.shape), values=_counts([tensor.data]))
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
    leaves_bad = []
    for node in order:
        for t in node.inputs:
            if t is not None and t._ctx is None and not _finite(t.data):
                leaves_bad.append(t)
        out = outputs.get(id(node))
        if out is None or _finite(out.data):
            continue
        inputs = [t.data if t is not None else None for t in node.inputs]
        if all(_finite(a) for a in inputs):
            filename, lineno, line = _site(node)
            return NanSource(node.name, [tuple(a.shape) for a in inputs if a is not None], tuple(out.shape),
                             hint(node.name, "forward", inputs), filename, lineno, line, _counts([out.data]))
        if leaves_bad:
            leaf = leaves_bad[0]
            return NanSource("input", output_shape=tuple(leaf.shape), values=_counts([leaf.data]))
    return None  # NaN in a node whose single output we never saw (an unused output of a multi-output op)


def explain_nan(tensor) -> str:
    """A sentence saying where the NaN/Inf in ``tensor`` (a loss, say) comes from and what usually
    causes it; "no NaN or Inf" when it is finite."""
    source = find_nan(tensor)
    if source is None:
        if _finite(tensor.data):
            return f"the tensor of shape {tuple(tensor.shape)} holds no NaN or Inf"
        return "NaN/Inf found, but no op in the graph produced it from finite inputs"
    return str(source)
