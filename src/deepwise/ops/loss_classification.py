"""Classification losses: cross-entropy (fused with log-softmax), NLL, binary cross-entropy and KL
divergence."""

from __future__ import annotations

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops import dual
from deepwise.ops._autocast import autocast_op
from deepwise.ops._loss_common import (
    REDUCTIONS,
    check_reduction,
    check_same_shape,
    check_tensor,
    float_pair,
    quiet,
    reduce_loss,
    spread_grad,
    weight_array,
)
from deepwise.ops._util import in_float32, xp_of


def _rows(a):
    """(C,) -> (1, C); (N, C) as is; (N, C, d1, ...) -> (N*d1*..., C) with classes last (an array
    or a Tensor, for the composites)."""
    if a.ndim == 1:
        return a[None]
    if a.ndim == 2:
        return a
    return dual.reshape(dual.moveaxis(a, 1, -1), (-1, a.shape[1]))


def _unrows(g2, shape):
    """Inverse of ``_rows`` for a gradient."""
    if len(shape) == 1:
        return g2[0]
    if len(shape) == 2:
        return g2
    xp = xp_of(g2)
    return xp.ascontiguousarray(xp.moveaxis(g2.reshape((shape[0],) + tuple(shape[2:]) + (shape[1],)), -1, 1))


def _check_class_target(op, input, target, ignore_index):
    """Shape and range checks of integer class targets; errors name the shapes and the bad value."""
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
    n_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    expected = () if input.ndim == 1 else (input.shape[0],) + input.shape[2:]
    if target.shape != expected:
        why = ""
        if input.ndim >= 2 and target.ndim >= 1 and target.shape[0] != input.shape[0]:
            why = f" (target batch {target.shape[0]} != input batch {input.shape[0]})"
        raise ValueError(
            f"{op}: class-index target of shape {target.shape} does not match input of shape "
            f"{input.shape}: expected target shape {expected}{why}"
        )
    t = target.array
    if t.size:
        bad = (t != ignore_index) & ((t < 0) | (t >= n_classes))
        if bool(bad.any()):
            value = int(t[bad].reshape(-1)[0])
            raise IndexError(
                f"{op}: target class {value} is out of range for {n_classes} classes "
                f"(expected 0..{n_classes - 1}, or ignore_index={ignore_index})"
            )
    return n_classes


def _gather_rows(t, weight, ignore_index, dtype, xp):
    """Per row: a safe class index, its weight (0 where ignored) and the ignore mask."""
    t1 = t.reshape(-1)
    valid = t1 != ignore_index
    safe = xp.where(valid, t1, 0)
    w_t = valid.astype(dtype) if weight is None else weight[safe] * valid
    return safe, w_t, valid


def _log_softmax_rows(x2, xp):
    shifted = x2 - x2.max(axis=1, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=1, keepdims=True))


def _row_scale(g, n_rows, reduction, denom):
    """Upstream gradient per row (shape (M,) or 0-d) for a per-row loss."""
    if reduction == "none":
        return g.reshape(n_rows)
    if reduction == "mean":
        with quiet():
            return g / denom
    return g


def _picked(logp, safe):
    """logp[i, safe[i]] for every row i (a Tensor op: its backward puts the gradient back)."""
    return logp[xp_of(safe).arange(logp.shape[0]), safe]


def _cross_entropy_ops(x, t, *, weight, ignore_index, label_smoothing, reduction):
    """``CrossEntropy`` in deepwise ops (log_softmax, a pick per row, sums): its higher derivatives."""
    logp = _rows(x).log_softmax(dim=1)
    n_classes = logp.shape[1]
    safe, w_t, valid = _gather_rows(t, weight, ignore_index, x.dtype, xp_of(t))
    loss = -_picked(logp, safe) * w_t
    eps = label_smoothing
    if eps:
        smooth = -(logp.sum(dim=1) if weight is None else (logp * weight).sum(dim=1))
        loss = (1 - eps) * loss + (eps / n_classes) * (smooth * valid.astype(x.dtype))
    return reduce_loss(loss.reshape(t.shape), reduction, w_t.sum())


class CrossEntropy(Function):
    """Fused log-softmax + weighted NLL + label smoothing for class-index targets.

    Per row i: loss_i = (1-eps) w[y_i] (-logp[i, y_i]) + eps/C sum_c w[c] (-logp[i, c]); 'mean'
    divides by sum_i w[y_i] over non-ignored rows. d loss_i / dx = softmax * sum_c a_c - a, with
    a the row's target distribution (times weights)."""

    array_backward = True
    composite = staticmethod(_cross_entropy_ops)

    @staticmethod
    def forward(ctx, x, t, *, weight, ignore_index, label_smoothing, reduction):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(CrossEntropy, ctx, x, t, weight=weight, ignore_index=ignore_index,
                              label_smoothing=label_smoothing, reduction=reduction)
        xp = xp_of(x)
        x2 = _rows(x)
        n_rows, n_classes = x2.shape
        shifted = x2 - x2.max(axis=1, keepdims=True)
        e = xp.exp(shifted)
        total = e.sum(axis=1)
        log_total = xp.log(total)  # logp[i, c] = shifted[i, c] - log_total[i]
        safe, w_t, valid = _gather_rows(t, weight, ignore_index, x.dtype, xp)
        rows = xp.arange(n_rows)
        loss = (log_total - shifted[rows, safe]) * w_t
        eps = label_smoothing
        if eps:
            if weight is None:
                smooth = n_classes * log_total - shifted.sum(axis=1)
            else:
                smooth = weight.sum() * log_total - shifted @ weight
            loss = (1 - eps) * loss + (eps / n_classes) * (smooth * valid)
        e /= total[:, None]  # softmax, all backward needs
        denom = w_t.sum()
        ctx.save_for_backward(e, safe, w_t, valid, weight)
        ctx.eps, ctx.reduction, ctx.denom, ctx.shape = eps, reduction, denom, x.shape
        return reduce_loss(loss.reshape(t.shape), reduction, denom)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        p, safe, w_t, valid, weight = ctx.saved
        eps = ctx.eps
        n_rows, n_classes = p.shape
        scale = _row_scale(g, n_rows, ctx.reduction, ctx.denom)
        a_hit = (1 - eps) * w_t * scale  # target-class coefficient of each row
        if eps:
            w_all = n_classes if weight is None else weight.sum()
            spread = valid * scale * (eps / n_classes)
            gx = p * (a_hit + w_all * spread)[:, None]
            gx -= spread[:, None] * (1 if weight is None else weight[None, :])
        else:
            gx = p * a_hit[:, None]
        gx[xp.arange(n_rows), safe] -= a_hit
        return _unrows(gx.astype(p.dtype, copy=False), ctx.shape), None


def _cross_entropy_prob_ops(x, t, *, weight, label_smoothing, reduction):
    """``CrossEntropyProb`` in deepwise ops: -sum_c w[c] q[i, c] log_softmax(x)[i, c] per row."""
    logp = _rows(x).log_softmax(dim=1)
    n_rows, n_classes = logp.shape
    eps = label_smoothing
    q = _rows(t) * (1 - eps) + eps / n_classes if eps else _rows(t)
    a = q if weight is None else q * weight
    loss = -(a * logp).sum(dim=1)
    out_shape = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
    return reduce_loss(loss.reshape(out_shape), reduction, n_rows)


class CrossEntropyProb(Function):
    """Fused log-softmax + cross-entropy against class probabilities (the input's shape).

    loss_i = -sum_c w[c] q[i, c] logp[i, c] with q = (1-eps) target + eps/C; 'mean' divides by rows."""

    array_backward = True
    composite = staticmethod(_cross_entropy_prob_ops)

    @staticmethod
    def forward(ctx, x, t, *, weight, label_smoothing, reduction):
        if x.dtype.kind == "V":  # bfloat16: computed in float32 and rounded once, as torch
            return in_float32(CrossEntropyProb, ctx, x, t, weight=weight, label_smoothing=label_smoothing,
                              reduction=reduction)
        xp = xp_of(x)
        x2, t2 = _rows(x), _rows(t)
        n_rows, n_classes = x2.shape
        logp = _log_softmax_rows(x2, xp)
        eps = label_smoothing
        q = t2 * (1 - eps) + eps / n_classes if eps else t2
        a = q if weight is None else q * weight
        loss = -(a * logp).sum(axis=1)
        out_shape = () if x.ndim == 1 else (x.shape[0],) + x.shape[2:]
        ctx.save_for_backward(logp, a, weight)
        ctx.eps, ctx.reduction, ctx.shape = eps, reduction, x.shape
        return reduce_loss(loss.reshape(out_shape), reduction, n_rows)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        logp, a, weight = ctx.saved
        scale = _row_scale(g, logp.shape[0], ctx.reduction, logp.shape[0])
        scale = scale[:, None] if scale.ndim else scale
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = (xp.exp(logp) * a.sum(axis=1, keepdims=True) - a) * scale
            gx = _unrows(gx.astype(logp.dtype, copy=False), ctx.shape)
        if ctx.needs_input_grad[1]:
            gt = -(1 - ctx.eps) * logp * scale
            if weight is not None:
                gt = gt * weight
            gt = _unrows(gt.astype(logp.dtype, copy=False), ctx.shape)
        return gx, gt


def _nll_ops(x, t, *, weight, ignore_index, reduction):
    """``NLLLoss`` in deepwise ops: -w[y] * x[y] picked per row."""
    safe, w_t, _ = _gather_rows(t, weight, ignore_index, x.dtype, xp_of(t))
    loss = -_picked(_rows(x), safe) * w_t
    return reduce_loss(loss.reshape(t.shape), reduction, w_t.sum())


class NLLLoss(Function):
    """-w[y] * input[y] per row (input holds log-probabilities); 'mean' divides by sum of w[y]."""

    array_backward = True
    composite = staticmethod(_nll_ops)

    @staticmethod
    def forward(ctx, x, t, *, weight, ignore_index, reduction):
        xp = xp_of(x)
        x2 = _rows(x)
        safe, w_t, _ = _gather_rows(t, weight, ignore_index, x.dtype, xp)
        loss = -x2[xp.arange(x2.shape[0]), safe] * w_t
        denom = w_t.sum()
        ctx.save_for_backward(safe, w_t)
        ctx.reduction, ctx.denom, ctx.shape, ctx.rows_shape = reduction, denom, x.shape, x2.shape
        return reduce_loss(loss.reshape(t.shape), reduction, denom)

    @staticmethod
    def backward(ctx, g):
        xp = xp_of(g)
        safe, w_t = ctx.saved
        n_rows = ctx.rows_shape[0]
        gx = xp.zeros(ctx.rows_shape, g.dtype)
        gx[xp.arange(n_rows), safe] = -w_t * _row_scale(g, n_rows, ctx.reduction, ctx.denom)
        return _unrows(gx, ctx.shape), None


def _class_weight(op, weight, input):
    n_classes = input.shape[0] if input.ndim == 1 else input.shape[1]
    return weight_array(weight, op, f"weight (one per class, {n_classes} classes)", input, (n_classes,))


@autocast_op("cross_entropy")
def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits ``input`` (C,), (N, C) or (N, C, d1, ...) against integer class
    indices (the input's shape without C) or class probabilities (the input's shape)."""
    op = "cross_entropy"
    reduction = check_reduction(op, reduction, size_average, reduce)
    check_tensor(input, op, "input")
    check_tensor(target, op, "target")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: input (logits) must be floating point, got {input.dtype}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing}")
    if input.ndim == 0:
        raise ValueError(f"{op}: input must have a class dimension, got a 0-d tensor")
    w = _class_weight(op, weight, input)
    if target.dtype.kind not in "biu" and backend.is_floating(target.dtype):  # class indices: no call
        if target.shape != input.shape:
            raise ValueError(
                f"{op}: a floating-point target holds class probabilities and must have the input's "
                f"shape {input.shape}, got {target.shape}; class indices must be an integer tensor "
                "(use target.long())"
            )
        return CrossEntropyProb.apply(input, target.to(input.dtype), weight=w,
                                      label_smoothing=float(label_smoothing), reduction=reduction)
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices or float probabilities, got {target.dtype}")
    _check_class_target(op, input, target, ignore_index)
    return CrossEntropy.apply(input, target.array, weight=w, ignore_index=ignore_index,
                              label_smoothing=float(label_smoothing), reduction=reduction)


@autocast_op("nll_loss")
def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    """Negative log-likelihood of log-probabilities ``input`` at integer class ``target``."""
    op = "nll_loss"
    reduction = check_reduction(op, reduction, size_average, reduce)
    check_tensor(input, op, "input")
    check_tensor(target, op, "target")
    if input.dtype.kind != "f" and not backend.is_floating(input.dtype):
        raise TypeError(f"{op}: input (log-probabilities) must be floating point, got {input.dtype}")
    if target.dtype.kind not in "iu":
        raise TypeError(f"{op}: target must hold integer class indices, got {target.dtype} (use target.long())")
    _check_class_target(op, input, target, ignore_index)
    w = _class_weight(op, weight, input)
    return NLLLoss.apply(input, target.array, weight=w, ignore_index=ignore_index, reduction=reduction)


# ---------------------------------------------------------------------------- binary classification
def _log_clamped(p):
    return dual.maximum(dual.log(p), -100)


def _log1m_clamped(p):
    return dual.maximum(dual.log1p(-p), -100)


class BinaryCrossEntropy(Function):
    """-w (y log p + (1-y) log(1-p)), each log clamped at -100 so p = 0 or 1 stays finite."""

    @staticmethod
    def forward(ctx, p, y, *, weight, reduction):
        with quiet():
            log_p = _log_clamped(p)
            log_q = _log1m_clamped(p)
        loss = -(y * log_p + (1 - y) * log_q)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(p, y, log_p, log_q, weight)
        ctx.reduction = reduction
        return reduce_loss(loss, reduction)

    @staticmethod
    def backward(ctx, g):
        p, y, log_p, log_q, w = ctx.saved
        gl = spread_grad(g, p.shape, ctx.reduction)
        if w is not None:
            gl = gl * w
        gp = gy = None
        if ctx.needs_input_grad[0]:
            gp = gl * (p - y) / dual.maximum((1 - p) * p, p.dtype.type(1e-12))
        if ctx.needs_input_grad[1]:
            with quiet():
                log_p = dual.recompute(log_p, _log_clamped, p)
                log_q = dual.recompute(log_q, _log1m_clamped, p)
            gy = gl * (log_q - log_p)
        return gp, gy


def _softplus_neg(x):
    """softplus(-x) = max(-x, 0) + log1p(e^-|x|), finite for any x."""
    return dual.maximum(-x, 0) + dual.log1p(dual.exp(-dual.abs(x)))


class BinaryCrossEntropyWithLogits(Function):
    """(1-y) x + L softplus(-x) with L = 1 + (pos_weight-1) y; softplus(-x) = max(-x,0) + log1p(e^-|x|)."""

    @staticmethod
    def forward(ctx, x, y, *, weight, pos_weight, reduction):
        sp = _softplus_neg(x)
        lw = None if pos_weight is None else 1 + (pos_weight - 1) * y
        loss = (1 - y) * x + (sp if lw is None else lw * sp)
        if weight is not None:
            loss = loss * weight
        ctx.save_for_backward(x, y, sp, lw, pos_weight, weight)
        ctx.reduction = reduction
        return reduce_loss(loss, reduction)

    @staticmethod
    def backward(ctx, g):
        x, y, sp, lw, pw, w = ctx.saved
        gl = spread_grad(g, x.shape, ctx.reduction)
        if w is not None:
            gl = gl * w
        gx = gy = None
        if ctx.needs_input_grad[0]:
            s = dual.sigmoid(x)
            if pw is None:
                gx = gl * (s - y)
            else:
                lw = dual.recompute(lw, lambda y: 1 + (pw - 1) * y, y)
                gx = gl * ((1 - y) - lw * (1 - s))
        if ctx.needs_input_grad[1]:
            if pw is None:
                gy = gl * -x
            else:
                gy = gl * ((pw - 1) * dual.recompute(sp, _softplus_neg, x) - x)
        return gx, gy


def _broadcast_weight(op, name, w, input):
    w = weight_array(w, op, name, input)
    if w is None:
        return None
    try:
        return xp_of(w).broadcast_to(w, input.shape)
    except ValueError:
        raise ValueError(f"{op}: {name} of shape {tuple(w.shape)} does not broadcast to the input's shape "
                         f"{input.shape}") from None


@autocast_op("binary_cross_entropy")
def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    """BCE of probabilities ``input`` in [0, 1]; for logits use binary_cross_entropy_with_logits."""
    op = "binary_cross_entropy"
    reduction = check_reduction(op, reduction, size_average, reduce)
    input, target = float_pair(op, input, target)
    check_same_shape(op, input, target)
    if input.array.size:
        lo, hi = float(input.array.min()), float(input.array.max())
        if lo < 0 or hi > 1:
            raise ValueError(f"{op}: input must hold probabilities in [0, 1], got values in [{lo:g}, {hi:g}]; "
                             "for logits use binary_cross_entropy_with_logits")
    w = _broadcast_weight(op, "weight", weight, input)
    return BinaryCrossEntropy.apply(input, target, weight=w, reduction=reduction)


@autocast_op("binary_cross_entropy_with_logits")
def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    """sigmoid + BCE in one stable expression; ``pos_weight`` (one per class, last dim) scales positives."""
    op = "binary_cross_entropy_with_logits"
    reduction = check_reduction(op, reduction, size_average, reduce)
    input, target = float_pair(op, input, target)
    check_same_shape(op, input, target)
    w = _broadcast_weight(op, "weight", weight, input)
    pw = _broadcast_weight(op, "pos_weight", pos_weight, input)
    return BinaryCrossEntropyWithLogits.apply(input, target, weight=w, pos_weight=pw, reduction=reduction)


# -------------------------------------------------------------------------------- KL divergence
class KLDiv(Function):
    """Pointwise target (log target - input), with 0 log 0 = 0; input holds log-probabilities."""

    @staticmethod
    def forward(ctx, x, t, *, log_target, reduction):
        xp = xp_of(x)
        et = None
        if log_target:
            et = xp.exp(t)
            loss = et * (t - x)
        else:
            with quiet():
                tlogt = xp.where(t == 0, 0, t * xp.log(t)).astype(t.dtype, copy=False)
            loss = tlogt - t * x
        denom = None
        if reduction == "batchmean":
            reduction, denom = "mean", (x.shape[0] if x.ndim else 1)
        ctx.save_for_backward(x, t, et)
        ctx.log_target, ctx.reduction, ctx.denom, ctx.loss_shape = log_target, reduction, denom, loss.shape
        return reduce_loss(loss, reduction, denom)

    @staticmethod
    def backward(ctx, g):
        x, t, et = ctx.saved
        gl = spread_grad(g, ctx.loss_shape, ctx.reduction, ctx.denom)
        if ctx.log_target:
            et = dual.recompute(et, dual.exp, t)
        gx = gt = None
        if ctx.needs_input_grad[0]:
            gx = dual.sum_to(-gl * (et if ctx.log_target else t), x.shape)
        if ctx.needs_input_grad[1]:
            if ctx.log_target:
                gt = gl * et * (t - x + 1)
            else:
                with quiet():
                    gt = gl * (dual.log(t) + 1 - x)
            gt = dual.sum_to(gt, t.shape)
        return gx, gt


@autocast_op("kl_div")
def kl_div(input, target, size_average=None, reduce=None, reduction="mean", log_target=False):
    """KL(target || exp(input)) pointwise; 'batchmean' divides the sum by the batch size."""
    op = "kl_div"
    reduction = check_reduction(op, reduction, size_average, reduce, allowed=REDUCTIONS + ("batchmean",))
    input, target = float_pair(op, input, target)
    return KLDiv.apply(input, target, log_target=bool(log_target), reduction=reduction)
