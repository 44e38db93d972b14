"""Convolutions: ``conv1d``, ``conv2d`` and ``conv_transpose2d`` (NCHW, PyTorch's weight layouts).

One kernel family (``deepwise.ops.conv_kernels``) serves all three. ``conv_forward`` lays the
padded input out as columns (im2col): a strided *view* of the patches copied once into a
(C*kh*kw, columns) matrix, so the convolution is ONE matrix product with the (O, C*kh*kw) weight
(per group, batched over a group axis with ``matmul`` -- depthwise included). The result is
(O, N, OH, OW) in memory and is returned as an (N, O, OH, OW) view: internally activations are
"channels first, then batch", so every per-(channel, image) plane is contiguous and the next layer's
im2col copies long runs; the public layout stays NCHW. (The kernels module describes the stride-1
"wide" layout and the chunking of big batches.)

The input gradient is the same product transposed, ``W^T @ grad``, folded back onto the image by
col2im: a loop over the kh*kw kernel offsets, each adding one strided slice, vectorised over
(C, N, OH, OW). The weight gradient is one more product, ``grad @ cols^T``.

``conv_transpose2d`` is conv2d's input gradient, and its input gradient is conv2d, so both ops call the
same kernels with the roles swapped. Each backward is written once, as other convolution ops: the
gradient of a conv is a transposed conv and vice versa, and the weight gradient is an op of its own
(``_ConvWeightGrad``) whose backward is again the two kernels. On arrays these run the kernels
directly (first-order training); under ``create_graph`` they are recorded, so gradient penalties
(GANs) and any higher order work.
"""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import in_float32
from deepwise.ops.conv_kernels import conv_backward, conv_forward
from deepwise.tensor import Tensor


# ------------------------------------------------------------------------------------ arguments
def int_tuple(value, n, name, op):
    """An int or a length-n sequence of ints -> tuple of n ints."""
    if isinstance(value, (tuple, list)):
        if len(value) != n or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ValueError(f"{op}: {name} must be an int or {n} ints, got {value!r}")
        return tuple(int(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{op}: {name} must be an int or {n} ints, got {value!r}")
    return (int(value),) * n


def _check_positive(values, name, op, minimum=1):
    if any(v < minimum for v in values):
        raise ValueError(f"{op}: {name} must be >= {minimum}, got {values}")


def same_padding(kernel, dilation):
    """Per-side (before, after) padding that keeps the size for stride 1; the extra goes after, as in
    PyTorch (even kernels pad one more on the bottom/right)."""
    out = []
    for k, d in zip(kernel, dilation):
        total = d * (k - 1)
        out.append((total // 2, total - total // 2))
    return tuple(out)


def _padding_arg(padding, kernel, dilation, stride, op):
    """padding (int, tuple, "same", "valid") -> ((top, bottom), (left, right), ...)."""
    n = len(kernel)
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            if any(s != 1 for s in stride):
                raise ValueError(f"{op}: padding='same' is not supported for strided convolutions "
                                 f"(stride={stride}); use an explicit padding")
            return same_padding(kernel, dilation)
        raise ValueError(f"{op}: padding must be an int, a tuple of ints, 'same' or 'valid', got {padding!r}")
    p = int_tuple(padding, n, "padding", op)
    _check_positive(p, "padding", op, minimum=0)
    return tuple((v, v) for v in p)


def _out_size(size, k, s, pads, d):
    return (size + pads[0] + pads[1] - d * (k - 1) - 1) // s + 1


# ------------------------------------------------------------------------------------------ ops
# With fixed geometry write C(x, w) for conv2d, T(g, w) for its input gradient (conv_transpose2d) and
# W(x, g) for its weight gradient: <C(x, w), g> = <x, T(g, w)> = <w, W(x, g)>. Every backward below is
# made of these three ops (and of the two fused pairs, which compute two of them from one pass over
# their shared operand), through ``dual.apply``: on arrays that runs the kernels straight away, on
# Tensors it records them, and the gradients of the gradients are again C, T and W.
def _wanted(ctx, i):
    """Whether input i needs a gradient (False when the op runs as a step of another's backward)."""
    need = ctx.needs_input_grad
    return len(need) > i and need[i]


class Conv2dFn(Function):
    """conv2d on normalised settings: stride/dil (2 ints), pads ((pt, pb), (pl, pr)), out_hw."""

    @staticmethod
    def forward(ctx, x, w, b, stride, pads, dil, groups, out_hw):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(Conv2dFn, ctx, x, w, b, stride, pads, dil, groups, out_hw)
        geom = (stride, pads, dil, groups)
        y, _, cols = conv_forward(x, w, b, geom, out_hw, keep_cols=_wanted(ctx, 1))
        ctx.save_for_backward(x, w)
        ctx.cols, ctx.geom = cols, geom  # the columns of x (a cache for the weight gradient, or None)
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved
        need = ctx.needs_input_grad
        gx = gw = gb = None
        if need[0] and need[1]:
            gx, gw = dual.apply(_Conv2dGrads, g, w, x, *ctx.geom, cols=ctx.cols)
        elif need[0]:
            gx = dual.apply(ConvTranspose2dFn, g, w, None, *ctx.geom, tuple(x.shape[2:]))
        elif need[1]:
            gw = dual.apply(_ConvWeightGrad, x, g, *ctx.geom, tuple(w.shape), cols=ctx.cols)
        if need[2]:
            gb = dual.sum(g, axis=(0, 2, 3))
        return gx, gw, gb, None, None, None, None, None


class ConvTranspose2dFn(Function):
    """conv_transpose2d on normalised settings; ``out_hw`` is the output's (H, W). The weight is
    (C_in, C_out//G, kh, kw): the weight of the conv2d whose input gradient this op is."""

    @staticmethod
    def forward(ctx, x, w, b, stride, pads, dil, groups, out_hw):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(ConvTranspose2dFn, ctx, x, w, b, stride, pads, dil, groups, out_hw)
        geom = (stride, pads, dil, groups)
        y_shape = (x.shape[0], w.shape[1] * groups) + tuple(out_hw)
        y, _ = conv_backward(x, y_shape, w, w.shape, geom)
        if b is not None:
            y += b.reshape(1, -1, 1, 1)
        ctx.save_for_backward(x, w)
        ctx.geom = geom
        return y

    @staticmethod
    def backward(ctx, g):
        x, w = ctx.saved
        need = ctx.needs_input_grad
        gx = gw = gb = None
        if need[0] and need[1]:
            gx, gw = dual.apply(_ConvTranspose2dGrads, g, w, x, *ctx.geom)
        elif need[0]:
            gx = dual.apply(Conv2dFn, g, w, None, *ctx.geom, tuple(x.shape[2:]))
        elif need[1]:  # the conv whose input gradient we are: input g, output gradient x
            gw = dual.apply(_ConvWeightGrad, g, x, *ctx.geom, tuple(w.shape))
        if need[2]:
            gb = dual.sum(g, axis=(0, 2, 3))
        return gx, gw, gb, None, None, None, None, None


class _ConvWeightGrad(Function):
    """W(x, g), the weight gradient of conv2d as a function of (input x, output gradient g):
    bilinear, so its own gradients are T(g, h) for x and C(x, h) for g. ``cols``: x's columns, when
    the forward conv kept them."""

    @staticmethod
    def forward(ctx, x, g, stride, pads, dil, groups, w_shape, cols=None):
        ctx.save_for_backward(x, g)
        ctx.geom = (stride, pads, dil, groups)
        return conv_backward(g, x.shape, None, w_shape, ctx.geom, x=x, cols=cols, need_dx=False, need_dw=True)[1]

    @staticmethod
    def backward(ctx, h):
        x, g = ctx.saved
        gx = gg = None
        if ctx.needs_input_grad[0]:
            gx = dual.apply(ConvTranspose2dFn, g, h, None, *ctx.geom, tuple(x.shape[2:]))
        if ctx.needs_input_grad[1]:
            gg = dual.apply(Conv2dFn, x, h, None, *ctx.geom, tuple(g.shape[2:]))
        return gx, gg, None, None, None, None, None


class _Conv2dGrads(Function):
    """conv2d's (dx, dw) = (T(g, w), W(x, g)) in one pass over the chunks of g (each chunk's gradient
    matrix is laid out once for both products). Its gradients, for output gradients (p, q):
    d/dg = C(p, w) + C(x, q), d/dw = W(p, g), d/dx = T(g, q)."""

    @staticmethod
    def forward(ctx, g, w, x, stride, pads, dil, groups, cols=None):
        ctx.save_for_backward(g, w, x)
        ctx.geom = (stride, pads, dil, groups)
        return conv_backward(g, x.shape, w, w.shape, ctx.geom, x=x, cols=cols, need_dx=True, need_dw=True)

    @staticmethod
    def backward(ctx, p, q):
        g, w, x = ctx.saved
        need = ctx.needs_input_grad
        gg = gw = gx = None
        if need[0]:
            gg = dual.apply(Conv2dFn, p, w, None, *ctx.geom, tuple(g.shape[2:])) + \
                dual.apply(Conv2dFn, x, q, None, *ctx.geom, tuple(g.shape[2:]))
        if need[1]:
            gw = dual.apply(_ConvWeightGrad, p, g, *ctx.geom, tuple(w.shape))
        if need[2]:
            gx = dual.apply(ConvTranspose2dFn, g, q, None, *ctx.geom, tuple(x.shape[2:]))
        return gg, gw, gx, None, None, None, None


class _ConvTranspose2dGrads(Function):
    """conv_transpose2d's (dx, dw) = (C(g, w), W(g, x)) from ONE set of columns of g. Its gradients,
    for output gradients (p, q): d/dg = T(p, w) + T(x, q), d/dw = W(g, p), d/dx = C(g, q)."""

    @staticmethod
    def forward(ctx, g, w, x, stride, pads, dil, groups):
        ctx.save_for_backward(g, w, x)
        ctx.geom = (stride, pads, dil, groups)
        gx, gw, _ = conv_forward(g, w, None, ctx.geom, x.shape[2:], gw_from=x)
        return gx, gw

    @staticmethod
    def backward(ctx, p, q):
        g, w, x = ctx.saved
        need = ctx.needs_input_grad
        gg = gw = gx = None
        if need[0]:
            gg = dual.apply(ConvTranspose2dFn, p, w, None, *ctx.geom, tuple(g.shape[2:])) + \
                dual.apply(ConvTranspose2dFn, x, q, None, *ctx.geom, tuple(g.shape[2:]))
        if need[1]:
            gw = dual.apply(_ConvWeightGrad, g, p, *ctx.geom, tuple(w.shape))
        if need[2]:
            gx = dual.apply(Conv2dFn, g, q, None, *ctx.geom, tuple(x.shape[2:]))
        return gg, gw, gx, None, None, None, None


# ----------------------------------------------------------------------------------- functions
def _as_tensor(t):
    return t if isinstance(t, Tensor) else Tensor(t)


def _check_common(op, input, weight, bias, groups, transposed):
    if isinstance(groups, bool) or not isinstance(groups, int) or groups < 1:
        raise ValueError(f"{op}: groups must be a positive int, got {groups!r}")
    if weight.ndim != 4:
        raise RuntimeError(f"{op}: weight must be 4-D, got shape {tuple(weight.shape)}")
    if input.ndim != 4:
        raise RuntimeError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got shape "
                           f"{tuple(input.shape)}")
    c = input.shape[1]
    if transposed:
        if weight.shape[0] != c or c % groups:
            raise RuntimeError(
                f"{op}: input has {c} channels but the weight {tuple(weight.shape)} expects "
                f"{weight.shape[0]} (weight layout (in_channels, out_channels/groups, kh, kw), groups={groups})")
        out_c = weight.shape[1] * groups
    else:
        if weight.shape[0] % groups:
            raise RuntimeError(f"{op}: out_channels {weight.shape[0]} is not divisible by groups={groups}")
        if c != weight.shape[1] * groups:
            raise RuntimeError(
                f"{op}: input of shape {tuple(input.shape)} has {c} channels but the weight "
                f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups}")
        out_c = weight.shape[0]
    if bias is not None and tuple(bias.shape) != (out_c,):
        raise RuntimeError(f"{op}: bias must have shape ({out_c},), got {tuple(bias.shape)}")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: needs a floating-point input, got {input.dtype}")


@autocast_op("conv2d")
def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D convolution (cross-correlation) of (N, C_in, H, W) with weight (C_out, C_in/groups, kh, kw).

    ``padding`` is an int, an (h, w) pair, ``"valid"`` (none) or ``"same"`` (stride 1 only; even
    kernels put the extra row/column at the bottom/right, as PyTorch does)."""
    input, weight = _as_tensor(input), _as_tensor(weight)
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_common("conv2d", input, weight, bias, groups, transposed=False)
    stride = int_tuple(stride, 2, "stride", "conv2d")
    dilation = int_tuple(dilation, 2, "dilation", "conv2d")
    _check_positive(stride, "stride", "conv2d")
    _check_positive(dilation, "dilation", "conv2d")
    kernel = tuple(weight.shape[2:])
    pads = _padding_arg(padding, kernel, dilation, stride, "conv2d")
    out_hw = []
    for size, k, s, p, d, axis in zip(input.shape[2:], kernel, stride, pads, dilation, ("height", "width")):
        if size + p[0] + p[1] < d * (k - 1) + 1:
            raise RuntimeError(
                f"conv2d: kernel size {k} (dilated: {d * (k - 1) + 1}) is larger than the padded input "
                f"{axis} {size + p[0] + p[1]} (input {tuple(input.shape)}, padding {p})")
        out_hw.append(_out_size(size, k, s, p, d))
    if input.dtype != weight.dtype:
        input = input.to(weight.dtype)
    out = Conv2dFn.apply(input, weight, bias, stride, pads, dilation, groups, tuple(out_hw))
    return out.squeeze(0) if unbatched else out


@autocast_op("conv_transpose2d")
def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 2-D convolution (the input gradient of conv2d) with weight (C_in, C_out/groups, kh, kw).

    Output size per dim: (H - 1)*stride - 2*padding + dilation*(k - 1) + output_padding + 1."""
    op = "conv_transpose2d"
    input, weight = _as_tensor(input), _as_tensor(weight)
    unbatched = input.ndim == 3
    if unbatched:
        input = input.unsqueeze(0)
    _check_common(op, input, weight, bias, groups, transposed=True)
    stride = int_tuple(stride, 2, "stride", op)
    dilation = int_tuple(dilation, 2, "dilation", op)
    padding = int_tuple(padding, 2, "padding", op) if not isinstance(padding, str) else padding
    if isinstance(padding, str):
        raise ValueError(f"{op}: padding must be an int or a pair of ints, got {padding!r}")
    out_pad = int_tuple(output_padding, 2, "output_padding", op)
    _check_positive(stride, "stride", op)
    _check_positive(dilation, "dilation", op)
    _check_positive(padding, "padding", op, minimum=0)
    _check_positive(out_pad, "output_padding", op, minimum=0)
    out_hw = []
    for size, k, s, p, d, op_ in zip(input.shape[2:], weight.shape[2:], stride, padding, dilation, out_pad):
        if op_ >= max(s, d):
            raise ValueError(f"{op}: output_padding {out_pad} must be smaller than stride {stride} or "
                             f"dilation {dilation}")
        size_out = (size - 1) * s - 2 * p + d * (k - 1) + op_ + 1
        if size_out <= 0:
            raise RuntimeError(f"{op}: input {tuple(input.shape)} with kernel {tuple(weight.shape[2:])}, "
                               f"stride {stride} and padding {padding} gives an empty output")
        out_hw.append(size_out)
    if input.dtype != weight.dtype:
        input = input.to(weight.dtype)
    pads = tuple((p, p) for p in padding)
    out = ConvTranspose2dFn.apply(input, weight, bias, stride, pads, dilation, groups, tuple(out_hw))
    return out.squeeze(0) if unbatched else out


@autocast_op("conv1d")
def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """1-D convolution of (N, C_in, L) with weight (C_out, C_in/groups, k): conv2d on a height-1 image."""
    input, weight = _as_tensor(input), _as_tensor(weight)
    if weight.ndim != 3:
        raise RuntimeError(f"conv1d: weight must be 3-D (out, in/groups, k), got shape {tuple(weight.shape)}")
    if input.ndim not in (2, 3):
        raise RuntimeError(f"conv1d: expected a 2-D (C, L) or 3-D (N, C, L) input, got shape {tuple(input.shape)}")
    c = input.shape[-2]
    if isinstance(groups, int) and groups > 0 and c != weight.shape[1] * groups:
        raise RuntimeError(f"conv1d: input of shape {tuple(input.shape)} has {c} channels but the weight "
                           f"{tuple(weight.shape)} with groups={groups} expects {weight.shape[1] * groups}")
    if not isinstance(padding, str):
        padding = (0, int_tuple(padding, 1, "padding", "conv1d")[0])
    stride = (1, int_tuple(stride, 1, "stride", "conv1d")[0])
    dilation = (1, int_tuple(dilation, 1, "dilation", "conv1d")[0])
    out = conv2d(input.unsqueeze(-2), weight.unsqueeze(2), bias, stride, padding, dilation, groups)
    return out.squeeze(-2)


@autocast_op("conv_transpose1d")
def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1):
    """Transposed 1-D convolution, weight (C_in, C_out/groups, k): conv_transpose2d on a height-1 image."""
    input, weight = _as_tensor(input), _as_tensor(weight)
    if weight.ndim != 3 or input.ndim not in (2, 3):
        raise RuntimeError(f"conv_transpose1d: expected a (N, C, L) input and a 3-D weight, got "
                           f"{tuple(input.shape)} and {tuple(weight.shape)}")

    def one(v, name):
        return (0 if name in ("padding", "output_padding") else 1, int_tuple(v, 1, name, "conv_transpose1d")[0])

    out = conv_transpose2d(input.unsqueeze(-2), weight.unsqueeze(2), bias, one(stride, "stride"),
                           one(padding, "padding"), one(output_padding, "output_padding"), groups,
                           one(dilation, "dilation"))
    return out.squeeze(-2)


__all__ = ["conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "same_padding"]
