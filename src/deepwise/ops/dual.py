"""The functions backward formulas are written with: each takes arrays or Tensors and answers in kind.

An op's ``backward`` is written once (see ``deepwise.autograd.function``). In a first-order
backward its values are arrays and these functions are the NumPy/CuPy calls they name; under
``create_graph=True`` its values are Tensors and the same calls are deepwise ops, recorded in the
graph, so the derivative can be differentiated again. Python operators (``+ - * / ** @``,
comparisons, ``g[index]``) already work on both and need nothing here.

    def backward(ctx, g):
        x, = ctx.saved
        return g * dual.cos(x)          # numpy.cos on arrays, deepwise's cos on Tensors

Nothing here converts a Tensor to an array: that would cut the graph of a higher derivative.
"""

from __future__ import annotations

from deepwise import backend, tensor
from deepwise.autograd.function import Context
from deepwise.backend import get_array_module
from deepwise.tensor import Tensor


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


def _any_tensor(values) -> bool:
    return any(isinstance(v, Tensor) for v in values)


def _xp(*values):
    return get_array_module(*[v for v in values if hasattr(v, "dtype")])


# ------------------------------------------------------------------------------- elementwise
def _unary(name):
    def fn(x):
        return getattr(x, name)() if isinstance(x, Tensor) else getattr(get_array_module(x), name)(x)

    fn.__name__ = name
    fn.__doc__ = f"``{name}(x)``, elementwise."
    return fn


exp = _unary("exp")
log = _unary("log")
log1p = _unary("log1p")
sin = _unary("sin")
cos = _unary("cos")
tanh = _unary("tanh")
sign = _unary("sign")
abs = _unary("abs")


def sigmoid(x):
    """1 / (1 + e^-x) without overflow."""
    if isinstance(x, Tensor):
        return x.sigmoid()
    xp = get_array_module(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    # 1 / (1 + e) for x >= 0, e / (1 + e) below: the numerator is max(e, [x >= 0]) (e <= 1), with no
    # per-element select -- on random signs a select mispredicts a branch per element (17.8 -> 4.3 ms
    # on 2M float32 values); the same bits
    y = xp.maximum(e, (x >= 0).astype(e.dtype))
    y /= 1 + e
    return y.astype(x.dtype, copy=False)


def where(condition, a, b):
    """``a`` where ``condition`` holds, else ``b`` (either may be a Python number)."""
    if _any_tensor((condition, a, b)):
        cond = condition.array if isinstance(condition, Tensor) else condition
        return tensor.ops.where(cond, a, b)
    xp = _xp(condition, a, b)
    out = xp.where(condition, a, b)
    like = a if hasattr(a, "dtype") else b
    if hasattr(like, "dtype") and (like.dtype.kind == "f" or backend.is_floating(like.dtype)):
        return out.astype(like.dtype, copy=False)
    return out


def maximum(a, b):
    if _any_tensor((a, b)):
        return tensor.ops.maximum(a, b)
    return _xp(a, b).maximum(a, b)


def clip(x, lo, hi):
    """``x`` limited to [lo, hi] (Python numbers); the gradient flows inside, bounds included."""
    return x.clamp(lo, hi) if isinstance(x, Tensor) else get_array_module(x).clip(x, lo, hi)


def cast(x, dtype):
    """``x`` as ``dtype`` (a no-op when it already is)."""
    if x.dtype == dtype:
        return x
    return x.to(dtype) if isinstance(x, Tensor) else x.astype(dtype)


# -------------------------------------------------------------------------------- reductions
def sum(x, axis=None, keepdims=False):
    if isinstance(x, Tensor):
        return x.sum(dim=axis, keepdim=keepdims)
    if x.dtype.kind == "V" and backend.is_bfloat16(x.dtype):  # accumulate in float32, as torch; the engine
        return x.sum(axis=axis, keepdims=keepdims, dtype=backend.float32)  # rounds the gradient once
    return x.sum(axis=axis, keepdims=keepdims)


def sum_to(g, shape):
    """Sum ``g`` down to ``shape``: the backward of broadcasting."""
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        i + extra for i, n in enumerate(shape) if n == 1 and g.shape[i + extra] != 1
    )
    if axes:
        g = sum(g, axis=axes, keepdims=True)
    return reshape(g, shape) if extra else g


def cumsum(x, axis):
    return x.cumsum(dim=axis) if isinstance(x, Tensor) else get_array_module(x).cumsum(x, axis=axis)


# ---------------------------------------------------------------------------------- shapes
def reshape(x, shape):
    return x.reshape(tuple(shape))


def broadcast_to(x, shape):
    if isinstance(x, Tensor):
        return x.expand(*shape)
    return get_array_module(x).broadcast_to(x, tuple(shape))


def transpose(x, axes):
    """Permute the axes (``axes`` names all of them)."""
    return x.permute(*axes) if isinstance(x, Tensor) else x.transpose(axes)


def swapaxes(x, a, b):
    return x.transpose(a, b) if isinstance(x, Tensor) else x.swapaxes(a, b)


def moveaxis(x, source, destination):
    if isinstance(x, Tensor):
        return tensor.ops.movedim(x, source, destination)
    return get_array_module(x).moveaxis(x, source, destination)


def split(x, sizes, axis):
    """``x`` cut along ``axis`` into consecutive pieces of ``sizes`` (a tuple of views on arrays)."""
    if isinstance(x, Tensor):
        return tuple(x.split(list(sizes), axis))
    bounds, total = [], 0
    for n in sizes[:-1]:
        total += n
        bounds.append(total)
    return tuple(get_array_module(x).split(x, bounds, axis=axis))


def flip(x, axes):
    return x.flip(tuple(axes)) if isinstance(x, Tensor) else get_array_module(x).flip(x, tuple(axes))


def concatenate(xs, axis):
    if _any_tensor(xs):
        return tensor.ops.cat(list(xs), dim=axis)
    return get_array_module(*xs).concatenate(xs, axis=axis)


def pad(x, widths):
    """Zero-pad ``x`` by ``widths`` ((before, after) per axis, as ``numpy.pad``)."""
    if isinstance(x, Tensor):
        flat = []
        for before, after in reversed(list(widths)):  # deepwise/PyTorch order: last axis first
            flat += [before, after]
        return tensor.ops.pad(x, tuple(flat))
    return get_array_module(x).pad(x, widths)


# --------------------------------------------------------------------------- other functions
def recompute(value, fn, *inputs):
    """An intermediate of forward inside a backward formula: ``value`` (what forward saved) in a
    first-order backward, where it is exact and costs nothing; ``fn(*inputs)`` when ``inputs`` are
    Tensors (create_graph), so the intermediate is rebuilt from saved inputs and keeps its derivative
    instead of coming back as a constant."""
    return fn(*inputs) if _any_tensor(inputs) else value


def apply(fn, *args, **kwargs):
    """Another op, as a step of a backward formula: ``fn.apply`` when any argument is a Tensor (the
    step is recorded), else ``fn.forward`` straight on the arrays (no node, no Tensor)."""
    if _any_tensor(args):
        return fn.apply(*args, **kwargs)
    return fn.forward(Context(fn, None, ()), *args, **kwargs)
