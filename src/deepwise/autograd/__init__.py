"""Reverse-mode automatic differentiation: the graph, the walk, grad mode and gradient checking."""

from __future__ import annotations

from deepwise.autograd.engine import (
    detect_anomaly,
    enable_grad,
    is_grad_enabled,
    no_grad,
    run_backward,
    set_grad_enabled,
)
from deepwise.autograd.function import Context, Function
from deepwise.autograd.gradcheck import GradcheckError, gradcheck
from deepwise.backend import get_array_module

__all__ = [
    "Context", "Function", "GradcheckError", "backward", "detect_anomaly", "enable_grad", "grad",
    "gradcheck", "is_grad_enabled", "no_grad", "set_grad_enabled",
]


def _root_grads(outputs, grad_outputs, create_graph, what):
    from deepwise.tensor import Tensor  # noqa: PLC0415

    grads = []
    for i, out in enumerate(outputs):
        g = grad_outputs[i] if grad_outputs is not None else None
        if g is None:
            if out.data.size != 1:
                raise RuntimeError(
                    f"{what}: grad can be implicitly created only for scalar outputs, but output {i} has "
                    f"shape {out.shape}; pass gradient= (a tensor of that shape) or reduce it first (.sum())"
                )
            g = get_array_module(out.data).ones_like(out.data)
        else:
            if tuple(g.shape) != out.shape:
                raise RuntimeError(f"{what}: gradient of shape {tuple(g.shape)} for an output of shape {out.shape}")
            if create_graph and isinstance(g, Tensor):  # part of a graph itself: keep it as it is
                grads.append(g)
                continue
            g = (g.data if isinstance(g, Tensor) else g).astype(out.dtype, copy=True)
        grads.append(Tensor._make(g) if create_graph else g)
    return grads


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False, inputs=None):
    """Accumulate into ``.grad`` of the leaves the gradient of ``tensors`` (scalars, or with
    ``grad_tensors`` of their shapes)."""
    from deepwise.tensor import Tensor  # noqa: PLC0415

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
    from deepwise.tensor import Tensor  # noqa: PLC0415

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
    """Run the walk from ``outputs`` seeded with ``roots`` and collect the gradients of ``inputs``."""
    from deepwise.tensor import Tensor  # noqa: PLC0415

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
