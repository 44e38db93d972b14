"""Collectives that autograd can differentiate (PyTorch's ``torch.distributed.nn`` idea).

``all_reduce(x)`` returns the sum of ``x`` over all ranks as a new Tensor in the graph. Every rank's
output depends on every rank's input with derivative 1, so the gradient of a rank's input is the sum,
over ranks, of the gradients of their outputs: backward is an all-reduce of the gradient too. This is
what SyncBatchNorm's statistics are built from, so its backward needs no formula of its own.
"""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.distributed import collectives
from deepwise.tensor import Tensor

__all__ = ["all_reduce"]


def _summed(array):
    out = collectives.host_array(array).copy()
    collectives.reduce_array(out, "sum")
    return backend.get_array_module(array).asarray(out)


class AllReduceSum(Function):
    """The sum over ranks; its derivative is the same sum of the gradients."""

    @staticmethod
    def forward(ctx, x):
        return _summed(x)

    @staticmethod
    def backward(ctx, g):
        return all_reduce(g) if isinstance(g, Tensor) else _summed(g)


def all_reduce(tensor, op="sum", group=None):
    """The sum of ``tensor`` over all ranks, differentiable (only ``op="sum"``)."""
    if str(op).lower() != "sum":
        raise ValueError(f"distributed.nn.all_reduce: only the sum is differentiable here, got op={op!r}")
    if not isinstance(tensor, Tensor):
        raise TypeError(f"distributed.nn.all_reduce: expected a Tensor, got {type(tensor).__name__}")
    return AllReduceSum.apply(tensor)
