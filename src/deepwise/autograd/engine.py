"""Reverse-mode autodiff: walk the graph once, in reverse topological order, applying the chain rule.

``backward`` sorts the nodes reachable from the roots iteratively (a 10,000-op chain does not touch
Python's recursion limit), then visits each node once, after every consumer of its outputs has
added its gradient, calls the op's ``backward`` and hands the results to the op's inputs. Leaves
(tensors made by the user with ``requires_grad=True``) accumulate into ``.grad`` across calls.

Gradient arrays may be shared between intermediate tensors (``x + y`` hands the same array to
both), so the engine and every optimizer replace gradient arrays and never write into them; the
array that first becomes a leaf's ``.grad`` is made private to it, so ``w.grad.zero_()`` is safe.
"""

from __future__ import annotations

import functools
import traceback

from deepwise.backend import get_array_module

_grad_enabled = True
_anomaly = False


def is_grad_enabled() -> bool:
    return _grad_enabled


class set_grad_enabled:
    """Set grad mode now: ``dw.set_grad_enabled(False)``; as a context manager
    (``with dw.set_grad_enabled(training):``) it restores the previous mode on exit."""

    def __init__(self, mode: bool):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = bool(mode)

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class _GradMode:
    """Context manager and decorator (``@dw.no_grad()`` or ``@dw.no_grad``) that sets grad mode
    and restores it on exit."""

    mode = True

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        if fn is None:
            return self
        if not callable(fn):
            raise TypeError(f"{cls.__name__}() takes no arguments; use it as `with {cls.__name__}():` or a decorator")
        return self(fn)  # used bare: @dw.no_grad

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Operations inside build no graph: ``with dw.no_grad(): ...`` or ``@dw.no_grad()``."""

    mode = False


class enable_grad(_GradMode):
    """Turn graph building back on inside a ``no_grad`` block."""

    mode = True


# ----------------------------------------------------------------------------------- anomaly mode
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
    import os  # noqa: PLC0415 - local: only anomaly mode needs it

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
    import linecache  # noqa: PLC0415

    user = stack[0]
    line = linecache.getline(user.filename, user.lineno).strip()
    text = f"\n  created at {user.filename}:{user.lineno}: {line}"
    via = [f.name for f in stack[1:] if "<locals>" not in f.name and f.name != "Module.__call__"]
    if via:
        if len(via) > 5:
            via = via[:1] + ["..."] + via[-3:]
        text += "\n  via " + " > ".join(via)
    return text


def _shapes(values) -> str:
    return ", ".join(str(tuple(v.shape)) if hasattr(v, "shape") else type(v).__name__ for v in values)


def _non_finite(arrays) -> bool:
    for a in arrays:
        if a is not None and hasattr(a, "dtype") and a.dtype.kind in "fc":
            xp = get_array_module(a)
            if not bool(xp.isfinite(a).all()):
                return True
    return False


def check_forward(ctx, out, args):
    """Called by ``Function.apply`` in anomaly mode: record the creation site, check the outputs."""
    import sys  # noqa: PLC0415

    ctx.stack = _user_frame(sys._getframe(1))
    mode = detect_anomaly._active
    if mode is not None and not mode.check_nan:
        return
    outs = out if isinstance(out, tuple) else (out,)
    if _non_finite(outs):
        from deepwise.diagnostics.anomaly import anomaly_error  # noqa: PLC0415 - error path only

        inputs = [a.data if hasattr(a, "_ctx") else a for a in args]
        raise anomaly_error(ctx, "forward", inputs, outs, _describe_site(ctx))


def _check_backward(ctx, grads_in):
    mode = detect_anomaly._active
    if mode is not None and not mode.check_nan:
        return
    if _non_finite(grads_in):
        from deepwise.diagnostics.anomaly import anomaly_error  # noqa: PLC0415 - error path only

        inputs = [t.data if t is not None else None for t in (ctx.inputs or ())]
        raise anomaly_error(ctx, "backward", inputs, list(grads_in), _describe_site(ctx))


# ------------------------------------------------------------------------------------ the walk
def _topological(roots):
    """Nodes reachable from ``roots``, each after every node that consumes its outputs."""
    order, visited = [], set()
    stack = [(node, False) for node in roots]
    while stack:
        node, done = stack.pop()
        if done:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        if node.freed:
            raise RuntimeError(
                f"backward through {node.name} a second time: its saved buffers were freed after the "
                "first backward. Pass retain_graph=True to the first backward() if you need to go back "
                "through the same graph twice."
            )
        visited.add(id(node))
        stack.append((node, True))
        for t in node.inputs:
            if t is not None and t._ctx is not None and id(t._ctx) not in visited:
                stack.append((t._ctx, False))
    order.reverse()
    return order


def _add(a, b):
    return b if a is None else a + b


def _conform(g, t, ctx, create_graph):
    """Check a gradient against its tensor; cast it to the tensor's dtype."""
    if tuple(g.shape) != tuple(t.shape):
        raise RuntimeError(
            f"backward of {ctx.name} returned a gradient of shape {tuple(g.shape)} "
            f"for an input of shape {tuple(t.shape)}"
        )
    if g.dtype != t.dtype:
        g = g.to(t.dtype) if create_graph else g.astype(t.dtype)
    return g


def run_backward(roots, grads, retain_graph=False, create_graph=False, capture=None, accumulate=True):
    """Propagate ``grads`` (arrays, or Tensors when ``create_graph``) from ``roots`` to the leaves.

    ``capture`` maps id(tensor) -> slot for ``autograd.grad``: those tensors' gradients are
    returned instead of (``accumulate=False``) being added into ``.grad``.
    """
    from deepwise.tensor import Tensor  # noqa: PLC0415

    global _grad_enabled
    node_grads = {}
    leaf_grads = {}
    captured = {}
    for t, g in zip(roots, grads):
        if t._ctx is None:
            leaf_grads[id(t)] = (t, _add(leaf_grads.get(id(t), (t, None))[1], g))
        else:
            slots = node_grads.setdefault(id(t._ctx), [None] * t._ctx.n_outputs)
            slots[t._out_index] = _add(slots[t._out_index], g)
    order = _topological([t._ctx for t in roots if t._ctx is not None])

    prev_mode = _grad_enabled
    _grad_enabled = create_graph
    try:
        for node in order:
            slots = node_grads.pop(id(node), None)
            if slots is None or all(s is None for s in slots):
                if not retain_graph:
                    node.release()
                continue
            if node.hooks:
                for idx, hooks in node.hooks.items():
                    for hook in hooks:
                        if slots[idx] is not None:
                            new = hook(slots[idx] if create_graph else Tensor._make(slots[idx]))
                            if new is not None:
                                slots[idx] = new if create_graph else new.data
            if node.retained:
                for idx, ref in node.retained:
                    t = ref()
                    if t is not None and slots[idx] is not None:
                        t.grad = slots[idx] if create_graph else Tensor._make(slots[idx])
            if capture:
                for idx in range(node.n_outputs):
                    key = (id(node), idx)
                    if key in capture and slots[idx] is not None:
                        captured[capture[key]] = slots[idx]
            if node.n_outputs > 1:
                # outputs nobody used get zero gradient, so multi-output ops see a full tuple
                for i, s in enumerate(slots):
                    if s is None:
                        slots[i] = _zeros_for_output(node, i, create_graph)
            if create_graph:
                fn = getattr(node.fn, "backward_graph", None)
                if fn is None:
                    raise RuntimeError(
                        f"{node.name} does not support create_graph=True (double backward) yet"
                    )
                result = fn(node, *slots)
            else:
                result = node.fn.backward(node, *slots)
            if not isinstance(result, tuple):
                result = (result,)
            if _anomaly:
                _check_backward(node, [r.data if isinstance(r, Tensor) else r for r in result])
            inputs, needs = node.inputs, node.needs_input_grad
            for t, need, g in zip(inputs, needs, result):
                if not need or g is None:
                    continue
                g = _conform(g, t, node, create_graph)
                if t._ctx is not None:
                    s = node_grads.setdefault(id(t._ctx), [None] * t._ctx.n_outputs)
                    s[t._out_index] = _add(s[t._out_index], g)
                else:
                    prev = leaf_grads.get(id(t))
                    leaf_grads[id(t)] = (t, g if prev is None else prev[1] + g)
            if not retain_graph:
                node.release()
    finally:
        _grad_enabled = prev_mode

    owned = set()
    for key, (t, g) in leaf_grads.items():
        for hook in t._hooks or ():
            new = hook(g if create_graph else Tensor._make(g))
            if new is not None:
                g = new if create_graph else new.data
        if capture is not None and ("leaf", key) in capture:
            captured[capture[("leaf", key)]] = g
        if accumulate:
            if create_graph:
                t.grad = g if t.grad is None else t.grad + g
            elif t.grad is None:
                t.grad = Tensor._make(_private(g, owned))
            else:
                t.grad = Tensor._make(t.grad.data + g)  # replace, never write into shared arrays
    return captured


def _private(g, owned):
    """A leaf's new ``.grad`` array must be its own: users write into it (``w.grad.zero_()``), so a
    read-only broadcast view, a view of another array, or an array already given to another leaf
    in this pass (``a + b`` hands both the same one) is copied. Intermediate gradients stay shared."""
    if g.base is not None or not getattr(g.flags, "writeable", True) or id(g) in owned:
        g = g.copy()
    owned.add(id(g))
    return g


def _zeros_for_output(node, i, create_graph):
    # the forward output's metadata is kept on the node at creation (see Tensor._make)
    shape, dtype, xp = node.out_meta[i]
    z = xp.zeros(shape, dtype)
    if create_graph:
        from deepwise.tensor import Tensor  # noqa: PLC0415

        return Tensor._make(z)
    return z
