"""Pieces the fused recurrent layers share: the sequence bookkeeping (``Seq``), the one-GEMM
input projection, freezing padded steps, the weight and bias gradients over all steps, and the
one-``exp`` gate arithmetic."""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.ops._util import xp_of


def _steps(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


class Seq:
    """Shapes, step order, layout and padding masks of one call (shared by the three ops).

    Inside the ops every per-step array is time-major (T, B, F), so the slab of step t is one
    contiguous block; a batch-first input is transposed once on the way in and its output and input
    gradient once on the way out."""

    def __init__(self, x, hidden, lengths, reverse, batch_first):
        self.xp = xp = xp_of(x)
        self.batch_first = batch_first
        self.reverse = reverse
        self.x_shape = x.shape
        if batch_first:
            self.B, self.T = x.shape[0], x.shape[1]
        else:
            self.T, self.B = x.shape[0], x.shape[1]
        self.H = hidden
        self.dtype = x.dtype
        self.first_padded = self.T  # steps t >= first_padded have at least one padded row
        self.mask = None
        if lengths is not None:
            lens = np.asarray(lengths)
            self.first_padded = int(lens.min()) if lens.size else self.T
            if self.first_padded < self.T:
                dev = backend.to_device(lens, backend.device_of(x)) if xp is not np else lens
                keep = xp.arange(self.T)[:, None] < dev[None, :]  # (T, B)
                self.mask = keep[:, :, None]  # (T, B, 1) bool
                self.maskf = self.mask.astype(x.dtype)

    def rows(self, x):
        """The input as time-major rows (T*B, I)."""
        if self.batch_first:
            x = x.swapaxes(0, 1)
        return self.xp.ascontiguousarray(x).reshape(-1, x.shape[-1])

    def to_layout(self, a):
        """A time-major (T, B, F) array in the caller's layout (a contiguous copy when batch-first)."""
        return self.xp.ascontiguousarray(a.swapaxes(0, 1)) if self.batch_first else a

    def from_layout(self, a):
        """The caller's (T, B, F) or (B, T, F) array as time-major (a view)."""
        return a.swapaxes(0, 1) if self.batch_first else a

    def empty(self, width):
        return self.xp.empty((self.T, self.B, width), dtype=self.dtype)

    def order(self):
        return _steps(self.T, self.reverse)

    def backward_order(self):
        return _steps(self.T, not self.reverse)

    def padded(self, t):
        return self.mask is not None and t >= self.first_padded

    def prev_step(self, t):
        """The step whose state feeds step t (None for the first step processed: it gets h0)."""
        if self.reverse:
            return t + 1 if t + 1 < self.T else None
        return t - 1 if t > 0 else None

    def output(self, states):
        """The layer's output in the caller's layout: the states, zero at padded steps."""
        if self.mask is not None:
            states = states * self.maskf
        return self.to_layout(states)

    # column layout (the LSTM): per-step arrays (features, B), steps stacked in processing order
    def empty_cols(self, width):
        return self.xp.empty((self.T, width, self.B), dtype=self.dtype)

    def state_cols(self, given):
        """An initial state (B, H) as its own (H, B) array (zeros when not given)."""
        if given is None:
            return self.xp.zeros((self.H, self.B), dtype=self.dtype)
        return given.T.copy()

    def empty_output(self):
        """``(out, out_tm)``: the output array in the caller's layout and its time-major (T, B, H) view."""
        if self.batch_first:
            out = self.xp.empty((self.B, self.T, self.H), dtype=self.dtype)
            return out, out.swapaxes(0, 1)
        out = self.xp.empty((self.T, self.B, self.H), dtype=self.dtype)
        return out, out

    def from_steps(self, a):
        """A (T, B, F) array whose slabs are in processing order -> the caller's layout, contiguous."""
        if self.reverse:
            a = a[::-1]
        if self.batch_first:
            a = a.swapaxes(0, 1)
        return self.xp.ascontiguousarray(a)

    def zeros_state(self, given):
        if given is not None:
            return given
        return self.xp.zeros((self.B, self.H), dtype=self.dtype)


def project(x2, w, b, seq):
    """All steps' input projection in one GEMM: (T*B, I) @ W^T (+ b) -> (T, B, rows)."""
    gx = x2 @ w.T
    if b is not None:
        gx += b
    return gx.reshape(seq.T, seq.B, w.shape[0])


def padded_rows(xp, rows, cols, dtype):
    """An uninitialised (rows, cols) array whose row stride is no multiple of 1 KiB: the column-layout
    buffers are read and written one (rows, B) block at a time, and rows 2^n bytes apart would all
    fall into the same few cache sets."""
    extra = 16 if (cols * np.dtype(dtype).itemsize) % 1024 == 0 else 0
    full = xp.empty((rows, cols + extra), dtype=dtype)
    return full[:, :cols] if extra else full


def stacked_inputs(seq, x2, h0):
    """``XH`` (I+H, (T+1) B) for the column layout: block k holds [x; h] of the k-th step processed --
    its x rows filled here (transposed once), its h rows by step k-1 (block 0: h0). Block T's x rows
    are unused (zero)."""
    xp, T, B, H = seq.xp, seq.T, seq.B, seq.H
    I = x2.shape[1]
    XH = padded_rows(xp, I + H, (T + 1) * B, seq.dtype)
    xs = x2.reshape(T, B, I)
    if seq.reverse:
        xs = xs[::-1]
    XH[:I, :T * B] = xs.reshape(T * B, I).T
    XH[:I, T * B:] = 0
    XH[I:, :B] = 0 if h0 is None else h0.T
    return XH


def column_weight_grads(dG, XH, I, need_ih, need_hh):
    """dW_ih, dW_hh from the column-layout gate gradients dG (gates, T B) and the stacked inputs XH:
    ``dG @ XH^T`` over all steps, one GEMM for both when both are wanted."""
    xp = xp_of(dG)
    n = dG.shape[1]
    if need_ih and need_hh:
        dw = dG @ XH[:, :n].T
        return xp.ascontiguousarray(dw[:, :I]), xp.ascontiguousarray(dw[:, I:])
    dw_ih = dG @ XH[:I, :n].T if need_ih else None
    dw_hh = dG @ XH[I:, :n].T if need_hh else None
    return dw_ih, dw_hh


def freeze(seq, t, new, old):
    """At padded rows of step t the state stays what it was."""
    if seq.padded(t):
        seq.xp.copyto(new, old, where=~seq.mask[t])


def weight_grads(ctx, x2, w_ih, dgx, dgh, states, h0, i_w):
    """dx, dW_ih, dW_hh as one GEMM each over all steps (``i_w``: position of W_ih among the inputs).

    The state before step t is ``states`` one step earlier in processing order (h0 for the first):
    frozen padded steps hold their carried state, so the shift is right with padding too. dW_hh is
    then one GEMM over the shifted slabs plus a (gates, B) @ (B, H) one for h0 -- no shifted copy."""
    need = ctx.needs_input_grad
    seq = ctx.seq
    dgx2 = dgx.reshape(-1, dgx.shape[-1])
    dx = None
    if need[0]:
        dx = seq.to_layout((dgx2 @ w_ih).reshape(seq.T, seq.B, w_ih.shape[1]))
    dw_ih = dgx2.T @ x2 if need[i_w] else None
    dw_hh = None
    if need[i_w + 1]:
        rows, H = dgh.shape[-1], states.shape[-1]
        first = seq.T - 1 if seq.reverse else 0
        dw_hh = dgh[first].T @ h0
        if seq.T > 1:
            g_rest, s_prev = (dgh[:-1], states[1:]) if seq.reverse else (dgh[1:], states[:-1])
            dw_hh += g_rest.reshape(-1, rows).T @ s_prev.reshape(-1, H)
    return dx, dw_ih, dw_hh


def bias_grads(ctx, dgx, dgh, i_w):
    need = ctx.needs_input_grad
    db_ih = dgx.reshape(-1, dgx.shape[-1]).sum(axis=0) if need[i_w + 2] else None
    db_hh = None
    if need[i_w + 3]:
        db_hh = db_ih.copy() if dgh is dgx and db_ih is not None else dgh.reshape(-1, dgh.shape[-1]).sum(axis=0)
    return db_ih, db_hh


def gate_scale(xp, H, n_gates, dtype, tanh_gate):
    """Per-row factors folded into the weights so that ``1 / (1 + exp(pre))`` gives every gate at once:
    -1 for sigmoid gates (sigmoid(a) = 1 / (1 + exp(-a))), -2 for the tanh gate (tanh(a) =
    2 sigmoid(2a) - 1, finished with two cheap ops on its slice)."""
    scale = xp.full((n_gates * H,), -1.0, dtype=dtype)
    scale[tanh_gate * H:(tanh_gate + 1) * H] = -2.0
    return scale


def inv1p_exp(a, xp):
    """a <- 1 / (1 + exp(a)), in place (exp overflowing to inf gives the right limit, 0; callers
    silence NumPy's overflow warning)."""
    one = a.dtype.type(1)
    xp.exp(a, out=a)
    a += one
    xp.divide(one, a, out=a)


def tanh_into(a, out, xp):
    """out <- tanh(a). NumPy 2's float32 tanh is vectorised: one call, ~2.4x faster than building it
    from exp (2 / (1 + exp(-2a)) - 1, five passes) and closer to the float64 value."""
    xp.tanh(a, out=out)
