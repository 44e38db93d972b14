"""Indexing: ``x[...]``, gather/scatter, masks, one-hot, sorting."""

from __future__ import annotations

from collections import namedtuple

import numpy as np  # index lists are host data, never tensor data

from deepwise import backend
from deepwise.autograd.function import Function, is_keeping_calls
from deepwise.ops import dual
from deepwise.ops._util import normalize_dim, xp_of
from deepwise.tensor import Tensor

values_indices = namedtuple("values_indices", ["values", "indices"])  # what sort, topk, max(dim) return


def to_index(index):
    """Replace tensors inside an index expression by their arrays (lists become arrays)."""
    if isinstance(index, tuple):
        return tuple(to_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.array
    if isinstance(index, list):
        return np.asarray([i.item() if isinstance(i, Tensor) else i for i in index])
    return index


def _is_basic(index):
    items = index if isinstance(index, tuple) else (index,)
    return all(i is None or i is Ellipsis or isinstance(i, (int, slice)) for i in items)


class GetItem(Function):
    """Basic indexing (ints, slices, None, ...) gives a view; advanced indexing (int arrays, bool
    masks) copies, and its backward adds with ``add.at`` so repeated indices accumulate."""

    @staticmethod
    def forward(ctx, x, index):
        ctx.index, ctx.shape, ctx.dtype = index, x.shape, x.dtype
        ctx.basic = _is_basic(index)
        return x[index]

    @staticmethod
    def backward(ctx, g):
        return dual.apply(IndexBackward, g, ctx.index, ctx.shape, ctx.basic), None


class IndexBackward(Function):
    """Zeros of ``shape`` with ``g`` put at ``index`` (added, for repeated advanced indices): the
    backward of ``x[index]``, whose own backward is ``x[index]`` again -- so any order works."""

    @staticmethod
    def forward(ctx, g, index, shape, basic):
        ctx.index = index
        xp = xp_of(g)
        out = xp.zeros(shape, g.dtype)
        if basic:
            out[index] = g
        else:
            xp.add.at(out, index, g)
        return out

    @staticmethod
    def backward(ctx, gg):
        return gg[ctx.index], None, None, None


def getitem(input, index):
    index = to_index(index)
    try:
        if input.requires_grad or is_keeping_calls():
            return GetItem.apply(input, index)
        return Tensor._make(input.array[index])
    except IndexError as exc:
        raise IndexError(f"index {_describe(index)} is invalid for a tensor of shape {input.shape}: {exc}") from None


def _describe(index):
    items = index if isinstance(index, tuple) else (index,)
    return "[" + ", ".join(f"array{tuple(i.shape)}" if hasattr(i, "shape") else repr(i) for i in items) + "]"


class Gather(Function):
    @staticmethod
    def forward(ctx, x, axis, index):
        ctx.save_for_backward(index)
        ctx.axis, ctx.shape = axis, x.shape
        return xp_of(x).take_along_axis(_leading_block(x, index, axis), index, axis=axis)

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved
        return dual.apply(GatherBackward, g, ctx.axis, index, ctx.shape), None, None


class GatherBackward(Function):
    """Zeros of ``shape`` with ``g`` added at ``index`` along ``axis``: the backward of ``gather``
    (and of ``max(dim)``), whose own backward is ``gather`` again. ``unique=True`` says that no
    index repeats within a slice, so a plain put replaces the slower accumulating add."""

    @staticmethod
    def forward(ctx, g, axis, index, shape, unique=False):
        ctx.save_for_backward(index)
        ctx.axis = axis
        xp = xp_of(g)
        out = xp.zeros(shape, g.dtype)
        if unique:
            xp.put_along_axis(out, index, g, axis=axis)
        else:
            _add_along_axis(out, index, g, axis, xp)
        return out

    @staticmethod
    def backward(ctx, gg):
        (index,) = ctx.saved
        return dual.apply(Gather, gg, ctx.axis, index), None, None, None


def _leading_block(x, index, axis):
    """``x`` cut to ``index``'s size in every dim but ``axis``: gather/scatter_add allow an index
    smaller than the tensor there (as in PyTorch), while ``take_along_axis`` would broadcast."""
    if all(n == m for d, (n, m) in enumerate(zip(index.shape, x.shape)) if d != axis):
        return x
    return x[tuple(slice(None) if d == axis else slice(0, n) for d, n in enumerate(index.shape))]


def _add_along_axis(out, index, values, axis, xp):
    """out[..., index[i], ...] += values[i] along ``axis`` with repeated indices accumulating."""
    grids = list(xp.indices(index.shape, sparse=True))
    grids[axis] = index
    xp.add.at(out, tuple(grids), values)


def _check_index(name, input, index, axis):
    if index.dtype.kind not in "iu":
        raise TypeError(f"{name}: index must be an integer tensor, got {index.dtype}")
    if index.ndim != input.ndim:
        raise RuntimeError(f"{name}: index has {index.ndim} dims, input has {input.ndim} (shape {input.shape})")
    for d, (m, k) in enumerate(zip(index.shape, input.shape)):
        if d != axis and m > k:
            raise RuntimeError(f"{name}: index of shape {tuple(index.shape)} is larger than the input "
                               f"{input.shape} in dim {d}")
    n = input.shape[axis]
    if index.size and (int(index.min()) < -n or int(index.max()) >= n):
        raise IndexError(f"{name}: index out of range for dim {axis} of size {n}")


def gather(input, dim, index):
    """out[i][j] = input[i][index[i][j]] along ``dim`` (for dim=1)."""
    axis = normalize_dim(dim, input.ndim, "gather")[0]
    idx = index.array if isinstance(index, Tensor) else index
    _check_index("gather", input, idx, axis)
    return Gather.apply(input, axis, idx)

class ScatterAdd(Function):
    @staticmethod
    def forward(ctx, x, axis, index, src):
        xp = xp_of(x)
        ctx.save_for_backward(index)
        ctx.axis, ctx.src_shape = axis, src.shape
        out = x.copy()
        _add_along_axis(out, index, src[tuple(slice(0, n) for n in index.shape)], axis, xp)
        return out

    @staticmethod
    def backward(ctx, g):
        (index,) = ctx.saved
        gsrc = None
        if ctx.needs_input_grad[3]:
            gsrc = dual.apply(Gather, g, ctx.axis, index)
            if tuple(gsrc.shape) != tuple(ctx.src_shape):  # src larger than index: zeros elsewhere
                gsrc = dual.pad(gsrc, [(0, s - n) for s, n in zip(ctx.src_shape, gsrc.shape)])
        return g, None, None, gsrc


def scatter_add(input, dim, index, src):
    """A copy of ``input`` with ``src`` added at ``index`` along ``dim`` (repeats accumulate)."""
    axis = normalize_dim(dim, input.ndim, "scatter_add")[0]
    idx = index.array if isinstance(index, Tensor) else index
    _check_index("scatter_add", input, idx, axis)
    if isinstance(src, Tensor) and src.dtype != input.dtype:  # adding into the input must not round src
        dtype = backend.result_dtype(input.dtype, src.dtype)
        input, src = input.to(dtype), src.to(dtype)
    return ScatterAdd.apply(input, axis, idx, src)


class MaskedFill(Function):
    @staticmethod
    def forward(ctx, x, mask, value):
        ctx.save_for_backward(mask)
        xp = xp_of(x)
        return xp.where(mask, xp.asarray(value, dtype=x.dtype), x)

    @staticmethod
    def backward(ctx, g):
        (mask,) = ctx.saved
        return dual.where(mask, 0, g), None, None


def masked_fill(input, mask, value):
    m = mask.array if isinstance(mask, Tensor) else mask
    if m.dtype != backend.bool_:
        raise TypeError(f"masked_fill: mask must be a bool tensor, got {m.dtype}")
    if isinstance(value, Tensor):
        value = value.item()
    out_shape = xp_of(m).broadcast_shapes(m.shape, input.shape) if hasattr(xp_of(m), "broadcast_shapes") else None
    if out_shape is not None and tuple(out_shape) != input.shape:
        raise RuntimeError(
            f"masked_fill: mask of shape {m.shape} does not broadcast to the input's shape {input.shape}"
        )
    return MaskedFill.apply(input, m, value)


def index_select(input, dim, index):
    axis = normalize_dim(dim, input.ndim, "index_select")[0]
    idx = index.array if isinstance(index, Tensor) else index
    sl = (slice(None),) * axis + (idx,)
    return getitem(input, sl)


def one_hot(tensor, num_classes=-1):
    """int64 tensor of shape (*, num_classes) with a 1 at each label."""
    labels = tensor.array
    if labels.dtype.kind not in "iu":
        raise TypeError(f"one_hot: needs integer class labels, got {labels.dtype}")
    xp = xp_of(labels)
    if num_classes < 0:
        num_classes = int(labels.max()) + 1 if labels.size else 0
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(
            f"one_hot: labels must lie in [0, {num_classes}), got [{int(labels.min())}, {int(labels.max())}]"
        )
    out = (labels[..., None] == xp.arange(num_classes)).astype(backend.int64)
    return Tensor._make(out)


def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices); values carry gradient back to the positions they came from."""
    axis = normalize_dim(dim, input.ndim, "sort")[0] if input.ndim else 0
    xp = xp_of(input.array)
    if input.ndim == 0:
        return values_indices(input, Tensor._make(xp.zeros((), backend.int64)))
    key = -input.array if descending and input.dtype.kind != "b" else input.array
    idx = xp.argsort(key, axis=axis, kind="stable").astype(backend.int64)
    return values_indices(Gather.apply(input, axis, idx), Tensor._make(idx))


def argsort(input, dim=-1, descending=False, stable=False):
    return sort(input, dim, descending, stable).indices


def topk(input, k, dim=-1, largest=True, sorted=True):
    axis = normalize_dim(dim, input.ndim, "topk")[0]
    if not 0 <= k <= input.shape[axis]:
        raise ValueError(f"topk: k={k} is out of range for dim {axis} of size {input.shape[axis]}")
    _, idx = sort(input.detach(), axis, descending=largest)
    idx = idx.array.take(range(k), axis=axis) if k else idx.array[(slice(None),) * axis + (slice(0, 0),)]
    return values_indices(Gather.apply(input, axis, idx), Tensor._make(idx))
