"""Elementwise functions of one tensor. Each saves the cheapest thing its derivative needs."""

from __future__ import annotations

from deepwise.autograd.function import Function
from deepwise.ops._util import xp_of


def _T():
    from deepwise.tensor import Tensor  # noqa: PLC0415

    return Tensor


class Abs(Function):
    """d|x|/dx = sign(x), 0 at 0 (PyTorch's choice)."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return xp_of(x).abs(x)

    @staticmethod
    def backward(ctx, g):
        return g * xp_of(g).sign(ctx.x)

    @staticmethod
    def backward_graph(ctx, g):
        return g * _T()._make(xp_of(ctx.x).sign(ctx.x))


class Exp(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = xp_of(x).exp(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return g * ctx.y

    @staticmethod
    def backward_graph(ctx, g):
        return g * exp(ctx.inputs[0])


class Log(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return xp_of(x).log(x)

    @staticmethod
    def backward(ctx, g):
        return g / ctx.x

    @staticmethod
    def backward_graph(ctx, g):
        return g / ctx.inputs[0]


class Log1p(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return xp_of(x).log1p(x)

    @staticmethod
    def backward(ctx, g):
        return g / (1 + ctx.x)

    @staticmethod
    def backward_graph(ctx, g):
        return g / (1 + ctx.inputs[0])


class Sqrt(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = xp_of(x).sqrt(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        return g / (2 * ctx.y)

    @staticmethod
    def backward_graph(ctx, g):
        return g / (2 * sqrt(ctx.inputs[0]))


class Rsqrt(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = 1 / xp_of(x).sqrt(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return g * (-0.5) * y * y * y

    @staticmethod
    def backward_graph(ctx, g):
        y = rsqrt(ctx.inputs[0])
        return g * (-0.5) * y * y * y


class Sin(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return xp_of(x).sin(x)

    @staticmethod
    def backward(ctx, g):
        return g * xp_of(g).cos(ctx.x)

    @staticmethod
    def backward_graph(ctx, g):
        return g * cos(ctx.inputs[0])


class Cos(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return xp_of(x).cos(x)

    @staticmethod
    def backward(ctx, g):
        return -g * xp_of(g).sin(ctx.x)

    @staticmethod
    def backward_graph(ctx, g):
        return -g * sin(ctx.inputs[0])


class Tanh(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.y = xp_of(x).tanh(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return g * (1 - y * y)

    @staticmethod
    def backward_graph(ctx, g):
        y = tanh(ctx.inputs[0])
        return g * (1 - y * y)


class Sigmoid(Function):
    """1 / (1 + e^-x), computed without overflow for large |x|."""

    @staticmethod
    def forward(ctx, x):
        ctx.y = stable_sigmoid(x)
        return ctx.y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return g * y * (1 - y)

    @staticmethod
    def backward_graph(ctx, g):
        y = sigmoid(ctx.inputs[0])
        return g * y * (1 - y)


def stable_sigmoid(x):
    xp = xp_of(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]: never overflows
    return xp.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype, copy=False)


class Square(Function):
    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return x * x

    @staticmethod
    def backward(ctx, g):
        return 2 * g * ctx.x

    @staticmethod
    def backward_graph(ctx, g):
        return 2 * g * ctx.inputs[0]


class Cast(Function):
    @staticmethod
    def forward(ctx, x, dtype):
        ctx.dtype = x.dtype
        return x.astype(dtype)

    @staticmethod
    def backward(ctx, g):
        return g.astype(ctx.dtype), None

    @staticmethod
    def backward_graph(ctx, g):
        return g.to(ctx.dtype), None


class ToDevice(Function):
    @staticmethod
    def forward(ctx, x, device):
        from deepwise import backend  # noqa: PLC0415

        ctx.device = backend.device_of(x)
        return backend.to_device(x, device)

    @staticmethod
    def backward(ctx, g):
        from deepwise import backend  # noqa: PLC0415

        return backend.to_device(g, ctx.device), None


class Clone(Function):
    @staticmethod
    def forward(ctx, x):
        return x.copy()

    @staticmethod
    def backward(ctx, g):
        return g

    @staticmethod
    def backward_graph(ctx, g):
        return g


def _float_input(name, x):
    if x.dtype.kind not in "fc":
        x = x.float()
    return x


def abs(input):  # noqa: A001
    return Abs.apply(input)


def exp(input):
    return Exp.apply(_float_input("exp", input))


def log(input):
    return Log.apply(_float_input("log", input))


def log1p(input):
    return Log1p.apply(_float_input("log1p", input))


def sqrt(input):
    return Sqrt.apply(_float_input("sqrt", input))


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
        return _T()._make(getattr(xp_of(input.data), np_name or name)(input.data))

    fn.__name__ = name
    fn.__doc__ = f"Elementwise ``{name}`` (no gradient flows through it)."
    return fn


sign = _no_grad_unary("sign")
floor = _no_grad_unary("floor")
ceil = _no_grad_unary("ceil")
round = _no_grad_unary("round")  # noqa: A001
isnan = _no_grad_unary("isnan")
isinf = _no_grad_unary("isinf")
isfinite = _no_grad_unary("isfinite")
