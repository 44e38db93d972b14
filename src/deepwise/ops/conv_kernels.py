"""The convolution kernels behind ``deepwise.ops.conv``'s Functions, on arrays (NumPy or CuPy).

``conv_forward`` lays the padded input out as columns (im2col) and multiplies them by the weight in
one GEMM per chunk of images; ``conv_backward`` is its adjoint: the input gradient folded back by
col2im and the weight gradient from the same columns. Layouts, chunk sizes and the intra-op pool's
part in them are described below, beside the code that uses them.
"""

from __future__ import annotations

from deepwise import threads
from deepwise.ops._util import xp_of

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


def conv_forward(x, w, b, geom, out_hw, gw_from=None, keep_cols=False, want_y=True):
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


def conv_backward(g, x_shape, w, w_shape, geom, x=None, cols=None, need_dx=True, need_dw=False):
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


__all__ = ["as_strided", "conv_backward", "conv_forward"]
