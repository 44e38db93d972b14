"""Elementwise functions of one tensor. Each saves the cheapest thing its derivative needs."""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import xp_of
from deepwise.tensor import Tensor


class Abs(Function):
    """d|x|/dx = sign(x), 0 at 0 (PyTorch's choice)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * dual.sign(x)


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).exp(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / x


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).log1p(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g / (1 + x)


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g / (2 * y)


class Rsqrt(Function):
    @staticmethod
    def forward(ctx, x):
        y = 1 / xp_of(x).sqrt(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (-0.5) * y * y * y


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).sin(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * dual.cos(x)


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return xp_of(x).cos(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return -g * dual.sin(x)


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        y = xp_of(x).tanh(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * (1 - y * y)


class Sigmoid(Function):
    """1 / (1 + e^-x), computed without overflow for large |x|."""

    @staticmethod
    def forward(ctx, x):
        y = dual.sigmoid(x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g * y * (1 - y)


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x * x

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return 2 * g * x


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return dual.cast(g, ctx.dtype), None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        ctx.device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, g):
        if dual.is_tensor(g):
            return g.to(ctx.device), None
        return backend.to_device(g, ctx.device), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g


def _float_input(name, x):
    if x.dtype.kind not in "fc" and not backend.is_floating(x.dtype):
        x = x.float()
    return x


def abs(input):
    return Abs.apply(input)


@autocast_op("exp")
def exp(input):
    return Exp.apply(_float_input("exp", input))


@autocast_op("log")
def log(input):
    return Log.apply(_float_input("log", input))


@autocast_op("log1p")
def log1p(input):
    return Log1p.apply(_float_input("log1p", input))


def sqrt(input):
    return Sqrt.apply(_float_input("sqrt", input))


@autocast_op("rsqrt")
def rsqrt(input):
    return Rsqrt.apply(_float_input("rsqrt", input))


def sin(input):
    return Sin.apply(_float_input("sin", input))


def cos(input):
    return Cos.apply(_float_input("cos", input))


def tanh(input):
    return Tanh.apply(_float_input("tanh", input))


def sigmoid(input):
    return Sigmoid.apply(_float_input("sigmoid", input))


def square(input):
    return Square.apply(input)


def cast(input, dtype):
    return Cast.apply(input, dtype)


def to_device(input, device):
    return ToDevice.apply(input, device)


def clone(input):
    return Clone.apply(input)


def _no_grad_unary(name, np_name=None):
    def fn(input):
        return Tensor._make(getattr(xp_of(input.array), np_name or name)(input.array))

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{name}`` (no gradient flows through it)."
    return fn


sign = _no_grad_unary("sign")
floor = _no_grad_unary("floor")
ceil = _no_grad_unary("ceil")
round = _no_grad_unary("round")
isnan = _no_grad_unary("isnan")
isinf = _no_grad_unary("isinf")
isfinite = _no_grad_unary("isfinite")
