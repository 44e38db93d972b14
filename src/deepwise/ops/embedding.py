"""Embedding lookup: rows of a weight matrix picked by integer indices.

Backward sums the output gradient's rows into a zero matrix by index (``scatter_add_rows``), so an
index that appears several times accumulates every one of its gradients; the ``padding_idx`` row
gets none.
"""

from __future__ import annotations

from deepwise.autograd.function import Function
from deepwise.ops._util import scatter_add_rows, xp_of


class Embedding(Function):
    @staticmethod
    def forward(ctx, weight, indices, padding_idx, scale_grad_by_freq):
        ctx.indices, ctx.shape = indices, weight.shape
        ctx.padding_idx, ctx.scale_grad_by_freq = padding_idx, scale_grad_by_freq
        return weight[indices]

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        n, dim = ctx.shape
        flat = ctx.indices.reshape(-1)
        rows = g.reshape(-1, dim)
        if ctx.scale_grad_by_freq:
            counts = xp.bincount(flat, minlength=n)
            rows = rows / counts[flat][:, None].astype(g.dtype)
        grad = scatter_add_rows(n, flat, rows)
        if ctx.padding_idx is not None:
            grad[ctx.padding_idx] = 0
        return grad, None, None, None


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0, scale_grad_by_freq=False,
              sparse=False):
    """``weight[input]`` for an integer tensor ``input`` of any shape: output is input.shape + (dim,)."""
    from deepwise.tensor import Tensor  # noqa: PLC0415

    if max_norm is not None:
        raise NotImplementedError(
            "embedding: max_norm (renormalising looked-up rows in place) is not supported; "
            "leave max_norm=None and regularise the weights instead"
        )
    if sparse:
        raise NotImplementedError("embedding: sparse gradients are not supported; use sparse=False")
    if weight.ndim != 2:
        raise ValueError(f"embedding: weight must be 2-D (num_embeddings, embedding_dim), got {weight.shape}")
    indices = input.data if isinstance(input, Tensor) else input
    xp = xp_of(weight.data)
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
