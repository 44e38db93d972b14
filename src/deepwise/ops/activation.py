"""Activation functions and (log-)softmax. Softmax meets log only through log-sum-exp."""

from __future__ import annotations

import math

from deepwise.autograd.function import Function
from deepwise.ops._util import normalize_dim, xp_of
from deepwise.ops.unary import stable_sigmoid


class ReLU(Function):
    @staticmethod
    def forward(ctx, x):
        mask = x > 0
        ctx.mask = mask
        return x * mask

    @staticmethod
    def backward(ctx, g):
        return g * ctx.mask

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.tensor import Tensor  # noqa: PLC0415

        return g * Tensor._make(ctx.mask.astype(g.dtype))


class LeakyReLU(Function):
    @staticmethod
    def forward(ctx, x, slope):
        xp = xp_of(x)
        ctx.scale = xp.where(x > 0, x.dtype.type(1), x.dtype.type(slope))
        return x * ctx.scale

    @staticmethod
    def backward(ctx, g):
        return g * ctx.scale, None

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.tensor import Tensor  # noqa: PLC0415

        return g * Tensor._make(ctx.scale), None


class ELU(Function):
    @staticmethod
    def forward(ctx, x, alpha):
        xp = xp_of(x)
        neg = alpha * xp.expm1(xp.minimum(x, 0))
        ctx.x, ctx.alpha, ctx.neg = x, alpha, neg
        return xp.where(x > 0, x, neg)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        return g * xp.where(ctx.x > 0, 1, ctx.neg + ctx.alpha).astype(g.dtype), None

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.arithmetic import where  # noqa: PLC0415

        x = ctx.inputs[0]
        pos = _const(ctx.x > 0)
        # on the negative side elu(x) + alpha = alpha * e^x: the same numbers as the array backward
        return g * where(pos, 1.0, ELU.apply(x, ctx.alpha) + ctx.alpha), None


def _const(arr):
    """A constant Tensor (a mask or a saved array) for backward_graph."""
    from deepwise.tensor import Tensor  # noqa: PLC0415

    return Tensor._make(arr)


def erf(x):
    """Error function to ~1e-7 (Abramowitz & Stegun 7.1.26 refined by one Newton-free series term).

    NumPy has no erf; this rational approximation keeps the core free of SciPy."""
    xp = xp_of(x)
    s = xp.sign(x)
    a = xp.abs(x)
    t = 1.0 / (1.0 + 0.5 * a)
    # Numerical Recipes erfc (Chebyshev fit), fractional error < 1.2e-7 everywhere
    poly = -a * a - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 + t * (
        -0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (
            -0.82215223 + t * 0.17087277))))))))
    return (s * (1.0 - t * xp.exp(poly))).astype(x.dtype, copy=False)


_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class GELU(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        xp = xp_of(x)
        ctx.x, ctx.approximate = x, approximate
        if approximate == "tanh":
            inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
            ctx.th = xp.tanh(inner)
            return 0.5 * x * (1 + ctx.th)
        ctx.cdf = 0.5 * (1 + erf(x * _INV_SQRT_2))
        return x * ctx.cdf

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        x = ctx.x
        if ctx.approximate == "tanh":
            th = ctx.th
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * d_inner), None
        pdf = _INV_SQRT_2PI * xp.exp(-0.5 * x * x)
        return g * (ctx.cdf + x * pdf), None

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.unary import exp, tanh  # noqa: PLC0415

        x = ctx.inputs[0]
        if ctx.approximate == "tanh":
            th = tanh(_SQRT_2_OVER_PI * (x + 0.044715 * x * x * x))
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * d_inner), None
        pdf = _INV_SQRT_2PI * exp(-0.5 * x * x)
        return g * (_NormalCdf.apply(x) + x * pdf), None


class _NormalCdf(Function):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 as an op of its own (GELU's double backward needs it)."""

    @staticmethod
    def forward(ctx, x):
        ctx.x = x
        return 0.5 * (1 + erf(x * _INV_SQRT_2))

    @staticmethod
    def backward(ctx, g):
        x = ctx.x
        return g * (_INV_SQRT_2PI * xp_of(x).exp(-0.5 * x * x))

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.unary import exp  # noqa: PLC0415

        x = ctx.inputs[0]
        return g * (_INV_SQRT_2PI * exp(-0.5 * x * x))


class SiLU(Function):
    @staticmethod
    def forward(ctx, x):
        s = stable_sigmoid(x)
        ctx.x, ctx.s = x, s
        return x * s

    @staticmethod
    def backward(ctx, g):
        s = ctx.s
        return g * s * (1 + ctx.x * (1 - s))

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.unary import sigmoid  # noqa: PLC0415

        x = ctx.inputs[0]
        s = sigmoid(x)
        return g * s * (1 + x * (1 - s))


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, linear above ``threshold`` (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = xp_of(x)
        bx = beta * x
        ctx.x, ctx.beta, ctx.threshold = x, beta, threshold
        soft = (xp.logaddexp(0, bx) / beta).astype(x.dtype, copy=False)
        return xp.where(bx > threshold, x, soft)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        bx = ctx.beta * ctx.x
        return g * xp.where(bx > ctx.threshold, 1, stable_sigmoid(bx)).astype(g.dtype), None, None

    @staticmethod
    def backward_graph(ctx, g):
        from deepwise.ops.arithmetic import where  # noqa: PLC0415
        from deepwise.ops.unary import sigmoid  # noqa: PLC0415

        bx = ctx.beta * ctx.inputs[0]
        linear = _const(ctx.beta * ctx.x > ctx.threshold)
        return g * where(linear, 1.0, sigmoid(bx)), None, None


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        xp = xp_of(x)
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.y, ctx.dim = y, dim
        return y

    @staticmethod
    def backward(ctx, g):
        y = ctx.y
        return y * (g - (g * y).sum(axis=ctx.dim, keepdims=True)), None

    @staticmethod
    def backward_graph(ctx, g):
        y = softmax(ctx.inputs[0], ctx.dim)
        return y * (g - (g * y).sum(dim=ctx.dim, keepdim=True)), None


class LogSoftmax(Function):
    """x - logsumexp(x): finite for logits of any size."""

    @staticmethod
    def forward(ctx, x, dim):
        xp = xp_of(x)
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.y, ctx.dim = y, dim
        return y

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        return g - xp.exp(ctx.y) * g.sum(axis=ctx.dim, keepdims=True), None

    @staticmethod
    def backward_graph(ctx, g):
        p = softmax(ctx.inputs[0], ctx.dim)
        return g - p * g.sum(dim=ctx.dim, keepdim=True), None


def _float(x):
    return x if x.dtype.kind == "f" else x.float()


def relu(input, inplace=False):
    return ReLU.apply(input)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return LeakyReLU.apply(_float(input), float(negative_slope))


def elu(input, alpha=1.0, inplace=False):
    return ELU.apply(_float(input), float(alpha))


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return GELU.apply(_float(input), approximate)


def silu(input, inplace=False):
    return SiLU.apply(_float(input))


def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(_float(input), float(beta), float(threshold))


def _one_dim(dim, ndim, op):
    if dim is None:
        if ndim > 1:
            raise ValueError(f"{op}: pass dim= explicitly for a tensor of {ndim} dimensions")
        dim = -1 if ndim else 0
    return normalize_dim(dim, ndim, op)[0] if ndim else None


def softmax(input, dim=None, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``, computed after subtracting the max."""
    x = _float(input) if dtype is None else input.to(dtype)
    return Softmax.apply(x, _one_dim(dim, x.ndim, "softmax"))


def log_softmax(input, dim=None, dtype=None):
    """log(softmax(x)) computed as x - logsumexp(x) along ``dim``."""
    x = _float(input) if dtype is None else input.to(dtype)
    return LogSoftmax.apply(x, _one_dim(dim, x.ndim, "log_softmax"))
