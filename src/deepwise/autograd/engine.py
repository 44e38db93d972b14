"""Reverse-mode autodiff: walk the graph once, in reverse topological order, applying the chain rule.

``backward`` sorts the nodes reachable from the roots iteratively (a 10,000-op chain does not touch
Python's recursion limit), then visits each node once, after every consumer of its outputs has
added its gradient, calls the op's ``backward`` and hands the results to the op's inputs. Leaves
(tensors made by the user with ``requires_grad=True``) accumulate into ``.grad`` across calls.

One derivative per op serves every order. A first-order walk runs with grad mode off, so each
``backward`` computes on plain arrays at NumPy speed. With ``create_graph=True`` grad mode stays on
and the gradients are Tensors: the same ``backward`` then runs on Tensors, its ops are recorded, and
the gradients it returns can be differentiated again (see ``Function``). A fused op whose backward is
written on arrays only (``array_backward = True``) is differentiated through its ``composite`` (the
same function in other ops) instead, or says that it does not support higher orders.

Gradient arrays may be shared between intermediate tensors (``x + y`` hands the same array to
both), so the engine and every optimizer replace gradient arrays and never write into them; the
array that first becomes a leaf's ``.grad`` is made private to it, so ``w.grad.zero_()`` is safe.
"""

from __future__ import annotations

from deepwise.autograd import anomaly, mode
from deepwise.backend import get_array_module
from deepwise.tensor import Tensor

_CALLBACKS = []  # run once after the backward pass that is running now (see queue_callback)
_DEPTH = [0]


def queue_callback(fn) -> None:
    """Run ``fn()`` once, when the backward pass now running has put every gradient into ``.grad``
    (PyTorch's ``_execution_engine.queue_callback``; DistributedDataParallel averages gradients over
    processes with it). Called outside a backward pass, ``fn`` runs after the next one."""
    _CALLBACKS.append(fn)


def _run_callbacks():
    while _CALLBACKS:
        _CALLBACKS.pop(0)()


# ------------------------------------------------------------------------------ the public calls
def _root_grads(outputs, grad_outputs, create_graph, what):
    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if grad_outputs is not None else None
        if g is None:
            if out.array.size != 1:
                raise RuntimeError(
                    f"{what}: grad can be implicitly created only for scalar outputs, but output {i} has "
                    f"shape {out.shape}; pass gradient= (a tensor of that shape) or reduce it first (.sum())"
                )
            g = get_array_module(out.array).ones_like(out.array)
        else:
            if tuple(g.shape) != out.shape:
                raise RuntimeError(f"{what}: gradient of shape {tuple(g.shape)} for an output of shape {out.shape}")
            if create_graph and isinstance(g, Tensor):  # part of a graph itself: keep it as it is
                grads.append(g)
                continue
            g = (g.array if isinstance(g, Tensor) else g).astype(out.dtype, copy=True)
        grads.append(Tensor._make(g) if create_graph else g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate into ``.grad`` of the leaves the gradient of ``tensors`` (scalars, or with
    ``grad_tensors`` of their shapes)."""
    if isinstance(tensors, Tensor):
        tensors, grad_tensors = [tensors], None if grad_tensors is None else [grad_tensors]
    tensors = list(tensors)
    for t in tensors:
        if not t.requires_grad:
            raise RuntimeError(
                "backward() on a tensor that does not require grad: no input of the computation has "
                "requires_grad=True (or it was computed under no_grad)"
            )
    if retain_graph is None:
        retain_graph = create_graph
    grads = _root_grads(tensors, grad_tensors, create_graph, "backward")
    if inputs is not None:
        inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
        captured = _grads_from_roots(tensors, inputs, grads, retain_graph, create_graph, allow_unused=True)
        for t, g in zip(inputs, captured):
            if g is not None:
                t.grad = g if t.grad is None else t.grad + g
        return
    run_backward(tensors, grads, retain_graph=retain_graph, create_graph=create_graph)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned as a tuple (not added into ``.grad``).

    With ``create_graph=True`` the returned gradients are themselves part of a graph, so a penalty
    on them (a WGAN-GP gradient penalty) can be backpropagated.
    """
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    if grad_outputs is not None and isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    for t in inputs:
        if not t.requires_grad:
            raise RuntimeError("grad(): one of the inputs does not require grad")
    for t in outputs:
        if not t.requires_grad:
            raise RuntimeError("grad(): one of the outputs does not require grad (no path to the inputs)")
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_grads(outputs, grad_outputs, create_graph, "grad")
    return _grads_from_roots(outputs, inputs, roots, retain_graph, create_graph, allow_unused)


def _grads_from_roots(outputs, inputs, roots, retain_graph, create_graph, allow_unused):
    """Run the walk from ``outputs`` seeded with ``roots`` and collect the gradients of ``inputs``.

    A leaf is captured by its identity (``("leaf", id(tensor))``); a non-leaf by the output slot of
    the node that made it (``(id(node), output index)``), since its gradient lives in that slot."""
    capture = {}
    for i, t in enumerate(inputs):
        capture[("leaf", id(t)) if t._ctx is None else (id(t._ctx), t._out_index)] = i
    captured = run_backward(outputs, roots, retain_graph=retain_graph, create_graph=create_graph,
                            capture=capture, accumulate=False)
    result = []
    for i, t in enumerate(inputs):
        g = captured.get(i)
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad(): input {i} (shape {t.shape}) was not used to compute the outputs; "
                "pass allow_unused=True to get None for it"
            )
        if g is not None and not create_graph:
            g = Tensor._make(g)
        result.append(g)
    return tuple(result)  # always a tuple, as torch.autograd.grad: `(gx,) = grad(y, x)`


# ------------------------------------------------------------------------------------ the walk
def _topological(roots):
    """Nodes reachable from ``roots``, each after every node that consumes its outputs."""
    order, visited = [], set()
    stack = [(node, False) for node in roots]
    push, pop, seen, mark = stack.append, stack.pop, visited.__contains__, visited.add
    while stack:
        node, done = pop()
        if done:
            order.append(node)
            continue
        key = id(node)
        if seen(key):
            continue
        if node.freed:
            raise RuntimeError(
                f"backward through {node.name} a second time: its saved buffers were freed after the "
                "first backward. Pass retain_graph=True to the first backward() if you need to go back "
                "through the same graph twice."
            )
        mark(key)
        push((node, True))
        for t in node.inputs:
            if t is not None:
                producer = t._ctx
                if producer is not None and not seen(id(producer)):
                    push((producer, False))
    order.reverse()
    return order


def _add(a, b):
    return b if a is None else a + b


def _conform(g, t, ctx, create_graph):
    """Check a gradient against its tensor; cast it to the tensor's dtype."""
    if tuple(g.shape) != tuple(t.shape):  # shapes may be lists on some array types
        raise RuntimeError(
            f"backward of {ctx.name} returned a gradient of shape {tuple(g.shape)} "
            f"for an input of shape {tuple(t.shape)}"
        )
    if g.dtype != t.dtype:
        g = g.to(t.dtype) if create_graph else g.astype(t.dtype)
    return g


def run_backward(roots, grads, retain_graph=False, create_graph=False, capture=None, accumulate=True):
    """Propagate ``grads`` (arrays, or Tensors when ``create_graph``) from ``roots`` to the leaves.

    ``capture`` (from ``autograd.grad``) maps ``("leaf", id(leaf))`` or ``(id(node), output index)``
    to a position in the result: those gradients are returned, in a dict by position, and with
    ``accumulate=False`` nothing is added into ``.grad``. Callbacks queued during the pass
    (``queue_callback``) run at its end.
    """
    _DEPTH[0] += 1
    try:
        captured = _run(roots, grads, retain_graph, create_graph, capture, accumulate)
    except BaseException:
        if _DEPTH[0] == 1:
            _CALLBACKS.clear()  # a failed pass runs nothing queued for it
        raise
    finally:
        _DEPTH[0] -= 1
    if not _DEPTH[0]:
        _run_callbacks()
    return captured


def _run(roots, grads, retain_graph, create_graph, capture, accumulate):
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

    checking = anomaly.anomaly_enabled()
    with mode.set_grad_enabled(create_graph):  # off: the backward formulas run on arrays
        for node in order:
            slots = node_grads.pop(id(node), None)
            if slots is None:  # no gradient reached this node
                if not retain_graph:
                    node.release()
                continue
            if node.hooks:
                for idx, hooks in node.hooks.items():
                    for hook in hooks:
                        if slots[idx] is not None:
                            new = hook(slots[idx] if create_graph else Tensor._make(slots[idx]))
                            if new is not None:
                                slots[idx] = new if create_graph else new.array
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
            if node.n_outputs > 1 and node.materialize_grads:
                # outputs nobody used get zero gradient, so multi-output ops see a full tuple
                for i, s in enumerate(slots):
                    if s is None:
                        slots[i] = _zeros_for_output(node, i, create_graph)
            if create_graph and node.fn.array_backward:
                result = node.fn.differentiable_backward(node, slots)
            else:
                result = node.fn.backward(node, *slots)
            if not isinstance(result, tuple):
                result = (result,)
            if checking:
                anomaly.check_backward(node, [r.array if isinstance(r, Tensor) else r for r in result])
            for t, need, g in zip(node.inputs, node.needs_input_grad, result):
                if not need or g is None:
                    continue
                if g.shape != t.shape or g.dtype != t.dtype:
                    g = _conform(g, t, node, create_graph)
                producer = t._ctx
                if producer is not None:
                    s = node_grads.get(id(producer))
                    if s is None:
                        s = node_grads[id(producer)] = [None] * producer.n_outputs
                    i = t._out_index
                    s[i] = g if s[i] is None else s[i] + g
                else:
                    prev = leaf_grads.get(id(t))
                    leaf_grads[id(t)] = (t, g if prev is None else prev[1] + g)
            result = slots = None  # this node's gradients are spent: let them go before the next node
            if not retain_graph:
                node.release()

    owned = set()
    for key, (t, g) in leaf_grads.items():
        for hook in t._hooks or ():
            new = hook(g if create_graph else Tensor._make(g))
            if new is not None:
                g = new if create_graph else new.array
        if capture is not None and ("leaf", key) in capture:
            captured[capture[("leaf", key)]] = g
        if accumulate:
            if create_graph:
                t.grad = g if t.grad is None else t.grad + g
            elif t.grad is None:
                t.grad = Tensor._make(_private(g, owned))
            else:
                t.grad = Tensor._make(t.grad.array + g)  # replace, never write into shared arrays
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
        return Tensor._make(z)
    return z
