"""Recurrent layers as fused ops: one node per layer and direction for a whole sequence.

``lstm_layer``, ``gru_layer`` and ``rnn_layer`` run one recurrent layer over all T steps:

* GRU and RNN: the input projection of every step is ONE GEMM, ``x (T*B, I) @ W_ih^T``, done before
  the loop, which does one small GEMM ``h @ W_hh^T`` per step;
* LSTM: column layout, every per-step array is (features, B), and each step is ONE GEMM
  ``[W_ih | W_hh] @ [x_t; h]`` with the big weight as BLAS's left operand (faster at small batch than
  ``h @ W^T``; see ``LSTMLayer``); with few columns (T*B < I+H: cells, generation, batch 1) the
  input projection is one GEMM before the loop instead;
* the gate math runs on whole per-step arrays, in place: every gate of a step comes from one
  ``exp`` (sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 sigmoid(2a) - 1, with the -1 / -2 folded
  into a scaled copy of the weights made once per call, or applied to each step's gates when the
  call is small);
* backward through time is written by hand on arrays: everything that does not depend on the
  recurrence (the gates' local derivatives) is computed for all steps at once before the loop, the
  loop carries only dh (and dc) back one step at a time, and the weight gradients are one GEMM each
  over all steps after it (``dW_ih = dG^T @ x``, ``dW_hh = dG^T @ h_prev``). That backward exists on
  arrays only (``array_backward``, no composite): ``create_graph=True`` through a recurrent layer
  raises an error naming its op.

Gate layouts are PyTorch's: LSTM rows stack (i, f, g, o), GRU rows (r, z, n) with
``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))`` and ``h' = (1 - z) * n + z * h``.

Variable lengths: ``lengths`` (one int per batch item, 0 <= len <= T) marks steps t >= len as
padding. There the state is frozen (h, c carry over unchanged) and the output is zero, as PyTorch's
packed sequences give after ``pad_packed_sequence``: a reverse direction therefore starts each
sequence at its own last real step, and padding never changes the outputs, final states or
gradients of real steps.

Inputs and outputs may be time-major (T, B, F) or, with ``batch_first=True``, (B, T, F); inside,
every per-step array is time-major (GRU, RNN) or a column block (LSTM) so each step reads and writes
whole slabs.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd.function import Function
from deepwise.ops._recurrent_common import (
    Seq,
    bias_grads,
    column_weight_grads,
    freeze,
    gate_scale,
    inv1p_exp,
    padded_rows,
    project,
    stacked_inputs,
    tanh_into,
    weight_grads,
)
from deepwise.tensor import Tensor

__all__ = ["gru_layer", "lengths_array", "lstm_layer", "rnn_layer"]


# --------------------------------------------------------------------------------------------- LSTM
class LSTMLayer(Function):
    """One LSTM layer, one direction, all steps. Outputs (output, h_n, c_n).

    Column layout: every per-step array is (features, B), so each step's GEMM is
    ``[W_ih | W_hh] (4H, I+H) @ [x_t; h_prev] (I+H, B)`` -- the input projection and the recurrence in
    one call, with the big weight as BLAS's left operand (about a third faster than ``h @ W^T`` at
    small batch). ``XH`` (I+H, (T+1) B) holds those right operands side by side: block k is
    ``[x; h]`` of the k-th step processed, its h rows written by step k-1 (block 0 holds h0); the
    same buffer is the right operand of ``dW = dG @ XH^T`` in backward, one GEMM for both weights.

    Saved for backward: S (T, 4H, B) = sigmoid(i), sigmoid(f), sigmoid(2 a_g), sigmoid(o) -- the g
    gate kept as the sigmoid it comes from, tanh(a_g) = 2 s - 1 and tanh'(a_g) = 4 s (1 - s), so one
    ``s * (1 - s)`` over the slab gives every gate's derivative -- the cell states c and tanh(c), XH.

    Backward through time is written on arrays only (``array_backward``, no composite): under
    ``create_graph=True`` this op raises an error naming it."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, lengths, *, reverse=False, batch_first=False):
        H = w_hh.shape[1]
        seq = Seq(x, H, lengths, reverse, batch_first)
        xp, B, I = seq.xp, seq.B, w_ih.shape[1]
        one, two = x.dtype.type(1), x.dtype.type(2)
        scale = gate_scale(xp, H, 4, x.dtype, tanh_gate=2)[:, None]
        bias = None if b_ih is None else (b_ih + b_hh)[:, None]
        x2 = seq.rows(x)
        XH = stacked_inputs(seq, x2, h0)
        # Few columns (a cell, a generation step, batch 1): the input projection of all steps is one
        # GEMM, (T*B, 4H) rows, and each step scales its own gates -- cheaper than a scaled copy of
        # both weights. Otherwise one (4H, I+H) weight, scaled once: 1 / (1 + exp(w @ xh)).
        small = seq.T * B < I + H
        if small:
            P = XH[:I, :seq.T * B].T @ w_ih.T
            if bias is not None:
                P += bias.T
        else:
            w = xp.concatenate((w_ih, w_hh), axis=1)
            w *= scale
            if bias is not None:
                bias *= scale
        S = seq.empty_cols(4 * H)
        Cs, Tc = seq.empty_cols(H), seq.empty_cols(H)
        out, out_tm = seq.empty_output()
        c = c0c = seq.state_cols(c0)
        ig = xp.empty((H, B), dtype=x.dtype)
        with np.errstate(over="ignore"):  # exp overflowing to inf is the intended limit
            for k, t in enumerate(seq.order()):
                g = S[k]
                if small:
                    xp.matmul(w_hh, XH[I:, k * B:(k + 1) * B], out=g)
                    g += P[k * B:(k + 1) * B].T
                    g *= scale
                else:
                    xp.matmul(w, XH[:, k * B:(k + 1) * B], out=g)
                    if bias is not None:
                        g += bias
                inv1p_exp(g, xp)  # sigmoid of every row (the g rows: sigmoid(2 a_g))
                xp.multiply(g[2 * H:3 * H], two, out=ig)
                ig -= one  # tanh(a_g)
                ig *= g[:H]  # i * g
                c_new, tc = Cs[k], Tc[k]
                xp.multiply(g[H:2 * H], c, out=c_new)
                c_new += ig
                tanh_into(c_new, tc, xp)
                h_new = XH[I:, (k + 1) * B:(k + 2) * B]
                xp.multiply(g[3 * H:], tc, out=h_new)
                if seq.padded(t):
                    keep = seq.mask[t].T
                    xp.copyto(h_new, XH[I:, k * B:(k + 1) * B], where=~keep)
                    xp.copyto(c_new, c, where=~keep)
                    xp.multiply(h_new.T, seq.maskf[t], out=out_tm[t])  # padding outputs zero
                else:
                    out_tm[t] = h_new.T
                c = c_new
        ctx.save_for_backward(XH, S, Cs, Tc, c0c, w_ih, w_hh)
        ctx.seq = seq
        return out, xp.ascontiguousarray(h_new.T), xp.ascontiguousarray(c.T)

    @staticmethod
    def backward(ctx, dout, dhn, dcn):
        seq, H, xp = ctx.seq, ctx.seq.H, ctx.seq.xp
        XH, S, Cs, Tc, c0, w_ih, w_hh = ctx.saved
        B, I = seq.B, w_ih.shape[1]
        one, two, four = S.dtype.type(1), S.dtype.type(2), S.dtype.type(4)
        dG = padded_rows(xp, 4 * H, seq.T * B, S.dtype)  # column block k: step k processed
        dout_tm = seq.from_layout(dout)
        dh, dc = dhn.T.copy(), dcn.T.copy()  # own copies: updated in place
        w_hhT = xp.ascontiguousarray(w_hh.T)  # BLAS runs W_hh^T @ d faster from its own copy
        a = xp.empty((H, B), dtype=S.dtype)
        dh_t = xp.empty((H, B), dtype=S.dtype)
        d = xp.empty((4 * H, B), dtype=S.dtype)
        steps = list(enumerate(seq.order()))
        for k, t in reversed(steps):  # every step works on its own (4H, B) slab, hot in cache
            xp.add(dh, dout_tm[t].T, out=dh_t)
            if seq.padded(t):
                m = seq.maskf[t].T
                pass_h, pass_c = dh * (1 - m), dc * (1 - m)
                dh_t *= m
                dc *= m
            s, tc = S[k], Tc[k]
            xp.multiply(tc, tc, out=a)
            xp.subtract(one, a, out=a)
            a *= s[3 * H:]
            a *= dh_t
            dc += a  # through h = o * tanh(c)
            xp.subtract(one, s, out=d)
            d *= s  # s (1 - s): the sigmoid' of every row
            xp.multiply(s[2 * H:3 * H], two, out=a)
            a -= one
            a *= dc
            d[:H] *= a  # i: dc * tanh(a_g)
            xp.multiply(dc, c0 if k == 0 else Cs[k - 1], out=a)
            d[H:2 * H] *= a  # f: dc * c_prev
            xp.multiply(s[:H], dc, out=a)
            a *= four
            d[2 * H:3 * H] *= a  # g: dc * i * 4 (tanh'(a) = 4 sigmoid'(2a))
            xp.multiply(dh_t, tc, out=a)
            d[3 * H:] *= a  # o: dh * tanh(c)
            dc *= s[H:2 * H]
            xp.matmul(w_hhT, d, out=dh)
            dG[:, k * B:(k + 1) * B] = d
            if seq.padded(t):
                dh += pass_h
                dc += pass_c
        need = ctx.needs_input_grad
        dx = None
        if need[0]:
            dx = seq.from_steps((dG.T @ w_ih).reshape(seq.T, B, I))
        dw_ih, dw_hh = column_weight_grads(dG, XH, I, need[3], need[4])
        db_ih = db_hh = None
        if need[5] or need[6]:
            db = dG.sum(axis=1)
            db_ih = db if need[5] else None
            db_hh = (db.copy() if need[5] else db) if need[6] else None
        return (dx, dh.T.copy() if need[1] else None, dc.T.copy() if need[2] else None, dw_ih, dw_hh,
                db_ih, db_hh, None)


# ---------------------------------------------------------------------------------------------- GRU
class GRULayer(Function):
    """One GRU layer, one direction, all steps. Outputs (output, h_n). Backward on arrays only, as
    ``LSTMLayer``'s."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, *, reverse=False, batch_first=False):
        H = w_hh.shape[1]
        seq = Seq(x, H, lengths, reverse, batch_first)
        xp = seq.xp
        scale = gate_scale(xp, H, 3, x.dtype, tanh_gate=2)
        one, two = x.dtype.type(1), x.dtype.type(2)
        bias = b_hn = None
        if b_ih is not None:
            bias = b_ih.copy()
            bias[:2 * H] += b_hh[:2 * H]  # r and z add both biases outside the recurrence
            bias *= scale
            b_hn = b_hh[2 * H:] * scale[2 * H:]
        x2 = seq.rows(x)
        small = seq.T * seq.B < x2.shape[1] + H  # few columns: scale the gates, not copies of the weights
        if small:
            G = project(x2, w_ih, None, seq)  # G becomes (r, z, n)
            G *= scale
            if bias is not None:
                G += bias
            whhT = w_hh.T
        else:
            G = project(x2, w_ih * scale[:, None], bias, seq)
            whhT = xp.ascontiguousarray((w_hh * scale[:, None]).T)
        Hs = seq.empty(H)
        HN = seq.empty(H)  # -2 (W_hn h + b_hn), needed by backward
        h = seq.zeros_state(h0)
        rec = xp.empty((seq.B, 3 * H), dtype=x.dtype)
        with np.errstate(over="ignore"):  # exp overflowing to inf is the intended limit
            for t in seq.order():
                g = G[t]
                xp.matmul(h, whhT, out=rec)
                if small:
                    rec *= scale
                rz = g[:, :2 * H]
                rz += rec[:, :2 * H]
                inv1p_exp(rz, xp)  # r, z
                hn = HN[t]
                if b_hn is None:
                    hn[...] = rec[:, 2 * H:]
                else:
                    xp.add(rec[:, 2 * H:], b_hn, out=hn)
                n = g[:, 2 * H:]
                xp.multiply(g[:, :H], hn, out=rec[:, :H])
                n += rec[:, :H]
                inv1p_exp(n, xp)
                n *= two
                n -= one  # n = tanh(W_in x + b_in + r * (W_hn h + b_hn))
                h_new = Hs[t]
                xp.subtract(h, n, out=h_new)  # h' = n + z * (h - n)
                h_new *= g[:, H:2 * H]
                h_new += n
                freeze(seq, t, h_new, h)
                h = h_new
        ctx.save_for_backward(x2, G, HN, Hs, seq.zeros_state(h0), w_ih, w_hh)
        ctx.seq = seq
        return seq.output(Hs), h.copy()

    @staticmethod
    def backward(ctx, dout, dhn):
        seq, H, xp = ctx.seq, ctx.seq.H, ctx.seq.xp
        x2, G, HN, Hs, h0, w_ih, w_hh = ctx.saved
        one, neg_half = G.dtype.type(1), G.dtype.type(-0.5)
        dGX = seq.empty(3 * H)  # wrt the input projections (incl. b_ih)
        dGH = seq.empty(3 * H)  # wrt the recurrent projections (incl. b_hh)
        dout = seq.from_layout(dout)
        dh = dhn
        a = xp.empty((seq.B, H), dtype=G.dtype)
        b = xp.empty((seq.B, H), dtype=G.dtype)
        for t in seq.backward_order():  # every step works on its own slabs, hot in cache
            dh_t = dh + dout[t]
            if seq.padded(t):
                m = seq.maskf[t]
                pass_h = dh * (1 - m)
                dh_t *= m
            g, dgx, dgh = G[t], dGX[t], dGH[t]
            r, z, n = g[:, :H], g[:, H:2 * H], g[:, 2 * H:]
            p = seq.prev_step(t)
            h_prev = h0 if p is None else Hs[p]
            xp.subtract(one, g, out=dgh)
            dgh *= g  # s (1 - s): sigmoid' of r and z (the n slot is overwritten below)
            dn = dgx[:, 2 * H:]
            xp.multiply(n, n, out=a)
            xp.subtract(one, a, out=a)  # tanh'(n)
            xp.subtract(one, z, out=b)
            a *= b
            xp.multiply(a, dh_t, out=dn)  # dh * (1 - z) * tanh'
            xp.subtract(h_prev, n, out=a)
            a *= dh_t
            dgh[:, H:2 * H] *= a  # z: dh * (h_prev - n) * sigmoid'
            xp.multiply(dn, HN[t], out=a)
            a *= neg_half
            dgh[:, :H] *= a  # r: dn * (W_hn h + b_hn) * sigmoid'  (HN holds -2 (W_hn h + b_hn))
            xp.multiply(dn, r, out=dgh[:, 2 * H:])  # through r * (W_hn h + b_hn)
            dgx[:, :2 * H] = dgh[:, :2 * H]
            dh = dgh @ w_hh
            xp.multiply(dh_t, z, out=a)
            dh += a
            if seq.padded(t):
                dh += pass_h
        dx, dw_ih, dw_hh = weight_grads(ctx, x2, w_ih, dGX, dGH, Hs, h0, 2)
        db_ih, db_hh = bias_grads(ctx, dGX, dGH, 2)
        return dx, dh if ctx.needs_input_grad[1] else None, dw_ih, dw_hh, db_ih, db_hh, None


# ---------------------------------------------------------------------------------------------- RNN
class RNNLayer(Function):
    """One Elman RNN layer (tanh or relu), one direction, all steps. Outputs (output, h_n). Backward
    on arrays only, as ``LSTMLayer``'s."""

    array_backward = True

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, *, nonlinearity="tanh", reverse=False,
                batch_first=False):
        H = w_hh.shape[1]
        seq = Seq(x, H, lengths, reverse, batch_first)
        xp = seq.xp
        x2 = seq.rows(x)
        P = project(x2, w_ih, None if b_ih is None else b_ih + b_hh, seq)
        whhT = xp.ascontiguousarray(w_hh.T)
        Hs = seq.empty(H)
        h = seq.zeros_state(h0)
        relu = nonlinearity == "relu"
        zero = x.dtype.type(0)
        for t in seq.order():
            h_new = Hs[t]
            xp.matmul(h, whhT, out=h_new)
            h_new += P[t]
            if relu:
                xp.maximum(h_new, zero, out=h_new)
            else:
                xp.tanh(h_new, out=h_new)
            freeze(seq, t, h_new, h)
            h = h_new
        ctx.save_for_backward(x2, Hs, seq.zeros_state(h0), w_ih, w_hh)
        ctx.seq, ctx.relu = seq, relu
        return seq.output(Hs), h.copy()

    @staticmethod
    def backward(ctx, dout, dhn):
        seq, H, xp = ctx.seq, ctx.seq.H, ctx.seq.xp
        x2, Hs, h0, w_ih, w_hh = ctx.saved
        one = Hs.dtype.type(1)
        dP = seq.empty(H)
        dout = seq.from_layout(dout)
        dh = dhn
        for t in seq.backward_order():
            dh_t = dh + dout[t]
            if seq.padded(t):
                m = seq.maskf[t]
                pass_h = dh * (1 - m)
                dh_t *= m
            d = dP[t]
            if ctx.relu:
                xp.greater(Hs[t], 0, out=d)  # relu' (as 0 / 1 in the float dtype)
            else:
                xp.multiply(Hs[t], Hs[t], out=d)
                xp.subtract(one, d, out=d)  # tanh'
            d *= dh_t
            dh = d @ w_hh
            if seq.padded(t):
                dh += pass_h
        dx, dw_ih, dw_hh = weight_grads(ctx, x2, w_ih, dP, dP, Hs, h0, 2)
        db_ih, db_hh = bias_grads(ctx, dP, dP, 2)
        return dx, dh if ctx.needs_input_grad[1] else None, dw_ih, dw_hh, db_ih, db_hh, None


# ------------------------------------------------------------------------------------ the functions
def lengths_array(lengths, B, T, op):
    """``lengths`` (list, array or Tensor) -> validated int64 NumPy array of shape (B,)."""
    if lengths is None:
        return None
    data = lengths.array if isinstance(lengths, Tensor) else lengths
    if backend.is_array(data):
        data = backend.to_device(data, backend.Device("cpu"))
    arr = np.asarray(data)
    if arr.dtype.kind not in "iu" and arr.size:
        if backend.is_floating(arr.dtype) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{op}: lengths must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64).reshape(-1) if arr.ndim <= 1 else arr
    if arr.ndim != 1 or arr.shape[0] != B:
        raise ValueError(f"{op}: lengths must hold one length per batch item ({B}), got shape {tuple(arr.shape)}")
    if arr.size and (arr.min() < 0 or arr.max() > T):
        raise ValueError(f"{op}: lengths must lie in 0..{T} (the padded sequence length), got "
                         f"min {int(arr.min())}, max {int(arr.max())}")
    return arr


def _check(op, n_gates, input, w_ih, w_hh, b_ih, b_hh, states, batch_first):
    """Shape checks with messages that name the op and both shapes; returns input cast to the weights'
    dtype."""
    if input.ndim != 3:
        layout = "(batch, seq, features)" if batch_first else "(seq, batch, features)"
        raise ValueError(f"{op}: input must be 3-D {layout}, got shape {tuple(input.shape)}")
    if w_hh.ndim != 2 or w_hh.shape[0] != n_gates * w_hh.shape[1]:
        raise ValueError(f"{op}: weight_hh must be ({n_gates}*hidden, hidden), got {tuple(w_hh.shape)}")
    H = w_hh.shape[1]
    if w_ih.ndim != 2 or w_ih.shape[0] != n_gates * H:
        raise ValueError(f"{op}: weight_ih must be ({n_gates}*{H}, input_size) to match weight_hh "
                         f"{tuple(w_hh.shape)}, got {tuple(w_ih.shape)}")
    if input.shape[-1] != w_ih.shape[1]:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} has {input.shape[-1]} features, "
                         f"but weight_ih {tuple(w_ih.shape)} expects input_size={w_ih.shape[1]}")
    if (b_ih is None) != (b_hh is None):
        raise ValueError(f"{op}: give both bias_ih and bias_hh, or neither")
    for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
        if b is not None and tuple(b.shape) != (n_gates * H,):
            raise ValueError(f"{op}: {name} must be ({n_gates * H},), got {tuple(b.shape)}")
    B = input.shape[0] if batch_first else input.shape[1]
    for name, s in states:
        if s is not None and tuple(s.shape) != (B, H):
            raise ValueError(f"{op}: initial state {name} must be (batch, hidden) = ({B}, {H}), "
                             f"got {tuple(s.shape)}")
    if input.dtype != w_ih.dtype:
        input = input.to(w_ih.dtype)
    T = input.shape[1] if batch_first else input.shape[0]
    if T == 0:
        raise ValueError(f"{op}: input of shape {tuple(input.shape)} has no time steps")
    return input, B, T


def _cast_state(s, like):
    return s if s is None or s.dtype == like.dtype else s.to(like.dtype)


def lstm_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, hx=None, cx=None, *, lengths=None,
               reverse=False, batch_first=False):
    """One LSTM layer over a whole sequence -> (output, h_n, c_n).

    input (T, B, I) (or (B, T, I) with ``batch_first``), weight_ih (4H, I), weight_hh (4H, H), biases
    (4H,), gate rows stacked i, f, g, o; hx, cx (B, H) default to zeros. ``reverse`` runs from the last
    step to the first; ``lengths`` (B,) marks the real length of each padded sequence."""
    input, B, T = _check("lstm_layer", 4, input, weight_ih, weight_hh, bias_ih, bias_hh,
                         (("hx", hx), ("cx", cx)), batch_first)
    lens = lengths_array(lengths, B, T, "lstm_layer")
    return LSTMLayer.apply(input, _cast_state(hx, weight_ih), _cast_state(cx, weight_ih), weight_ih, weight_hh,
                           bias_ih, bias_hh, lens, reverse=bool(reverse), batch_first=bool(batch_first))


def gru_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, hx=None, *, lengths=None,
              reverse=False, batch_first=False):
    """One GRU layer over a whole sequence -> (output, h_n); gate rows stacked r, z, n (PyTorch's
    formula, with b_hn inside r * (W_hn h + b_hn)). Arguments as ``lstm_layer``."""
    input, B, T = _check("gru_layer", 3, input, weight_ih, weight_hh, bias_ih, bias_hh, (("hx", hx),),
                         batch_first)
    lens = lengths_array(lengths, B, T, "gru_layer")
    return GRULayer.apply(input, _cast_state(hx, weight_ih), weight_ih, weight_hh, bias_ih, bias_hh, lens,
                          reverse=bool(reverse), batch_first=bool(batch_first))


def rnn_layer(input, weight_ih, weight_hh, bias_ih=None, bias_hh=None, hx=None, *, nonlinearity="tanh",
              lengths=None, reverse=False, batch_first=False):
    """One Elman RNN layer, h' = act(W_ih x + b_ih + W_hh h + b_hh) with act tanh or relu -> (output, h_n)."""
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"rnn_layer: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    input, B, T = _check("rnn_layer", 1, input, weight_ih, weight_hh, bias_ih, bias_hh, (("hx", hx),),
                         batch_first)
    lens = lengths_array(lengths, B, T, "rnn_layer")
    return RNNLayer.apply(input, _cast_state(hx, weight_ih), weight_ih, weight_hh, bias_ih, bias_hh, lens,
                          nonlinearity=nonlinearity, reverse=bool(reverse), batch_first=bool(batch_first))
