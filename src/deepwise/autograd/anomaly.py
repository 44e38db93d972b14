"""Anomaly mode: find the first op whose forward or backward produced NaN or Inf.

Inside ``with dw.autograd.detect_anomaly():`` ``Function.apply`` records where each op was created
(``check_forward``) and checks its outputs; the engine checks the gradients each backward returns
(``check_backward``). The first non-finite value raises the ``FloatingPointError`` built here,
naming the op, its inputs, the user's line and a hint in plain words. Outside the block nothing is
recorded or checked. ``deepwise.diagnostics`` reads the same facts after the fact (``explain_nan``).
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
import traceback

from deepwise.backend import get_array_module, is_floating

_anomaly = False


class detect_anomaly:
    """Find the first op whose forward or backward produced NaN or Inf.

        with dw.autograd.detect_anomaly():
            loss = model(x).log().mean()    # FloatingPointError names Log, its inputs and this line
            loss.backward()                 # ... or the op whose backward went non-finite

    Inside the block every op records the line of user code that created it (the first frame
    outside the deepwise package, plus the deepwise calls in between) and, with ``check_nan``,
    checks its outputs after forward and the gradients it returns in backward. The error is a
    ``FloatingPointError`` whose message names the op, its inputs' shapes and dtypes, that line and
    a hint about the usual cause; its attributes ``op``, ``phase`` ("forward" or "backward"),
    ``input_shapes``, ``filename``, ``lineno`` and ``line`` carry the same facts for tools.
    ``check_nan=False`` records creation sites only. Outside the block nothing is recorded or
    checked. Also usable as a decorator: ``@detect_anomaly()``.
    """

    _active = None  # the innermost active block, or None

    def __init__(self, check_nan: bool = True):
        self.check_nan = bool(check_nan)

    def __enter__(self):
        global _anomaly
        self._prev = (_anomaly, detect_anomaly._active)
        _anomaly = True
        detect_anomaly._active = self
        return self

    def __exit__(self, *exc):
        global _anomaly
        _anomaly, detect_anomaly._active = self._prev
        return False

    def __call__(self, fn):
        check_nan = self.check_nan

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with detect_anomaly(check_nan):
                return fn(*args, **kwargs)

        return wrapper


def anomaly_enabled() -> bool:
    return _anomaly


def _user_frame(frame):
    """The creation site of an op, from the frame that called ``Function.apply`` outwards.

    Returns a list of ``traceback.FrameSummary`` (source lines not read yet), outermost first: the
    first frame outside the deepwise package (the user's line), then the deepwise frames between it
    and the op. Frames of deepwise/autograd itself are left out. Only the frames up to the user's
    are visited, so recording costs a few microseconds per op.
    """
    here = os.path.dirname(os.path.abspath(__file__))  # .../deepwise/autograd
    package = os.path.dirname(here) + os.sep
    here += os.sep
    inner = []
    while frame is not None:
        code = frame.f_code
        filename = code.co_filename
        if not filename.startswith(package):
            user = traceback.FrameSummary(filename, frame.f_lineno, code.co_name, lookup_line=False)
            return [user, *reversed(inner)]
        if not filename.startswith(here):
            name = getattr(code, "co_qualname", code.co_name)
            inner.append(traceback.FrameSummary(filename, frame.f_lineno, name, lookup_line=False))
        frame = frame.f_back
    return list(reversed(inner))  # called from inside deepwise only (a recipe run by the CLI)


def _describe_site(ctx) -> str:
    """``created at file:line: source`` plus the deepwise calls that led to the op."""
    stack = ctx.stack
    if not stack:
        return ("\n  created outside anomaly mode: build the graph inside `with detect_anomaly():` "
                "to see the line that created it")
    user = stack[0]
    line = linecache.getline(user.filename, user.lineno).strip()
    text = f"\n  created at {user.filename}:{user.lineno}: {line}"
    via = [f.name for f in stack[1:] if "<locals>" not in f.name and f.name != "Module.__call__"]
    if via:
        if len(via) > 5:
            via = via[:1] + ["..."] + via[-3:]
        text += "\n  via " + " > ".join(via)
    return text


def _non_finite(arrays) -> bool:
    return not all(is_finite(a) for a in arrays)


def check_forward(ctx, out, args):
    """Called by ``Function.apply`` in anomaly mode: record the creation site, check the outputs."""
    ctx.stack = _user_frame(sys._getframe(1))
    mode = detect_anomaly._active
    if mode is not None and not mode.check_nan:
        return
    outs = out if isinstance(out, tuple) else (out,)
    if _non_finite(outs):
        inputs = [a.array if hasattr(a, "_ctx") else a for a in args]
        raise anomaly_error(ctx, "forward", inputs, outs, _describe_site(ctx))


def check_backward(ctx, grads_in):
    mode = detect_anomaly._active
    if mode is not None and not mode.check_nan:
        return
    if _non_finite(grads_in):
        inputs = [t.array if t is not None else None for t in (ctx.inputs or ())]
        raise anomaly_error(ctx, "backward", inputs, list(grads_in), _describe_site(ctx))


# ------------------------------------------------------------------------------- value helpers
def _is_float_array(a) -> bool:
    if a is None or not hasattr(a, "dtype") or not hasattr(a, "shape"):
        return False
    return a.dtype.kind in "fc" or is_floating(a.dtype)


def is_finite(a) -> bool:
    if not _is_float_array(a):
        return True
    return bool(get_array_module(a).isfinite(a).all())


def count_non_finite(arrays) -> str:
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
def creation_site(ctx):
    stack = getattr(ctx, "stack", None)
    if not stack:
        return None, None, None
    user = stack[0]
    return user.filename, user.lineno, linecache.getline(user.filename, user.lineno).strip()


def anomaly_error(ctx, phase: str, inputs, values, site_text: str = "") -> FloatingPointError:
    """The error anomaly mode raises: ``values`` are the forward outputs (phase "forward") or the
    gradients backward returned for each input (phase "backward"); ``inputs`` the forward inputs as
    arrays. Attributes: ``op``, ``phase``, ``input_shapes``, ``filename``, ``lineno``, ``line``."""
    inputs = list(inputs)
    received = [i for i, a in enumerate(inputs) if not is_finite(a)] if phase == "forward" else []
    if received:
        i = received[0]
        message = (f"anomaly: {ctx.name} received {count_non_finite([inputs[i]])} in its input {i} (inputs: "
                   f"{_describe_inputs(inputs)}). No op inside anomaly mode produced them: they come from the "
                   "data, a parameter, or a tensor computed before the `with detect_anomaly():` block")
        tip = ""
    elif phase == "forward":
        message = (f"anomaly: the forward of {ctx.name} produced {count_non_finite(values)} "
                   f"(inputs: {_describe_inputs(inputs)})")
        tip = hint(ctx.name, "forward", inputs)
    else:
        bad = [i for i, g in enumerate(values) if not is_finite(g)]
        which = ", ".join(f"input {i} ({count_non_finite([values[i]])}, shape {tuple(values[i].shape)})" for i in bad)
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
    err.filename, err.lineno, err.line = creation_site(ctx)
    return err


