"""Embedding lookup: rows of a weight matrix picked by integer indices.

Backward sums the output gradient's rows into a zero matrix by index (``scatter_add_rows``), so an
index that appears several times accumulates every one of its gradients; the ``padding_idx`` row
gets none.
"""

from __future__ import annotations

from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._util import scatter_add_rows, xp_of
from deepwise.tensor import Tensor


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq):
        ctx.save_for_backward(indices)
        ctx.num = weight.shape[0]
        ctx.padding_idx, ctx.scale_grad_by_freq = padding_idx, scale_grad_by_freq
        return weight[indices]

    @staticmethod
    def backward(ctx, g):
        (indices,) = ctx.saved
        grad = dual.apply(EmbeddingGrad, g, indices.reshape(-1), num=ctx.num, padding_idx=ctx.padding_idx,
                          scale_grad_by_freq=ctx.scale_grad_by_freq)
        return grad, None, None, None


class EmbeddingGrad(Function):
    """The rows of ``g`` summed by index into a zero (num, dim) matrix (the backward of ``Embedding``).
    It is linear in ``g``: its own backward looks the rows up again, so every order works.

    With ``scale_grad_by_freq`` each row of ``g`` is divided by its index's count first. The lookup
    back leaves that division out (as PyTorch does): the gradient that reaches the weight passes
    through ``Embedding``'s backward, which divides again, and the two together are then the exact
    derivative of the first gradient with respect to the weight."""

    @staticmethod
    def forward(ctx, g, flat, *, num, padding_idx, scale_grad_by_freq):
        rows = g.reshape(-1, g.shape[-1])
        if scale_grad_by_freq:
            rows = rows / xp_of(g).bincount(flat, minlength=num)[flat][:, None].astype(g.dtype)
        grad = scatter_add_rows(num, flat, rows)
        if padding_idx is not None:
            grad[padding_idx] = 0
        ctx.save_for_backward(flat)
        ctx.shape, ctx.padding_idx = g.shape, padding_idx
        return grad

    @staticmethod
    def backward(ctx, gg):
        (flat,) = ctx.saved
        rows = gg[flat]  # not divided by the counts: see the class docstring
        if ctx.padding_idx is not None:
            rows = rows * dual.reshape(flat != ctx.padding_idx, (-1, 1))
        return dual.reshape(rows, ctx.shape), None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """``weight[input]`` for an integer tensor ``input`` of any shape: output is input.shape + (dim,)."""
    if max_norm is not None:
        raise NotImplementedError(
            "embedding: max_norm (renormalising looked-up rows in place) is not supported; "
            "leave max_norm=None and regularise the weights instead"
        )
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use sparse=False")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    indices = input.array if isinstance(input, Tensor) else input
    xp = xp_of(weight.array)
    indices = xp.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"embedding: indices must be an integer tensor, got {indices.dtype}")
    n = weight.shape[0]
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= n):
        bad = int(indices.min()) if int(indices.min()) < 0 else int(indices.max())
        raise IndexError(f"embedding: index {bad} is out of range for an embedding of {n} rows (0..{n - 1})")
    if padding_idx is not None:
        if not -n <= padding_idx < n:
            raise ValueError(f"embedding: padding_idx {padding_idx} is out of range for {n} rows")
        padding_idx = padding_idx % n
    return Embedding.apply(weight, indices, padding_idx, bool(scale_grad_by_freq))


__all__ = ["Embedding", "embedding"]
