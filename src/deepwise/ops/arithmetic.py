"""Elementwise binary arithmetic with NumPy broadcasting, comparisons, where/clamp.

Python scalars are weak (they take the tensor's dtype), so ``x32 * 2.5`` stays float32 and an int64
tensor next to a float32 one gives float32, as in PyTorch.
"""

from __future__ import annotations

import numpy as np  # shape arithmetic only (broadcast_shapes), never tensor data

from deepwise import backend
from deepwise.autograd.function import Function, is_keeping_calls
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import rounded_to, xp_of
from deepwise.tensor import Tensor


def coerce(a, b, op, floating=False):
    """Bring two operands (tensors, arrays or Python scalars) to a common dtype, as tensors or arrays.

    Returns (a, b) where scalars became 0-d arrays and tensors were cast only when needed.
    """
    ta, tb = isinstance(a, Tensor), isinstance(b, Tensor)
    if not ta and not tb:
        raise TypeError(f"{op}: expected at least one tensor")
    if ta and not tb:
        a_dt = a.dtype
        b = _scalar_or_array(b, a_dt, a.array)
        b_dt = b.dtype
    elif tb and not ta:
        b_dt = b.dtype
        a = _scalar_or_array(a, b_dt, b.array)
        a_dt = a.dtype
    else:
        a_dt, b_dt = a.dtype, b.dtype
        if a.array.__class__ is not b.array.__class__:
            raise RuntimeError(f"{op}: tensors on different devices ({a.device} and {b.device})")
    dt = a_dt if a_dt == b_dt else backend.result_dtype(a_dt, b_dt)
    if floating and dt.kind != "f" and not backend.is_floating(dt):
        dt = backend.DEFAULT_FLOAT
    if a_dt != dt:
        a = a.to(dt) if isinstance(a, Tensor) else a.astype(dt)
    if b_dt != dt:
        b = b.to(dt) if isinstance(b, Tensor) else b.astype(dt)
    return a, b


def _scalar_or_array(v, tensor_dtype, like):
    xp = xp_of(like)
    if v.__class__ is float:  # the common case first: a Python float keeps a float tensor's dtype
        return xp.asarray(v, dtype=tensor_dtype if tensor_dtype.kind == "f" or backend.is_floating(tensor_dtype)
                          else backend.DEFAULT_FLOAT)
    if backend.is_array(v):
        if v.ndim == 0:  # numpy scalar array: weak like a Python scalar
            return xp.asarray(v, dtype=backend.scalar_dtype(v.item(), tensor_dtype))
        return backend.with_default_dtype(xp.asarray(v))
    if hasattr(v, "dtype") and hasattr(v, "item"):  # numpy scalar types
        v = v.item()
    if isinstance(v, (int, float, bool)):
        return xp.asarray(v, dtype=backend.scalar_dtype(v, tensor_dtype))
    return Tensor(v).array


def _to(g, shape):
    """``g`` summed down to ``shape`` (the backward of broadcasting); ``g`` itself when it has it."""
    return g if g.shape == shape else dual.sum_to(g, shape)


class Add(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a + b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return _to(g, sa), _to(g, sb)


class Sub(Function):
    @staticmethod
    def forward(ctx, a, b):
        ctx.shapes = (a.shape, b.shape)
        return a - b

    @staticmethod
    def backward(ctx, g):
        sa, sb = ctx.shapes
        return _to(g, sa), _to(-g, sb) if ctx.needs_input_grad[1] else None


class Mul(Function):
    """Each side's gradient needs only the other side: a factor that gets no gradient is not kept
    for the other's sake (``x * mask`` keeps the mask, not ``x``, when only ``x`` needs grad)."""

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad
        ctx.save_for_backward(a if need_b else None, b if need_a else None)
        ctx.shapes = (a.shape, b.shape)
        return a * b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        sa, sb = ctx.shapes
        ga = _to(g * b, sa) if ctx.needs_input_grad[0] else None
        gb = _to(g * a, sb) if ctx.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    """The numerator is kept only when the denominator needs a gradient."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a if ctx.needs_input_grad[1] else None, b)
        ctx.shapes = (a.shape, b.shape)
        return a / b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        sa, sb = ctx.shapes
        ga = _to(g / b, sa) if ctx.needs_input_grad[0] else None
        gb = _to(-g * a / (b * b), sb) if ctx.needs_input_grad[1] else None
        return ga, gb


class Pow(Function):
    @staticmethod
    def forward(ctx, a, b):
        out = xp_of(a, b).power(a, b)
        ctx.save_for_backward(a, b, out)
        return out

    @staticmethod
    def backward(ctx, g):
        a, b, out = ctx.saved
        ga = gb = None
        if ctx.needs_input_grad[0]:
            # b * a**(b-1), written so a == 0 with b >= 1 gives the right (finite) value
            ga = _to(g * b * a ** (b - 1), a.shape)
        if ctx.needs_input_grad[1]:
            positive = a > 0  # d/db a**b = a**b log a; taken as 0 where a <= 0
            gb = _to(g * out * dual.log(dual.where(positive, a, 1)) * positive, b.shape)
        return ga, gb


class LogAddExp(Function):
    """log(e^a + e^b) without overflow; each side's gradient is its softmax weight."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(a, b)
        return xp_of(a, b).logaddexp(a, b)

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        wa = dual.sigmoid(a - b)  # e^a / (e^a + e^b), exact for |a - b| large
        return _to(g * wa, a.shape), _to(g * (1 - wa), b.shape)


class Maximum(Function):
    """Ties send half the gradient to each side (like PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(_share(a > b, a == b, a.dtype))
        ctx.shapes = (a.shape, b.shape)
        return xp_of(a, b).maximum(a, b)

    @staticmethod
    def backward(ctx, g):
        (w,) = ctx.saved  # a constant: 1 where a won, 1/2 on ties
        sa, sb = ctx.shapes
        return _to(g * w, sa), _to(g * (1 - w), sb)


class Minimum(Function):
    """Ties send half the gradient to each side (like PyTorch)."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.save_for_backward(_share(a < b, a == b, a.dtype))
        ctx.shapes = (a.shape, b.shape)
        return xp_of(a, b).minimum(a, b)

    backward = Maximum.backward


def _share(wins, ties, dtype):
    """The share of the gradient that goes to the first operand: 1, 0, or 1/2 on a tie."""
    return (wins + 0.5 * ties).astype(dtype if backend.is_floating(dtype) else backend.DEFAULT_FLOAT)


class Where(Function):
    @staticmethod
    def forward(ctx, cond, a, b):
        ctx.save_for_backward(cond)
        ctx.shapes = (a.shape, b.shape)
        return xp_of(a, b).where(cond, a, b)

    @staticmethod
    def backward(ctx, g):
        (cond,) = ctx.saved
        sa, sb = ctx.shapes
        ga = _to(dual.where(cond, g, 0), sa) if ctx.needs_input_grad[1] else None
        gb = _to(dual.where(cond, 0, g), sb) if ctx.needs_input_grad[2] else None
        return None, ga, gb


class Clamp(Function):
    """Gradient flows where min <= x <= max (boundaries included, as in PyTorch)."""

    @staticmethod
    def forward(ctx, x, lo, hi):
        inside = ((x >= lo) if lo is not None else True) & ((x <= hi) if hi is not None else True)
        ctx.save_for_backward(inside)
        out = xp_of(x).clip(x, lo, hi)
        return out if x.dtype.kind != "V" else rounded_to(x.dtype, out)  # NumPy widens bfloat16 clipped by floats

    @staticmethod
    def backward(ctx, g):
        (inside,) = ctx.saved
        return g * inside, None, None


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
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
    return _apply(Add, "add", *coerce(input, other, "add"))


def sub(input, other, alpha=1):
    if alpha != 1:
        other = mul(other, alpha) if isinstance(other, Tensor) else other * alpha
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
        return Tensor._make(q)
    return _apply(Div, "div", *coerce(input, other, "div", floating=True))


true_divide = divide = div
multiply = mul
subtract = sub


@autocast_op("pow")
def pow(input, exponent):
    return _apply(Pow, "pow", *coerce(input, exponent, "pow"))


def neg(input):
    return mul(input, -1)


negative = neg


def logaddexp(input, other):
    """log(exp(input) + exp(other)), elementwise with broadcasting, finite for large inputs."""
    return _apply(LogAddExp, "logaddexp", *coerce(input, other, "logaddexp", floating=True))


def maximum(input, other):
    return _apply(Maximum, "maximum", *coerce(input, other, "maximum"))


def minimum(input, other):
    return _apply(Minimum, "minimum", *coerce(input, other, "minimum"))


def where(condition, input, other):
    """Elements of ``input`` where ``condition`` holds, else of ``other`` (gradient routed likewise)."""
    cond = condition.array if isinstance(condition, Tensor) else condition
    if not isinstance(input, Tensor) and not isinstance(other, Tensor):
        input = Tensor(input)
    a, b = coerce(input, other, "where")
    try:
        return Where.apply(cond, a, b)
    except ValueError:
        check_broadcast("where", cond, a, b, labels=["condition", "input", "other"])
        raise


def clamp(input, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clamp: give at least one of min and max")
    if not backend.is_floating(input.dtype) and any(isinstance(v, float) for v in (min, max)):
        input = input.float()  # float bounds on an int tensor give float32 (not NumPy's float64)
    return Clamp.apply(input, min, max)


clip = clamp


def _data(x):
    return x.array if isinstance(x, Tensor) else x


class Compare(Function):
    """A comparison or other elementwise op without gradient, recorded as a node only inside
    ``keep_calls()`` (so an exporter sees masks made from the inputs); ``other`` is None for unary ops."""

    @staticmethod
    def forward(ctx, a, b, np_name):
        xp = xp_of(a) if b is None else xp_of(a, b)
        return getattr(xp, np_name)(a) if b is None else getattr(xp, np_name)(a, b)

    @staticmethod
    def backward(ctx, g):
        return None, None, None


def _compare(np_name, name=None, doc=None):
    name = name or np_name

    def fn(input, other):
        a, b = coerce(input, other, name)
        if is_keeping_calls():
            return Compare.apply(a, b, np_name)
        a, b = _data(a), _data(b)
        try:
            return Tensor._make(getattr(xp_of(a, b), np_name)(a, b))
        except ValueError:
            check_broadcast(name, a, b)
            raise

    fn.__name__ = name
    fn.__doc__ = doc or f"Elementwise ``{np_name}`` (a bool tensor; no gradient)."
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
floor_divide = _compare("floor_divide", doc="Elementwise floor(input / other), in the operands' common dtype "
                        "(no gradient).")
remainder = _compare("remainder", doc="Elementwise input - floor(input / other) * other: the remainder with "
                     "the sign of ``other``, as Python's % (no gradient).")
greater, less, not_equal = gt, lt, ne


def logical_not(input):
    if is_keeping_calls():
        return Compare.apply(input, None, "logical_not")
    return Tensor._make(xp_of(input.array).logical_not(input.array))


def equal(input, other) -> bool:
    """True when both tensors have the same shape and values (``torch.equal``)."""
    return input.shape == other.shape and bool((input.array == other.array).all())
