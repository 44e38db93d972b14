"""Gradient checking by central finite differences in float64.

``gradcheck(fn, inputs)`` compares, for a random projection ``v`` of the output, the gradient of
``sum(fn(*inputs) * v)`` that backpropagation computes with the one that perturbing each input
element by +-eps gives. Inputs that are not float64 are refused: float32 rounding would swamp the
differences.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd.engine import grad
from deepwise.autograd.mode import enable_grad, no_grad
from deepwise.tensor import Tensor


class GradcheckError(AssertionError):
    """Analytical and numerical gradients disagree."""


def _host(array):
    """The values as a NumPy array (copied from the GPU for a CUDA tensor)."""
    return backend.to_device(array, backend.Device("cpu"))


def _outputs(fn, inputs):
    out = fn(*inputs)
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return [o for o in outs if isinstance(o, Tensor) and backend.is_floating(o.dtype)]


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True) -> bool:
    """Check ``fn``'s backward against finite differences; return True or raise ``GradcheckError``."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    wrt = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradcheck: no input requires grad")
    for t in wrt:
        if t.dtype != np.float64:
            raise ValueError(f"gradcheck needs float64 inputs for precision, got {t.dtype}; use .double()")

    rng = np.random.default_rng(seed)
    outs = _outputs(fn, inputs)
    projections = [rng.standard_normal(o.shape) for o in outs]

    def scalar():
        with no_grad():
            return sum(float((_host(o.array) * v).sum()) for o, v in zip(_outputs(fn, inputs), projections))

    total = None
    for o, v in zip(outs, projections):
        term = (o * Tensor(v, dtype=np.float64, device=o.device)).sum()
        total = term if total is None else total + term
    analytic = grad(total, wrt, allow_unused=True)

    for k, (t, a) in enumerate(zip(wrt, analytic)):
        a = np.zeros(t.shape) if a is None else _host(a.array)
        numeric = np.zeros(t.shape)
        data = t.array  # perturbed in place, element by element (any strides: no flattened copy)
        for i in np.ndindex(*t.shape):
            orig = data[i]
            data[i] = orig + eps
            plus = scalar()
            data[i] = orig - eps
            minus = scalar()
            data[i] = orig
            numeric[i] = (plus - minus) / (2 * eps)
        if not np.allclose(a, numeric, atol=atol, rtol=rtol):
            worst = np.unravel_index(np.argmax(np.abs(a - numeric)), t.shape) if t.ndim else ()
            msg = (f"gradcheck failed for input {k} (shape {t.shape}): backward gives {a[worst]:.6g} at "
                   f"{worst}, finite differences give {numeric[worst]:.6g}\nanalytical:\n{a}\nnumerical:\n{numeric}")
            if raise_exception:
                raise GradcheckError(msg)
            return False
    return True


def gradgradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, seed=0, raise_exception=True) -> bool:
    """Check ``fn``'s double backward against finite differences.

    The first derivative ``(x, v) -> d/dx sum(fn(x) * v)`` is built with ``create_graph=True``,
    with the projection ``v`` an input too, and handed to ``gradcheck``. Perturbing ``x`` checks the
    second derivative; perturbing ``v`` checks the backward of the backward, which is what makes
    even a linear op's (flip, pad, gather) ``create_graph`` path count."""
    inputs = tuple(inputs) if isinstance(inputs, (tuple, list)) else (inputs,)
    wrt = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not wrt:
        raise ValueError("gradgradcheck: no input requires grad")
    rng = np.random.default_rng(seed + 1)
    vs = [Tensor(rng.standard_normal(o.shape), dtype=np.float64, requires_grad=True, device=o.device)
          for o in _outputs(fn, inputs)]
    n = len(inputs)

    def first_derivative(*args):
        xs, projections = args[:n], args[n:]
        with enable_grad():  # gradcheck evaluates under no_grad; this function is a backward itself
            total = None
            for o, v in zip(_outputs(fn, xs), projections):
                term = (o * v).sum()
                total = term if total is None else total + term
            grads = grad(total, [xs[i] for i in wrt], create_graph=True, allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivative, (*inputs, *vs), eps=eps, atol=atol, rtol=rtol, seed=seed,
                     raise_exception=raise_exception)
