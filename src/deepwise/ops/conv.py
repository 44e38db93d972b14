"""Convolutions: ``conv1d``, ``conv2d`` and ``conv_transpose2d`` (NCHW, PyTorch's weight layouts).

One kernel family serves all three. ``_conv_forward`` lays the padded input out as columns (im2col):
a strided *view* of the patches copied once into a (C*kh*kw, columns) matrix, so the convolution is
ONE matrix product with the (O, C*kh*kw) weight (per group, batched over a group axis with ``matmul``
-- depthwise included). The result is (O, N, OH, OW) in memory and is returned as an (N, O, OH, OW)
view: internally activations are "channels first, then batch", so every per-(channel, image) plane
is contiguous and the next layer's im2col copies long runs; the public layout stays NCHW. (See the
kernels section for the stride-1 "wide" layout and the chunking of big batches.)

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

from deepwise import backend, threads
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._util import in_float32, xp_of
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


# -------------------------------------------------------------------------------------- kernels
# Shapes: x (N, C, H, W); w (O, C//G, kh, kw); geom = (stride, pads, dil, groups) with stride and dil
# (sh, sw) and pads ((pt, pb), (pl, pr)).
#
# Two column layouts. The general one has one column per output pixel (N*OH*OW). For stride 1 the
# "wide" one computes each output row at the full padded width Wp (N*OH*Wp columns; the last Wp - OW
# of every row are thrown away): the patch of kernel offset (i, j) for channel c of image n is then ONE
# contiguous run of OH*Wp elements of the padded image, so im2col and col2im move long runs instead
# of rows of OW. The gradient of a thrown-away column is zero, so those add nothing to dx or dw.
#
# Big batches go through in chunks of images. On NumPy the chunks are small (1.5 MiB of columns,
# about the L2 cache): the columns im2col writes are still in cache when the GEMM reads them (1
# thread, in-process A/B of 16 vs 1.5 MiB: ResNet step 302 -> 250 ms, VGG block 102 -> 92 ms, conv+BN
# net 55 -> 52 ms of CPU time). With several threads the chunks run on the intra-op pool
# (``threads.run_parts``), each thread doing im2col, its GEMM on one BLAS thread and col2im for its own
# images, so every pass of the conv is spread over the cores, not only the GEMMs; there are then at
# least as many chunks as threads (a multiple of them, so no thread idles) unless the columns are
# under _PARALLEL_BYTES, where the hand-off costs more than it saves and one GEMM on all BLAS threads
# does the work. Small chunks keep no columns for the backward pass: rebuilding a chunk's columns in
# cache right before its weight-gradient GEMM is as fast as reading kept ones back from memory (1
# thread, VGG block: 108 ms keeping, 97 ms rebuilding) and holds no 9x copy of every conv input
# through the graph.
#
# On a GPU the chunks are big (16 MiB), so each GEMM fills the device, and the forward pass keeps
# the columns of all chunks for the backward pass when together they take at most _KEEP_BYTES; above
# that the backward pass rebuilds them chunk by chunk. So too with several threads where the pool
# cannot run (a BLAS other than OpenBLAS): then each big GEMM is spread over BLAS's threads (small
# chunks there made the LeNet step 8 -> 17 ms, many small GEMMs each split over two threads).
_CHUNK_BYTES = 1 << 24
_CHUNK_BYTES_SMALL = 3 << 19
_KEEP_BYTES = 1 << 25
_PARALLEL_BYTES = 1 << 18


def as_strided(xp, a, shape, strides):
    """A strided view of ``a`` (NumPy's or CuPy's ``as_strided``); the pools read windows with it too."""
    return xp.lib.stride_tricks.as_strided(a, shape=shape, strides=strides)


_WIDE_WASTE = 0.5


def _wide_row(x_shape, pads, stride, out_w):
    """Row length of the wide layout (the padded width), or None for the general layout: also when
    more than _WIDE_WASTE of each wide row would be thrown away (a 4x4 kernel on a 1x1 input, as
    in a DCGAN generator's first layer, would do 4x the GEMM work; 3x3 convs on 8x8 images waste
    20%, where both layouts measure the same)."""
    if stride[0] != 1 or stride[1] != 1:
        return None
    wp = x_shape[3] + pads[1][0] + pads[1][1]
    return wp if wp - out_w <= _WIDE_WASTE * wp else None


def _host_threads(xp):
    """Threads the chunks of a conv run on: the intra-op pool's size (the BLAS thread count) on
    NumPy, 0 on a GPU (big chunks, one after another)."""
    return threads.get_num_threads() if xp.__name__ == "numpy" else 0


def _chunks(n, c, kernel, out_hw, wp, itemsize, xp):
    """Image ranges of the chunks, whether to keep their columns for the backward pass (GPU only),
    and how many threads run them."""
    per_image = max(c * kernel[0] * kernel[1] * out_hw[0] * (wp or out_hw[1]) * itemsize, 1)
    t = _host_threads(xp)
    if not t or (t > 1 and not threads.pool_ready()):  # a GPU, or BLAS's threads alone: few big GEMMs
        step = max(1, min(n, _CHUNK_BYTES // per_image))
        return [(i, min(i + step, n)) for i in range(0, n, step)], per_image * n <= _KEEP_BYTES, 1
    count = -(-n // max(1, min(n, _CHUNK_BYTES_SMALL // per_image)))
    parallel = t > 1 and n > 1 and per_image * n >= _PARALLEL_BYTES
    if parallel:
        count = min(n, -(-count // t) * t)
    size, extra = divmod(n, count)  # count chunks whose sizes differ by at most one image
    bounds = [k * size + min(k, extra) for k in range(count + 1)]
    return list(zip(bounds, bounds[1:])), False, (min(t, count) if parallel else 1)


def _padded_cn(x, pads, slack_rows=0):
    """Zero-padded copy of x stored (C, N, Hp + slack_rows, Wp): channels first, then batch."""
    xp = xp_of(x)
    n, c, h, w = x.shape
    (pt, pb), (pl, pr) = pads
    buf = xp.empty((c, n, h + pt + pb + slack_rows, w + pl + pr), dtype=x.dtype)
    buf[:, :, pt:pt + h, pl:pl + w] = x.transpose(1, 0, 2, 3)
    buf[:, :, :pt] = 0  # zero only the border: a full zero fill is one more pass over the image
    buf[:, :, pt + h:] = 0
    buf[:, :, pt:pt + h, :pl] = 0
    buf[:, :, pt:pt + h, pl + w:] = 0
    return buf


def _im2col(x, kernel, stride, pads, dil, out_hw):
    """(C*kh*kw, columns) matrix of input patches, rows ordered (c, i, j) like the weight's columns."""
    xp = xp_of(x)
    n, c = x.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dil, out_hw
    if _wide_row(x.shape, pads, stride, ow):
        buf = _padded_cn(x, pads, slack_rows=1)  # the last runs reach up to kw-1 elements past Hp rows
        wp = buf.shape[3]
        flat = buf.reshape(c, n, -1)
        s_c, s_n, s_1 = flat.strides
        view = as_strided(xp, flat, (c, kh, kw, n, oh * wp), (s_c, s_1 * dh * wp, s_1 * dw, s_n, s_1))
    else:
        xpad = _padded_cn(x, pads).transpose(1, 0, 2, 3) if any(p for pair in pads for p in pair) else x
        s_n, s_c, s_h, s_w = xpad.strides
        view = as_strided(xp, xpad, (c, kh, kw, n, oh, ow), (s_c, s_h * dh, s_w * dw, s_n, s_h * sh, s_w * sw))
    cols = xp.empty(view.shape, dtype=x.dtype)
    cols[...] = view
    return cols.reshape(c * kh * kw, -1)


def _col2im_into(buf, cols, kernel, stride, dil, out_hw, wp):
    """Add the columns onto ``buf``, the padded (C, n, Hp(+1), Wp) image: im2col's adjoint, one strided
    slice per kernel offset."""
    c, n = buf.shape[:2]
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = kernel, stride, dil, out_hw
    if wp:
        flat = buf.reshape(c, n, -1)
        cols = cols.reshape(c, kh, kw, n, oh * wp)
        run = oh * wp
        for i in range(kh):
            for j in range(kw):
                start = i * dh * wp + j * dw
                flat[:, :, start:start + run] += cols[:, i, j]
        return
    cols = cols.reshape(c, kh, kw, n, oh, ow)
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            buf[:, :, r0:r0 + sh * (oh - 1) + 1:sh, c0:c0 + sw * (ow - 1) + 1:sw] += cols[:, i, j]


def _grad_matrix(g, groups, wp=None):
    """(n, O, OH, OW) output gradient -> (G, O//G, columns), zero-widened to rows of wp when given."""
    n, o, oh, ow = g.shape
    gt = g.transpose(1, 0, 2, 3)
    if wp is not None and wp != ow:
        wide = xp_of(g).empty((o, n, oh, wp), dtype=g.dtype)
        wide[..., :ow] = gt
        wide[..., ow:] = 0
        gt = wide
    return gt.reshape(groups, o // groups, -1)  # no copy when g already is (O, n, ...) in memory


def _matmul(a, b):
    """a @ b, as one 2-D GEMM when the group axis has size 1."""
    if a.shape[0] == 1:
        return (a[0] @ b[0])[None]
    return xp_of(a).matmul(a, b)


def _weight_grad(gm, cols):
    """(G, O//G, K) weight gradient gm @ cols^T of the (G, O//G, columns) gradient matrix and the
    (G, K, columns) input columns, computed as (cols @ gm^T)^T: the same sums, but OpenBLAS runs
    this orientation of the long-reduction GEMM faster (1 thread, 64 x 288 x 9216: 66 -> 80 GFLOP/s;
    128 x 576 x 2560: 85 -> 90)."""
    return _matmul(cols, gm.transpose(0, 2, 1)).transpose(0, 2, 1)


def _sum_in_order(parts):
    """The chunks' weight gradients added in chunk order (the same bits whatever thread ran each)."""
    total = None
    for p in parts:
        if p is not None:
            total = p if total is None else total.__iadd__(p)
    return total


def _conv_forward(x, w, b, geom, out_hw, gw_from=None, keep_cols=False, want_y=True):
    """y = conv2d(x, w) + b as an (N, O, OH, OW) view. With ``gw_from`` (an (N, O, OH, OW) output
    gradient) also the weight gradient from the same columns. Returns (y, gw, [cols of each chunk] when
    ``keep_cols`` and they are small enough, else None)."""
    stride, pads, dil, groups = geom
    xp = xp_of(x)
    n = x.shape[0]
    o, cg, kh, kw = w.shape
    oh, ow = out_hw
    wp = _wide_row(x.shape, pads, stride, ow)
    chunks, keep, workers = _chunks(n, cg * groups, (kh, kw), out_hw, wp, x.itemsize, xp)
    wm = w.reshape(groups, o // groups, -1)
    b4 = None if b is None else b.reshape(-1, 1, 1, 1)
    y = None
    if want_y and (len(chunks) > 1 or (wp or ow) != ow):
        y = xp.empty((o, n, oh, ow), dtype=x.dtype)

    def chunk(bounds):  # one chunk's GEMM output (when it is the result), weight gradient and columns
        n0, n1 = bounds
        cols = _im2col(x[n0:n1], (kh, kw), stride, pads, dil, out_hw)
        cols_g = cols.reshape(groups, cg * kh * kw, -1)
        yc = part = None
        if want_y:
            yc = _matmul(wm, cols_g).reshape(o, n1 - n0, oh, -1)
            if y is not None:
                if b4 is not None:
                    xp.add(yc[..., :ow], b4, out=y[:, n0:n1])
                else:
                    y[:, n0:n1] = yc[..., :ow]
                yc = None
            elif b4 is not None:  # one chunk, narrow rows: the GEMM output is the result
                yc += b4
        if gw_from is not None:
            part = _weight_grad(_grad_matrix(gw_from[n0:n1], groups, wp), cols_g)
        return yc, part, (cols if keep_cols and keep else None)

    results = threads.run_parts(chunk, chunks, workers)
    if y is None and want_y:
        y = results[0][0]
    gw = _sum_in_order([r[1] for r in results])
    kept = [r[2] for r in results] if keep_cols and keep else None
    y = None if y is None else y.transpose(1, 0, 2, 3)
    gw = None if gw is None else gw.reshape(w.shape)
    return y, gw, kept


def _conv_backward(g, x_shape, w, w_shape, geom, x=None, cols=None, need_dx=True, need_dw=False):
    """(dx, dw) of conv2d for the output gradient g (N, O, OH, OW). dx needs the weight w; dw needs
    the input's columns: ``cols`` (one per chunk) kept by the forward pass, else rebuilt from x."""
    stride, pads, dil, groups = geom
    xp = xp_of(g)
    n, c, h, w_ = x_shape
    o, cg, kh, kw = w_shape
    (pt, pb), (pl, pr) = pads
    out_hw = g.shape[2:]
    wp = _wide_row(x_shape, pads, stride, out_hw[1])
    chunks, _, workers = _chunks(n, c, (kh, kw), out_hw, wp, g.itemsize, xp)
    buf = wt = None
    if need_dx:
        buf = xp.zeros((c, n, h + pt + pb + (1 if wp else 0), w_ + pl + pr), dtype=g.dtype)
        wt = w.reshape(groups, o // groups, -1).transpose(0, 2, 1)

    def chunk(k):  # chunk k's weight gradient; its input gradient goes straight into buf
        n0, n1 = chunks[k]
        gm = _grad_matrix(g[n0:n1], groups, wp)
        part = None
        if need_dw:
            cc = cols[k] if cols is not None else _im2col(x[n0:n1], (kh, kw), stride, pads, dil, out_hw)
            part = _weight_grad(gm, cc.reshape(groups, cg * kh * kw, -1))
        if need_dx:
            _col2im_into(buf[:, n0:n1], _matmul(wt, gm), (kh, kw), stride, dil, out_hw, wp)
        return part

    gw = _sum_in_order(threads.run_parts(chunk, range(len(chunks)), workers))
    dx = None if buf is None else buf[:, :, pt:pt + h, pl:pl + w_].transpose(1, 0, 2, 3)
    return dx, (None if gw is None else gw.reshape(w_shape))


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
        y, _, cols = _conv_forward(x, w, b, geom, out_hw, keep_cols=_wanted(ctx, 1))
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
        y, _ = _conv_backward(x, y_shape, w, w.shape, geom)
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
        return _conv_backward(g, x.shape, None, w_shape, ctx.geom, x=x, cols=cols, need_dx=False, need_dw=True)[1]

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
        return _conv_backward(g, x.shape, w, w.shape, ctx.geom, x=x, cols=cols, need_dx=True, need_dw=True)

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
        gx, gw, _ = _conv_forward(g, w, None, ctx.geom, x.shape[2:], gw_from=x)
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
