"""Elementwise binary arithmetic with NumPy broadcasting, comparisons, where/clamp.

Python scalars are weak (they take the tensor's dtype), so ``x32 * 2.5`` stays float32 and an int64
tensor next to a float32 one gives float32, as in PyTorch.
"""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops._util import unbroadcast, xp_of


def _tensor_cls():
    from deepwise.tensor import Tensor  # noqa: PLC0415

    return Tensor


def coerce(a, b, op, floating=False):
    """Bring two operands (tensors, arrays or Python scalars) to a common dtype, as tensors or arrays.

    Returns (a, b) where scalars became 0-d arrays and tensors were cast only when needed.
    """
    Tensor = _tensor_cls()
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if not ta and not tb:
        raise TypeError(f"{op}: expected at least one tensor")
    if ta and not tb:
        a_dt = a.dtype
        b = _scalar_or_array(b, a_dt, a.data)
        b_dt = b.dtype
    elif tb and not ta:
        b_dt = b.dtype
        a = _scalar_or_array(a, b_dt, b.data)
        a_dt = a.dtype
    else:
        a_dt, b_dt = a.dtype, b.dtype
        if a.data.__class__ is not b.data.__class__:
            raise RuntimeError(f"{op}: tensors on different devices ({a.device} and {b.device})")
    dt = backend.result_dtype(a_dt, b_dt)
    if floating and dt.kind != "f":
        dt = backend.DEFAULT_FLOAT
    if a_dt != dt:
        a = a.to(dt) if isinstance(a, Tensor) else a.astype(dt)
    if b_dt != dt:
        b = b.to(dt) if isinstance(b, Tensor) else b.astype(dt)
    return a, b


def _scalar_or_array(v, tensor_dtype, like):
    xp = xp_of(like)
    if backend.is_array(v):
        if v.ndim == 0:  # numpy scalar array: weak like a Python scalar
            return xp.asarray(v, dtype=backend.scalar_dtype(v.item(), tensor_dtype))
        arr = xp.asarray(v)
        if arr.dtype == backend.float64:
            arr = arr.astype(backend.DEFAULT_FLOAT)
        return arr
    if hasattr(v, "dtype") and hasattr(v, "item"):  # numpy scalar types
        v = v.item()
    if isinstance(v, (int, float, bool)):
        return xp.asarray(v, dtype=backend.scalar_dtype(v, tensor_dtype))
    return _tensor_cls()(v).data


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(g, sb)

    @staticmethod
    def backward_graph(ctx, g):
        sa, sb = ctx.shapes
        return _sum_to(g, sa), _sum_to(g, sb)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return unbroadcast(g, sa), unbroadcast(-g, sb) if ctx.needs_input_grad[1] else None

    @staticmethod
    def backward_graph(ctx, g):
        sa, sb = ctx.shapes
        return _sum_to(g, sa), _sum_to(-g, sb)


class Mul(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        ga = unbroadcast(g * b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(g * a, b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb

    @staticmethod
    def backward_graph(ctx, g):
        a, b = _inputs(ctx)
        return _sum_to(g * b, a.shape), _sum_to(g * a, b.shape)


class Div(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        ga = unbroadcast(g / b, a.shape) if ctx.needs_input_grad[0] else None
        gb = unbroadcast(-g * a / (b * b), b.shape) if ctx.needs_input_grad[1] else None
        return ga, gb

    @staticmethod
    def backward_graph(ctx, g):
        a, b = _inputs(ctx)
        return _sum_to(g / b, a.shape), _sum_to(-g * a / (b * b), b.shape)


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        xp = xp_of(a, b)
        out = xp.power(a, b)
        ctx.a, ctx.b, ctx.out = a, b, out
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.a, ctx.b, ctx.out
        xp = xp_of(a, b)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            # b * a**(b-1), written so a == 0 with b >= 1 gives the right (finite) value
            ga = unbroadcast(g * b * xp.power(a, b - 1), a.shape)
        if ctx.needs_input_grad[1]:
            safe = xp.where(a > 0, a, 1)
            gb = unbroadcast(g * out * xp.log(safe) * (a > 0), b.shape)
        return ga, gb

    @staticmethod
    def backward_graph(ctx, g):
        a, b = _inputs(ctx)
        if ctx.needs_input_grad[1]:
            raise RuntimeError("pow: double backward with respect to the exponent is not supported")
        return _sum_to(g * b * a ** (b - 1), a.shape), None


class Maximum(Function):
    """Ties send half the gradient to each side (like PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return xp_of(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        w = (a > b) + 0.5 * (a == b)
        w = w.astype(g.dtype)
        return unbroadcast(g * w, a.shape), unbroadcast(g * (1 - w), b.shape)

    @staticmethod
    def backward_graph(ctx, g):
        a, b = ctx.a, ctx.b
        w = ((a > b) + 0.5 * (a == b)).astype(g.dtype)  # a constant mask: ties split as in backward
        return _sum_to(g * _tensor_cls()._make(w), a.shape), _sum_to(g * _tensor_cls()._make(1 - w), b.shape)


class Minimum(Function):
    """Ties send half the gradient to each side (like PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return xp_of(a, b).minimum(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        w = (a < b) + 0.5 * (a == b)
        w = w.astype(g.dtype)
        return unbroadcast(g * w, a.shape), unbroadcast(g * (1 - w), b.shape)

    @staticmethod
    def backward_graph(ctx, g):
        a, b = ctx.a, ctx.b
        w = ((a < b) + 0.5 * (a == b)).astype(g.dtype)  # a constant mask: ties split as in backward
        return _sum_to(g * _tensor_cls()._make(w), a.shape), _sum_to(g * _tensor_cls()._make(1 - w), b.shape)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.cond, ctx.shapes = cond, (a.shape, b.shape)
        return xp_of(a, b).where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        zero = xp.zeros((), g.dtype)
        sa, sb = ctx.shapes
        ga = unbroadcast(xp.where(ctx.cond, g, zero), sa) if ctx.needs_input_grad[1] else None
        gb = unbroadcast(xp.where(ctx.cond, zero, g), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb

    @staticmethod
    def backward_graph(ctx, g):
        cond = _tensor_cls()._make(ctx.cond)
        sa, sb = ctx.shapes
        return None, _sum_to(where(cond, g, 0.0), sa), _sum_to(where(cond, 0.0, g), sb)


class Clamp(Function):
    """Gradient flows where min <= x <= max (boundaries included, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        ctx.mask = ((x >= lo) if lo is not None else True) & ((x <= hi) if hi is not None else True)
        return xp_of(x).clip(x, lo, hi)

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask, None, None

    @staticmethod
    def backward_graph(ctx, g):
        return g * _tensor_cls()._make(xp_of(g.data).asarray(ctx.mask, dtype=g.dtype)), None, None


def _inputs(ctx):
    """Input tensors of a node, for backward_graph (constants come back as tensors too)."""
    return tuple(ctx.inputs[i] if ctx.inputs[i] is not None else _tensor_cls()._make(v)
                 for i, v in enumerate((ctx.a, ctx.b)))


def _sum_to(g, shape):
    """Tensor-level unbroadcast (for backward_graph)."""
    if g.shape == tuple(shape):
        return g
    extra = g.ndim - len(shape)
    dims = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1 and g.shape[i + extra] != 1)
    if dims:
        g = g.sum(dim=dims, keepdim=True)
    return g.reshape(shape) if extra else g


# ------------------------------------------------------------------------------ functions
def _apply(fn, name, *operands):
    """``fn.apply(*operands)``; NumPy's broadcasting ValueError becomes an error naming the op."""
    try:
        return fn.apply(*operands)
    except ValueError:
        check_broadcast(name, *operands)
        raise


def check_broadcast(name, *operands, labels=None):
    """Raise a RuntimeError naming ``name`` and every operand's shape when they do not broadcast."""
    import numpy as np  # noqa: PLC0415 - shape arithmetic only, no tensor data

    shapes = [tuple(x.shape) for x in operands if hasattr(x, "shape")]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        named = " and ".join(f"{lbl} {s}" if lbl else str(s) for lbl, s in zip(labels or [""] * len(shapes), shapes))
        raise RuntimeError(
            f"{name}: shapes {named} cannot be broadcast together (aligned from the last dim, "
            "each pair of sizes must be equal or one of them 1)"
        ) from None


def add(input, other, alpha=1):
    """input + alpha * other, broadcasting."""
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, _tensor_cls()) else other * alpha
    return _apply(Add, "add", *coerce(input, other, "add"))


def sub(input, other, alpha=1):
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, _tensor_cls()) else other * alpha
    return _apply(Sub, "sub", *coerce(input, other, "sub"))


def mul(input, other):
    return _apply(Mul, "mul", *coerce(input, other, "mul"))


def div(input, other, rounding_mode=None):
    """True division (integers give float32); ``rounding_mode`` 'floor'/'trunc' gives no gradient."""
    if rounding_mode is not None:
        a, b = coerce(input, other, "div")
        a, b = _data(a), _data(b)
        xp = xp_of(a, b)
        q = xp.floor_divide(a, b) if rounding_mode == "floor" else xp.trunc(a / b).astype(
            backend.result_dtype(a.dtype, b.dtype))
        return _tensor_cls()._make(q)
    return _apply(Div, "div", *coerce(input, other, "div", floating=True))


true_divide = divide = div
multiply = mul
subtract = sub


def pow(input, exponent):  # noqa: A001
    return _apply(Pow, "pow", *coerce(input, exponent, "pow"))


def neg(input):
    return mul(input, -1)


negative = neg


def maximum(input, other):
    return _apply(Maximum, "maximum", *coerce(input, other, "maximum"))


def minimum(input, other):
    return _apply(Minimum, "minimum", *coerce(input, other, "minimum"))


def where(condition, input, other):
    """Elements of ``input`` where ``condition`` holds, else of ``other`` (gradient routed likewise)."""
    Tensor = _tensor_cls()
    cond = condition.data if isinstance(condition, Tensor) else condition
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(input)
    a, b = coerce(input, other, "where")
    try:
        return Where.apply(cond, a, b)
    except ValueError:
        check_broadcast("where", cond, a, b, labels=["condition", "input", "other"])
        raise


def clamp(input, min=None, max=None):  # noqa: A002
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    if input.dtype.kind != "f" and any(isinstance(v, float) for v in (min, max)):
        input = input.float()  # float bounds on an int tensor give float32 (not NumPy's float64)
    return Clamp.apply(input, min, max)


clip = clamp


def _data(x):
    return x.data if isinstance(x, _tensor_cls()) else x


def _compare(np_name, name=None):
    name = name or np_name

    def fn(input, other):
        a, b = coerce(input, other, name)
        a, b = _data(a), _data(b)
        try:
            return _tensor_cls()._make(getattr(xp_of(a, b), np_name)(a, b))
        except ValueError:
            check_broadcast(name, a, b)
            raise

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{np_name}`` (a bool tensor; no gradient)."
    return fn


eq = _compare("equal", "eq")
ne = _compare("not_equal", "ne")
lt = _compare("less", "lt")
le = _compare("less_equal", "le")
gt = _compare("greater", "gt")
ge = _compare("greater_equal", "ge")
logical_and = _compare("logical_and")
logical_or = _compare("logical_or")
logical_xor = _compare("logical_xor")
floor_divide = _compare("floor_divide")
remainder = _compare("remainder")
greater, less, not_equal = gt, lt, ne


def logical_not(input):
    return _tensor_cls()._make(xp_of(input.data).logical_not(input.data))


def equal(input, other) -> bool:
    """True when both tensors have the same shape and values (``torch.equal``)."""
    return input.shape == other.shape and bool((input.data == other.data).all())
