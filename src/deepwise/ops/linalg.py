"""Matrix products: ``matmul`` (with PyTorch's 1-D and batched rules) and the fused ``linear``.

Both backwards are written once with ``@`` and ``deepwise.ops.dual``: on arrays they are the same
GEMMs as a hand-written NumPy backward (the transposes are views, nothing is copied), on Tensors
they are matmuls again, so any order of derivative works.
"""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import rounded_to
from deepwise.ops.arithmetic import coerce
from deepwise.tensor import Tensor


class MatMul(Function):
    """(..., n, k) @ (..., k, m) with broadcast batch dims; 1-D operands are promoted and the added
    dim removed afterwards, as in PyTorch."""

    @staticmethod
    def forward(ctx, a, b):
        need_a, need_b = ctx.needs_input_grad  # a's gradient needs b, b's needs a
        ctx.save_for_backward(a if need_b else None, b if need_a else None)
        ctx.shapes = (a.shape, b.shape)
        if a.dtype.kind == "V":  # bfloat16 @ bfloat16 is float32 in NumPy: round once, as torch
            return rounded_to(a.dtype, a @ b)
        return a @ b

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved
        sa, sb = ctx.shapes
        sa2 = (1,) + sa if len(sa) == 1 else sa
        sb2 = sb + (1,) if len(sb) == 1 else sb
        g2 = g  # restore the dims that 1-D operands dropped; the column first, so 1-D @ 1-D (0-d g) works
        if len(sb) == 1:
            g2 = dual.reshape(g2, g2.shape + (1,))
        if len(sa) == 1:
            g2 = dual.reshape(g2, g2.shape[:-1] + (1,) + g2.shape[-1:])
        ga = gb = None
        # a reshape only where a 1-D operand's promoted dim is dropped: a view would cost the engine a copy
        if ctx.needs_input_grad[0]:
            b2 = dual.reshape(b, sb2) if len(sb) == 1 else b
            ga = dual.sum_to(g2 @ dual.swapaxes(b2, -1, -2), sa2)
            if len(sa) == 1:
                ga = dual.reshape(ga, sa)
        if ctx.needs_input_grad[1]:
            a2 = dual.reshape(a, sa2) if len(sa) == 1 else a
            if len(sa2) > 2 and len(sb2) == 2:
                # (B, n, k)^T @ (B, n, m) summed over B is one GEMM on the flattened batch
                gb = dual.swapaxes(dual.reshape(a2, (-1, sa2[-1])), 0, 1) @ dual.reshape(g2, (-1, g2.shape[-1]))
            else:
                gb = dual.swapaxes(a2, -1, -2) @ g2
            gb = dual.sum_to(gb, sb2)
            if len(sb) == 1:
                gb = dual.reshape(gb, sb)
        return ga, gb


@autocast_op("matmul")
def matmul(input, other):
    a, b = coerce(input, other, "matmul")
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


def _rows(x):
    """x as (rows, features): itself when 2-D (no view, so a leaf's gradient needs no copy)."""
    return x if x.ndim == 2 else dual.reshape(x, (-1, x.shape[-1]))


class Linear(Function):
    """y = x W^T + b in one node: one GEMM forward, two backward, on the flattened batch."""

    @staticmethod
    def forward(ctx, x, w, b):
        need_x, need_w = ctx.needs_input_grad[:2]  # x's gradient needs w, w's needs x
        ctx.save_for_backward(x if need_w else None, w if need_x else None)
        ctx.x_shape = x.shape
        y = _rows(x) @ w.T
        if b is not None:
            y += b
        if x.dtype.kind == "V":  # bfloat16: the float32 product plus bias, rounded once (as torch's addmm)
            y = rounded_to(x.dtype, y)
        return y if x.ndim == 2 else y.reshape(x.shape[:-1] + (w.shape[0],))

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved
        g2 = _rows(g)
        gx = gw = gb = None
        if ctx.needs_input_grad[0]:
            gx = g2 @ w
            gx = gx if len(ctx.x_shape) == 2 else dual.reshape(gx, ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gw = dual.swapaxes(g2, 0, 1) @ _rows(x)
        if ctx.needs_input_grad[2]:
            gb = dual.sum(g2, axis=0)
        return gx, gw, gb


@autocast_op("linear")
def linear(input, weight, bias=None):
    """x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch."""
    if input.ndim == 0 or input.shape[-1] != weight.shape[-1]:
        raise RuntimeError(
            f"linear: input of shape {input.shape} has {input.shape[-1] if input.ndim else 0} features, "
            f"but the weight {weight.shape} expects {weight.shape[-1]} (in_features)"
        )
    if input.dtype != weight.dtype:
        if input.dtype.kind not in "fc" and not backend.is_floating(input.dtype):  # int/bool: an error, as torch
            raise RuntimeError(f"linear: mat1 and mat2 must have the same dtype, but got {input.dtype} input and "
                               f"{weight.dtype} weight; convert the input first (input.float())")
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
