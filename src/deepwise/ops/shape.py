"""Ops that move elements around without changing them: reshape, transpose, cat, pad, ..."""

from __future__ import annotations

import math

from deepwise.autograd.function import Function
from deepwise.backend import result_dtype
from deepwise.ops import dual
from deepwise.ops._util import normalize_dim, xp_of
from deepwise.ops.index import IndexBackward


def _sizes(args):
    if len(args) == 1 and isinstance(args[0], (tuple, list)):
        return tuple(args[0])
    return tuple(args)


class Reshape(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return x.reshape(shape)

    @staticmethod
    def backward(ctx, g):
        return dual.reshape(g, ctx.shape), None


def reshape(input, *shape):
    """A tensor with the same elements in ``shape`` (one dim may be -1)."""
    shape = _sizes(shape)
    known = math.prod(s for s in shape if s != -1)
    n = input.numel()
    if shape.count(-1) > 1 or (-1 not in shape and known != n) or (-1 in shape and (known == 0 or n % known)):
        raise RuntimeError(
            f"reshape: shape {list(shape)} is invalid for a tensor of shape {input.shape} ({n} elements)"
        )
    if tuple(shape) == input.shape:
        return input
    return Reshape.apply(input, shape)


view = reshape


def view_as(input, other):
    return reshape(input, other.shape)


reshape_as = view_as


def flatten(input, start_dim=0, end_dim=-1):
    if input.ndim == 0:
        return reshape(input, 1)
    if start_dim % input.ndim != end_dim % input.ndim:
        s, e = normalize_dim((start_dim, end_dim), input.ndim, "flatten")
    else:
        s = e = normalize_dim(start_dim, input.ndim, "flatten")[0]
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    shape = input.shape[:s] + (math.prod(input.shape[s:e + 1]),) + input.shape[e + 1:]
    return reshape(input, shape)


def unflatten(input, dim, sizes):
    d = normalize_dim(dim, input.ndim, "unflatten")[0]
    return reshape(input, input.shape[:d] + tuple(sizes) + input.shape[d + 1:])


def squeeze(input, dim=None):
    if dim is None:
        shape = tuple(n for n in input.shape if n != 1)
    else:
        axes = normalize_dim(dim, input.ndim, "squeeze")
        shape = tuple(n for i, n in enumerate(input.shape) if not (i in axes and n == 1))
    return reshape(input, shape)


def unsqueeze(input, dim):
    d = normalize_dim(dim, input.ndim + 1, "unsqueeze")[0]
    return reshape(input, input.shape[:d] + (1,) + input.shape[d:])


class Permute(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return x.transpose(axes)

    @staticmethod
    def backward(ctx, g):
        inv = [0] * len(ctx.axes)
        for i, a in enumerate(ctx.axes):
            inv[a] = i
        return dual.transpose(g, inv), None


def permute(input, *dims):
    dims = _sizes(dims)
    if len(dims) != input.ndim:
        raise ValueError(f"permute: got {len(dims)} dims {list(dims)} for a tensor of {input.ndim} dimensions")
    axes = normalize_dim(dims, input.ndim, "permute")
    if axes == tuple(range(input.ndim)):
        return input
    return Permute.apply(input, axes)


def transpose(input, dim0, dim1):
    if input.ndim < 2 and dim0 in (0, -1) and dim1 in (0, -1):
        return input
    a, b = normalize_dim(dim0, input.ndim, "transpose")[0], normalize_dim(dim1, input.ndim, "transpose")[0]
    axes = list(range(input.ndim))
    axes[a], axes[b] = axes[b], axes[a]
    return permute(input, axes)


def movedim(input, source, destination):
    s, d = normalize_dim(source, input.ndim, "movedim")[0], normalize_dim(destination, input.ndim, "movedim")[0]
    axes = [i for i in range(input.ndim) if i != s]
    axes.insert(d, s)
    return permute(input, axes)


class Expand(Function):
    @staticmethod
    def forward(ctx, x, shape):
        ctx.shape = x.shape
        return xp_of(x).broadcast_to(x, shape)

    @staticmethod
    def backward(ctx, g):
        return dual.sum_to(g, ctx.shape), None


def expand(input, *sizes):
    """Broadcast to ``sizes`` without copying (-1 keeps a dim)."""
    sizes = _sizes(sizes)
    if len(sizes) < input.ndim:
        raise RuntimeError(f"expand: {list(sizes)} has fewer dims than the tensor's shape {input.shape}")
    lead = len(sizes) - input.ndim
    shape = tuple(input.shape[i - lead] if s == -1 else s for i, s in enumerate(sizes))
    for i, n in enumerate(input.shape):
        if n != 1 and n != shape[i + lead]:
            raise RuntimeError(f"expand: cannot expand shape {input.shape} to {list(sizes)} (dim {i} is {n}, not 1)")
    if shape == input.shape:
        return input
    return Expand.apply(input, shape)


def expand_as(input, other):
    return expand(input, other.shape)


def broadcast_to(input, shape):
    return expand(input, shape)


class Repeat(Function):
    @staticmethod
    def forward(ctx, x, reps):
        ctx.in_shape = (1,) * (len(reps) - x.ndim) + x.shape
        ctx.reps, ctx.orig = reps, x.shape
        return xp_of(x).tile(x, reps)

    @staticmethod
    def backward(ctx, g):
        split = []
        for r, n in zip(ctx.reps, ctx.in_shape):
            split += [r, n]
        if split:  # sum over the repeat axes (a 0-d tensor repeated () times has none)
            g = dual.sum(dual.reshape(g, split), axis=tuple(range(0, len(split), 2)))
        return dual.reshape(g, ctx.orig), None


def repeat(input, *sizes):
    """Tile the tensor ``sizes[i]`` times along each dim (``torch.Tensor.repeat``)."""
    reps = _sizes(sizes)
    if len(reps) < input.ndim:
        raise RuntimeError(f"repeat: {list(reps)} has fewer dims than the tensor's shape {input.shape}")
    return Repeat.apply(input, reps)


class Cat(Function):
    @staticmethod
    def forward(ctx, axis, *xs):
        ctx.axis = axis
        ctx.bounds = [x.shape[axis] for x in xs]
        return xp_of(*xs).concatenate(xs, axis=axis)

    @staticmethod
    def backward(ctx, g):
        return (None, *dual.split(g, ctx.bounds, ctx.axis))


def cat(tensors, dim=0):
    """Join tensors along an existing dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    dtype = result_dtype(*[t.dtype for t in tensors])
    tensors = [t if t.dtype == dtype else t.to(dtype) for t in tensors]
    ref = tensors[0]
    axis = normalize_dim(dim, ref.ndim, "cat")[0]
    for i, t in enumerate(tensors):
        if t.ndim != ref.ndim or any(a != b for j, (a, b) in enumerate(zip(t.shape, ref.shape)) if j != axis):
            raise RuntimeError(
                f"cat: tensor {i} has shape {t.shape}, which does not match {ref.shape} outside dim {axis}"
            )
    return Cat.apply(axis, *tensors)


concat = concatenate = cat


def stack(tensors, dim=0):
    """Join tensors along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    for i, t in enumerate(tensors):
        if t.shape != tensors[0].shape:
            raise RuntimeError(f"stack: tensor {i} has shape {t.shape}, tensor 0 has {tensors[0].shape}")
    d = normalize_dim(dim, tensors[0].ndim + 1, "stack")[0]
    return cat([unsqueeze(t, d) for t in tensors], d)


class Split(Function):
    @staticmethod
    def forward(ctx, x, sizes, axis):
        ctx.axis = axis
        return dual.split(x, sizes, axis)

    @staticmethod
    def backward(ctx, *gs):
        return dual.concatenate(gs, ctx.axis), None, None


def split(input, split_size_or_sections, dim=0):
    axis = normalize_dim(dim, input.ndim, "split")[0]
    n = input.shape[axis]
    if isinstance(split_size_or_sections, int):
        step = split_size_or_sections
        if step <= 0:
            raise ValueError(f"split: split_size must be positive, got {step}")
        sizes = [step] * (n // step) + ([n % step] if n % step else [])
    else:
        sizes = list(split_size_or_sections)
        if sum(sizes) != n:
            raise ValueError(f"split: sections {sizes} do not add up to {n}, the size of dim {axis}")
    if len(sizes) == 1:
        return (input,)
    return Split.apply(input, sizes, axis)


def chunk(input, chunks, dim=0):
    axis = normalize_dim(dim, input.ndim, "chunk")[0]
    n = input.shape[axis]
    return split(input, max(1, -(-n // chunks)), axis)


_XP_PAD_MODE = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}  # torch name -> numpy name


class Pad(Function):
    @staticmethod
    def forward(ctx, x, widths, mode, value):
        xp = xp_of(x)
        ctx.widths, ctx.mode, ctx.shape, ctx.xp = widths, mode, x.shape, xp
        if mode == "constant":
            return xp.pad(x, widths, mode="constant", constant_values=value)
        return xp.pad(x, widths, mode=_XP_PAD_MODE[mode])

    @staticmethod
    def backward(ctx, g):
        if ctx.mode == "constant":
            return g[tuple(slice(lo, g.shape[i] - hi) for i, (lo, hi) in enumerate(ctx.widths))], None, None, None
        # reflect / replicate / circular: add each padded element back onto its source element (a
        # scatter-add of rows, GetItem's backward, itself differentiable)
        out = g
        for axis, (lo, hi) in enumerate(ctx.widths):
            if lo == 0 and hi == 0:
                continue
            n = ctx.shape[axis]
            src = _pad_source_index(n, lo, hi, ctx.mode, ctx.xp)
            moved = dual.moveaxis(out, axis, 0)
            acc = dual.apply(IndexBackward, moved, (src,), (n,) + tuple(moved.shape[1:]), False)
            out = dual.moveaxis(acc, 0, axis)
        return out, None, None, None


def _pad_source_index(n, lo, hi, mode, xp):
    i = xp.arange(-lo, n + hi)
    if mode == "reflect":
        period = 2 * (n - 1) if n > 1 else 1
        i = xp.abs(i) % period
        return xp.where(i >= n, period - i, i)
    if mode == "replicate":
        return xp.clip(i, 0, n - 1)
    return i % n  # circular


def pad(input, pad, mode="constant", value=0.0):
    """Pad the last ``len(pad)//2`` dims; ``pad`` lists (left, right) pairs starting from the last dim."""
    pad = tuple(int(p) for p in pad)
    if len(pad) % 2 or len(pad) // 2 > input.ndim:
        raise ValueError(f"pad: {pad} must have an even length of at most 2*{input.ndim}")
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be constant, reflect, replicate or circular, got {mode!r}")
    if any(p < 0 for p in pad):
        raise ValueError(f"pad: negative padding {pad} is not supported")
    widths = [(0, 0)] * input.ndim
    for k in range(len(pad) // 2):
        widths[input.ndim - 1 - k] = (pad[2 * k], pad[2 * k + 1])
        n = input.shape[input.ndim - 1 - k]
        if mode == "reflect" and max(pad[2 * k], pad[2 * k + 1]) >= n:
            raise ValueError(f"pad: reflect padding {pad[2 * k:2 * k + 2]} must be smaller than the dim size {n}")
    return Pad.apply(input, tuple(widths), mode, value)


class Flip(Function):
    @staticmethod
    def forward(ctx, x, axes):
        ctx.axes = axes
        return xp_of(x).flip(x, axes)

    @staticmethod
    def backward(ctx, g):
        return dual.flip(g, ctx.axes), None


def flip(input, dims):
    return Flip.apply(input, normalize_dim(dims, input.ndim, "flip"))


class _Tri(Function):
    """tril/triu: the gradient is the same triangle of ``g`` (so any order works)."""

    @staticmethod
    def forward(ctx, x, k, upper):
        xp = xp_of(x)
        ctx.k, ctx.upper = k, upper
        return xp.triu(x, k) if upper else xp.tril(x, k)

    @staticmethod
    def backward(ctx, g):
        return dual.apply(_Tri, g, ctx.k, ctx.upper), None, None


def tril(input, diagonal=0):
    if input.ndim < 2:
        raise ValueError(f"tril: needs at least 2 dims, got shape {input.shape}")
    return _Tri.apply(input, diagonal, False)


def triu(input, diagonal=0):
    if input.ndim < 2:
        raise ValueError(f"triu: needs at least 2 dims, got shape {input.shape}")
    return _Tri.apply(input, diagonal, True)
