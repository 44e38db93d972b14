"""Activation functions and (log-)softmax. Softmax meets log only through log-sum-exp."""

from __future__ import annotations

import math

from deepwise import backend, threads
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import in_float32, normalize_dim, xp_of
from deepwise.tensor import Tensor


class ReLU(Function):
    """Saves its output (which the next layer usually keeps anyway), not a mask of its own: the
    gradient flows where the output is positive.

    ``maximum(0, x)``, with 0 as the first operand: NaN stays NaN, -inf and negatives give +0.0 and
    -0.0 stays -0.0 -- PyTorch's values bit for bit (``x * (x > 0)`` turned -inf into NaN)."""

    @staticmethod
    def forward(ctx, x):
        xp = xp_of(x)
        zero = x.dtype.type(0)
        y = _split_elementwise(lambda out, a: xp.maximum(zero, a, out=out), x, x)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        if isinstance(g, Tensor):  # create_graph: the mask is a constant, relu is piecewise linear
            return g * (y > 0)
        return _split_elementwise(lambda out, a, b: xp_of(a).multiply(a, b > 0, out=out), g, g, y)


def _split_elementwise(kernel, like, *arrays):
    """``kernel(out, *arrays)`` into a new array shaped and laid out like ``like``; a big pass is cut
    along axis 0 into one range per thread of the intra-op pool (the arrays all have its shape)."""
    xp = xp_of(like)
    out = xp.empty_like(like)
    if like.ndim == 0 or like.size < threads.SPLIT_MIN or any(a.shape != like.shape for a in arrays):
        kernel(out, *arrays)
        return out

    def part(i, j):
        kernel(out[i:j], *(a[i:j] for a in arrays))

    threads.run_split(part, like.shape[0], like.size, xp)
    return out


class LeakyReLU(Function):
    """Saves where the input was positive (one byte an element), not a float scale.

    For a slope in (0, 1] (every use we know of) leaky_relu(x) = max(x, slope * x), and its local
    derivative max(positive, slope): elementwise passes with no branch per element. A select on a
    mask of random signs (``where``) took ~18x as long on a conv activation (12 ms against 0.7 ms
    for 2M float32 values, one thread), the branch mispredicted on every other element."""

    @staticmethod
    def forward(ctx, x, slope):
        xp = xp_of(x)
        positive = x > 0
        ctx.save_for_backward(positive)
        ctx.slope = slope
        s = x.dtype.type(slope)
        if 0 < slope <= 1:  # (slope 0 would turn +inf into 0 * inf = NaN)
            y = xp.multiply(x, s, out=xp.empty_like(x))  # an array even for a 0-d x
            return xp.maximum(x, y, out=y)  # NaN propagates, as in x * slope
        return xp.where(positive, x, x * s)

    @staticmethod
    def backward(ctx, g):
        (positive,) = ctx.saved
        one, slope = g.dtype.type(1), g.dtype.type(ctx.slope)
        if 0 < ctx.slope <= 1:
            scale = dual.maximum(dual.cast(positive, g.dtype), slope)
        else:
            scale = dual.where(positive, one, slope)
        return g * scale, None  # 1 or the slope: a constant, so this also serves higher orders


class ELU(Function):
    """max(0, x) + alpha (e^min(x, 0) - 1): one side is 0 wherever the other is not, so the sum is
    the select without a branch per element (a select on random signs mispredicts; the same bits)."""

    @staticmethod
    def forward(ctx, x, alpha):
        xp = xp_of(x)
        positive = x > 0
        zero = x.dtype.type(0)
        y = alpha * xp.expm1(xp.minimum(zero, x))  # 0 first: -0.0 stays -0.0, as in PyTorch
        y += xp.maximum(zero, x)
        ctx.save_for_backward(positive, y)
        ctx.alpha = alpha
        return y

    @staticmethod
    def backward(ctx, g):
        positive, y = ctx.saved
        # on the negative side elu(x) + alpha = alpha e^x, its own derivative
        if isinstance(g, Tensor):
            return g * dual.where(positive, 1, y + ctx.alpha), None
        xp = xp_of(g)
        pos = positive.astype(y.dtype)
        scale = xp.minimum(y, 0) + y.dtype.type(ctx.alpha)  # y + alpha on the negative side
        scale *= 1 - pos
        scale += pos  # 1 on the positive side
        return g * scale, None


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


def _normal_cdf(x):
    return 0.5 * (1 + erf(x * _INV_SQRT_2))


def _normal_pdf(x):
    return _INV_SQRT_2PI * dual.exp(-0.5 * x * x)


def _tanh_inner(x):
    return _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)


class GELU(Function):
    @staticmethod
    def forward(ctx, x, approximate):
        ctx.approximate = approximate
        if approximate == "tanh":
            th = xp_of(x).tanh(_tanh_inner(x))
            ctx.save_for_backward(x, th)
            return 0.5 * x * (1 + th)
        cdf = _normal_cdf(x)
        ctx.save_for_backward(x, cdf)
        return x * cdf

    @staticmethod
    def backward(ctx, g):
        x, inner = ctx.saved  # tanh(inner) or Phi(x): kept by forward, rebuilt from x under create_graph
        if ctx.approximate == "tanh":
            th = dual.recompute(inner, lambda x: dual.tanh(_tanh_inner(x)), x)
            d_inner = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x * x)
            return g * (0.5 * (1 + th) + 0.5 * x * (1 - th * th) * d_inner), None
        cdf = dual.recompute(inner, _NormalCdf.apply, x)
        return g * (cdf + x * _normal_pdf(x)), None


class _NormalCdf(Function):
    """Phi(x) = (1 + erf(x / sqrt 2)) / 2 as an op of its own (GELU's double backward needs it)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return _normal_cdf(x)

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        return g * _normal_pdf(x)


class SiLU(Function):
    @staticmethod
    def forward(ctx, x):
        s = dual.sigmoid(x)
        ctx.save_for_backward(x, s)
        return x * s

    @staticmethod
    def backward(ctx, g):
        x, s = ctx.saved
        s = dual.recompute(s, dual.sigmoid, x)
        return g * s * (1 + x * (1 - s))


class Softplus(Function):
    """log(1 + e^(beta x)) / beta, linear above ``threshold`` (PyTorch's rule)."""

    @staticmethod
    def forward(ctx, x, beta, threshold):
        xp = xp_of(x)
        bx = beta * x
        ctx.save_for_backward(x)
        ctx.beta, ctx.threshold = beta, threshold
        # log(1 + e^bx) = max(bx, 0) + log1p(e^-|bx|): NumPy's logaddexp(0, bx) is the same sum
        # through scalar libm calls, 10x slower (42 vs 4.2 ms on 2M float32 values)
        soft = xp.log1p(xp.exp(-xp.abs(bx)))
        soft += xp.maximum(bx, 0)
        soft /= beta
        return xp.where(bx > threshold, x, soft.astype(x.dtype, copy=False))

    @staticmethod
    def backward(ctx, g):
        (x,) = ctx.saved
        bx = ctx.beta * x
        return g * dual.where(bx > ctx.threshold, 1, dual.sigmoid(bx)), None, None


class Softmax(Function):
    @staticmethod
    def forward(ctx, x, dim):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(Softmax, ctx, x, dim)
        xp = xp_of(x)
        e = xp.exp(x - x.max(axis=dim, keepdims=True))
        y = e / e.sum(axis=dim, keepdims=True)
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return y * (g - dual.sum(g * y, axis=ctx.dim, keepdims=True)), None


class LogSoftmax(Function):
    """x - logsumexp(x): finite for logits of any size."""

    @staticmethod
    def forward(ctx, x, dim):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(LogSoftmax, ctx, x, dim)
        xp = xp_of(x)
        shifted = x - x.max(axis=dim, keepdims=True)
        y = shifted - xp.log(xp.exp(shifted).sum(axis=dim, keepdims=True))
        ctx.save_for_backward(y)
        ctx.dim = dim
        return y

    @staticmethod
    def backward(ctx, g):
        (y,) = ctx.saved
        return g - dual.exp(y) * dual.sum(g, axis=ctx.dim, keepdims=True), None


def _float(x):
    return x if (x.dtype.kind == "f" or backend.is_floating(x.dtype)) else x.float()


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


@autocast_op("softplus")
def softplus(input, beta=1.0, threshold=20.0):
    return Softplus.apply(_float(input), float(beta), float(threshold))


def _one_dim(dim, ndim, op):
    if dim is None:
        if ndim > 1:
            raise ValueError(f"{op}: pass dim= explicitly for a tensor of {ndim} dimensions")
        dim = -1 if ndim else 0
    return normalize_dim(dim, ndim, op)[0] if ndim else None


@autocast_op("softmax")
def softmax(input, dim=None, dtype=None):
    """exp(x) / sum(exp(x)) along ``dim``, computed after subtracting the max."""
    x = _float(input) if dtype is None else input.to(dtype)
    return Softmax.apply(x, _one_dim(dim, x.ndim, "softmax"))


@autocast_op("log_softmax")
def log_softmax(input, dim=None, dtype=None):
    """log(softmax(x)) computed as x - logsumexp(x) along ``dim``."""
    x = _float(input) if dtype is None else input.to(dtype)
    return LogSoftmax.apply(x, _one_dim(dim, x.ndim, "log_softmax"))
