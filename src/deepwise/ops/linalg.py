"""Matrix products: ``matmul`` (with PyTorch's 1-D and batched rules) and the fused ``linear``."""

from __future__ import annotations

from deepwise.autograd.function import Function
from deepwise.ops._util import unbroadcast, xp_of


class MatMul(Function):
    """(..., n, k) @ (..., k, m) with broadcast batch dims; 1-D operands are promoted and the added
    dim removed afterwards, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        ctx.a, ctx.b = a, b
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.a, ctx.b
        xp = xp_of(g)
        a2 = a[None, :] if a.ndim == 1 else a
        b2 = b[:, None] if b.ndim == 1 else b
        g2 = g  # restore the dims that 1-D operands dropped; the column first, so 1-D @ 1-D (0-d g) works
        if b.ndim == 1:
            g2 = xp.expand_dims(g2, -1)
        if a.ndim == 1:
            g2 = xp.expand_dims(g2, -2)
        ga = gb = None
        if ctx.needs_input_grad[0]:
            ga = g2 @ xp.swapaxes(b2, -1, -2)
            ga = unbroadcast(ga, a2.shape)
            if a.ndim == 1:  # reshape only to drop the promoted dim: a view would cost the engine a copy
                ga = ga.reshape(a.shape)
        if ctx.needs_input_grad[1]:
            if a2.ndim > 2 and b2.ndim == 2:
                # (B, n, k)^T @ (B, n, m) summed over B is one GEMM on the flattened batch
                gb = a2.reshape(-1, a2.shape[-1]).T @ g2.reshape(-1, g2.shape[-1])
            else:
                gb = xp.swapaxes(a2, -1, -2) @ g2
            gb = unbroadcast(gb, b2.shape)
            if b.ndim == 1:
                gb = gb.reshape(b.shape)
        return ga, gb

    @staticmethod
    def backward_graph(ctx, g):
        a, b = ctx.inputs
        from deepwise.tensor import Tensor  # noqa: PLC0415

        a = a if a is not None else Tensor._make(ctx.a)
        b = b if b is not None else Tensor._make(ctx.b)
        if a.ndim < 2 or b.ndim < 2:
            raise RuntimeError("matmul: double backward supports operands of 2 or more dims")
        from deepwise.ops.arithmetic import _sum_to  # noqa: PLC0415

        ga = _sum_to(g @ b.transpose(-1, -2), a.shape)
        gb = _sum_to(a.transpose(-1, -2) @ g, b.shape)
        return ga, gb


def matmul(input, other):
    from deepwise.ops.arithmetic import coerce  # noqa: PLC0415

    a, b = coerce(input, other, "matmul")
    from deepwise.tensor import Tensor  # noqa: PLC0415

    a = a if isinstance(a, Tensor) else Tensor._make(a)
    b = b if isinstance(b, Tensor) else Tensor._make(b)
    if a.ndim == 0 or b.ndim == 0:
        raise RuntimeError(f"matmul: both operands need at least 1 dim, got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[0] if b.ndim == 1 else b.shape[-2]
    if k_a != k_b:
        raise RuntimeError(
            f"matmul: shapes {a.shape} and {b.shape} cannot be multiplied ({k_a} columns vs {k_b} rows)"
        )
    try:
        return MatMul.apply(a, b)
    except ValueError:
        if a.ndim > 2 and b.ndim > 2:
            raise RuntimeError(
                f"matmul: the batch dims of shapes {a.shape} and {b.shape} cannot be broadcast together"
            ) from None
        raise


mm = bmm = matmul


def dot(input, other):
    if input.ndim != 1 or other.ndim != 1:
        raise RuntimeError(f"dot: expects 1-D tensors, got {input.shape} and {other.shape}")
    return matmul(input, other)


class Linear(Function):
    """y = x W^T + b in one node: one GEMM forward, two backward, on the flattened batch."""

    @staticmethod
    def forward(ctx, x, w, b):
        x2 = x.reshape(-1, x.shape[-1])
        ctx.x2, ctx.w, ctx.shape = x2, w, x.shape
        y = x2 @ w.T
        if b is not None:
            y += b
        return y.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, g):
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ ctx.w).reshape(ctx.shape) if ctx.needs_input_grad[0] else None
        gw = g2.T @ ctx.x2 if ctx.needs_input_grad[1] else None
        gb = g2.sum(axis=0) if ctx.needs_input_grad[2] else None
        return gx, gw, gb

    @staticmethod
    def backward_graph(ctx, g):
        x, w, b = ctx.inputs
        from deepwise.tensor import Tensor  # noqa: PLC0415

        x = x if x is not None else Tensor._make(ctx.x2.reshape(ctx.shape))
        w = w if w is not None else Tensor._make(ctx.w)
        g2 = g.reshape(-1, g.shape[-1])
        gx = (g2 @ w).reshape(ctx.shape)
        gw = g2.T @ x.reshape(-1, x.shape[-1])
        gb = g2.sum(0) if ctx.needs_input_grad[2] else None
        return gx, gw, gb


def linear(input, weight, bias=None):
    """x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} features, "
            f"but the weight {weight.shape} expects {weight.shape[-1]} (in_features)"
        )
    if input.dtype != weight.dtype:
        input = input.to(weight.dtype)
    try:
        return Linear.apply(input, weight, bias)
    except ValueError:
        if bias is not None and tuple(bias.shape) not in ((), (1,), (weight.shape[0],)):
            raise RuntimeError(
                f"linear: bias of shape {tuple(bias.shape)} does not match the weight {weight.shape}: "
                f"expected ({weight.shape[0]},) (out_features)"
            ) from None
        raise
