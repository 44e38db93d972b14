"""RNN / LSTM / GRU layers and cells against PyTorch: same state_dict -> same outputs, final states,
input and initial-state gradients and parameter gradients, over every option combination; padding
through ``lengths`` against ``pack_padded_sequence``; reprs, errors, initialisation, dropout."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import deepwise as dw
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNCell

KINDS = ["rnn_tanh", "rnn_relu", "lstm", "gru"]


def _pair(kind, torch, *args, **kw):
    """The same layer in both frameworks, deepwise loaded with torch's weights."""
    if kind.startswith("rnn"):
        kw["nonlinearity"] = kind[4:]
        ours, theirs = RNN(*args, **kw), torch.nn.RNN(*args, **kw)
    else:
        ours = {"lstm": LSTM, "gru": GRU}[kind](*args, **kw)
        theirs = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](*args, **kw)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _t(torch, a, grad=False):
    return torch.tensor(a, requires_grad=grad)


def _d(a, grad=False):
    return dw.tensor(a, requires_grad=grad)


def _close(ours, theirs, what, atol=2e-5):
    np.testing.assert_allclose(ours.detach().numpy(), theirs.detach().numpy(), atol=atol, rtol=1e-4, err_msg=what)


CASES = list(itertools.product(KINDS, [1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("kind,num_layers,bidirectional,batch_first,with_state", CASES)
def test_layer_matches_torch(kind, num_layers, bidirectional, batch_first, with_state, torch, rng):
    T, B, I, H = 5, 3, 4, 6
    ours, theirs = _pair(kind, torch, I, H, num_layers=num_layers, bidirectional=bidirectional,
                         batch_first=batch_first)
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
    n_states = 2 if kind == "lstm" else 1
    L = num_layers * (2 if bidirectional else 1)
    states = [rng.standard_normal((L, B, H)).astype(np.float32) for _ in range(n_states)] if with_state else []
    tx, dx = _t(torch, x, True), _d(x, True)
    tst, dst = [_t(torch, s, True) for s in states], [_d(s, True) for s in states]
    if kind == "lstm":
        t_out, t_fin = theirs(tx, tuple(tst) if tst else None)
        d_out, d_fin = ours(dx, tuple(dst) if dst else None)
    else:
        t_out, t_fin = theirs(tx, tst[0] if tst else None)
        d_out, d_fin = ours(dx, dst[0] if dst else None)
        t_fin, d_fin = (t_fin,), (d_fin,)
    assert tuple(d_out.shape) == tuple(t_out.shape)
    _close(d_out, t_out, "output")
    for k, (a, b) in enumerate(zip(d_fin, t_fin)):
        _close(a, b, f"final state {k}")
    proj = rng.standard_normal(t_out.shape).astype(np.float32)
    fproj = [rng.standard_normal((L, B, H)).astype(np.float32) for _ in t_fin]
    (t_out * _t(torch, proj)).sum().add(sum((f * _t(torch, p)).sum() for f, p in zip(t_fin, fproj))).backward()
    loss = (d_out * _d(proj)).sum()
    for f, p in zip(d_fin, fproj):
        loss = loss + (f * _d(p)).sum()
    loss.backward()
    _close(dx.grad, tx.grad, "input grad")
    for a, b in zip(dst, tst):
        _close(a.grad, b.grad, "initial state grad")
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name
        _close(p.grad, named[name].grad, f"grad of {name}", atol=5e-5)


@pytest.mark.parametrize("kind", ["rnn_tanh", "lstm", "gru"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lengths_match_pack_padded_sequence(kind, bidirectional, torch, rng):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, I, H = 7, 3, 5
    lens = [7, 4, 2, 5]
    ours, theirs = _pair(kind, torch, I, H, num_layers=2, bidirectional=bidirectional, batch_first=True)
    x = rng.standard_normal((len(lens), T, I)).astype(np.float32)
    x[np.arange(T)[None, :] >= np.array(lens)[:, None]] = 5.0  # garbage in the padding must not matter
    tx, dx = _t(torch, x, True), _d(x, True)
    packed = pack_padded_sequence(tx, torch.tensor(lens), batch_first=True, enforce_sorted=False)
    t_out, t_fin = theirs(packed)
    t_out, _ = pad_packed_sequence(t_out, batch_first=True, total_length=T)
    d_out, d_fin = ours(dx, lengths=lens)
    t_fin = t_fin if kind == "lstm" else (t_fin,)
    d_fin = d_fin if kind == "lstm" else (d_fin,)
    _close(d_out, t_out, "padded output")
    for a, b in zip(d_fin, t_fin):
        _close(a, b, "final state")
    proj = rng.standard_normal(t_out.shape).astype(np.float32)
    ((t_out * _t(torch, proj)).sum() + sum(f.sum() for f in t_fin)).backward()
    loss = (d_out * _d(proj)).sum()
    for f in d_fin:
        loss = loss + f.sum()
    loss.backward()
    _close(dx.grad, tx.grad, "input grad")
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        _close(p.grad, named[name].grad, f"grad of {name}", atol=5e-5)


def test_padded_batch_equals_each_sequence_alone(rng):
    m = LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    lens = [5, 2, 3]
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    out, (h, c) = m(_d(x), lengths=lens)
    for b, n in enumerate(lens):
        o1, (h1, c1) = m(_d(x[b:b + 1, :n]))
        np.testing.assert_allclose(out.detach().numpy()[b, :n], o1.detach().numpy()[0], atol=1e-6)
        assert np.all(out.detach().numpy()[b, n:] == 0)
        np.testing.assert_allclose(h.detach().numpy()[:, b], h1.detach().numpy()[:, 0], atol=1e-6)
        np.testing.assert_allclose(c.detach().numpy()[:, b], c1.detach().numpy()[:, 0], atol=1e-6)


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu", "lstm", "gru"])
@pytest.mark.parametrize("with_state,unbatched", [(False, False), (True, False), (True, True)])
def test_cells_match_torch(kind, with_state, unbatched, torch, rng):
    I, H, B = 4, 5, 3
    if kind.startswith("rnn"):
        ours, theirs = RNNCell(I, H, nonlinearity=kind[4:]), torch.nn.RNNCell(I, H, nonlinearity=kind[4:])
    else:
        ours = {"lstm": LSTMCell, "gru": GRUCell}[kind](I, H)
        theirs = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[kind](I, H)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    shape = (I,) if unbatched else (B, I)
    sshape = (H,) if unbatched else (B, H)
    x = rng.standard_normal(shape).astype(np.float32)
    states = [rng.standard_normal(sshape).astype(np.float32) for _ in range(2 if kind == "lstm" else 1)]
    tx, dx = _t(torch, x, True), _d(x, True)
    tst, dst = [_t(torch, s, True) for s in states], [_d(s, True) for s in states]
    if kind == "lstm":
        t_res = theirs(tx, tuple(tst) if with_state else None)
        d_res = ours(dx, tuple(dst) if with_state else None)
    else:
        t_res = (theirs(tx, tst[0] if with_state else None),)
        d_res = (ours(dx, dst[0] if with_state else None),)
    for a, b in zip(d_res, t_res):
        assert tuple(a.shape) == tuple(b.shape)
        _close(a, b, "cell output")
    sum((r * (k + 1)).sum() for k, r in enumerate(t_res)).backward()
    loss = d_res[0].sum()
    if len(d_res) > 1:
        loss = loss + (d_res[1] * 2).sum()
    loss.backward()
    _close(dx.grad, tx.grad, "input grad")
    if with_state:
        for a, b in zip(dst, tst):
            _close(a.grad, b.grad, "state grad")
    named = dict(theirs.named_parameters())
    for name, p in ours.named_parameters():
        _close(p.grad, named[name].grad, f"grad of {name}")


def test_unbatched_and_no_bias_match_torch(torch, rng):
    ours, theirs = _pair("gru", torch, 3, 4, num_layers=2, bias=False, bidirectional=True)
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    x = rng.standard_normal((6, 3)).astype(np.float32)
    d_out, d_h = ours(_d(x))
    t_out, t_h = theirs(_t(torch, x))
    assert tuple(d_out.shape) == (6, 8) and tuple(d_h.shape) == (4, 4)
    _close(d_out, t_out, "unbatched output")
    _close(d_h, t_h, "unbatched final state")


def test_state_dict_layout_and_init(torch):
    ours, theirs = LSTM(3, 8, num_layers=2, bidirectional=True), torch.nn.LSTM(3, 8, num_layers=2, bidirectional=True)
    sd, tsd = ours.state_dict(), theirs.state_dict()
    assert list(sd) == list(tsd)
    for k in sd:
        assert tuple(sd[k].shape) == tuple(tsd[k].shape), k
        assert sd[k].dtype == np.float32
        assert np.abs(sd[k].numpy()).max() <= 1 / np.sqrt(8)
    allw = np.concatenate([v.numpy().ravel() for v in sd.values()])
    assert allw.std() > 0.1  # drawn, not constant: U(-k, k) has std k / sqrt(3) = 0.204
    dw.manual_seed(3)
    a = GRU(3, 5).state_dict()
    dw.manual_seed(3)
    b = GRU(3, 5).state_dict()
    for k in a:
        np.testing.assert_array_equal(a[k].numpy(), b[k].numpy())


def test_reprs_match_torch(torch):
    pairs = [
        (RNN(3, 4), torch.nn.RNN(3, 4)),
        (LSTM(3, 4, 2, batch_first=True, dropout=0.5, bidirectional=True),
         torch.nn.LSTM(3, 4, 2, batch_first=True, dropout=0.5, bidirectional=True)),
        (GRU(3, 4, bias=False), torch.nn.GRU(3, 4, bias=False)),
        (RNNCell(3, 4, nonlinearity="relu"), torch.nn.RNNCell(3, 4, nonlinearity="relu")),
        (LSTMCell(3, 4, bias=False), torch.nn.LSTMCell(3, 4, bias=False)),
        (GRUCell(3, 4), torch.nn.GRUCell(3, 4)),
    ]
    for ours, theirs in pairs:
        assert repr(ours) == repr(theirs)


def test_dropout_between_layers_only_in_training(rng):
    x = _d(rng.standard_normal((6, 2, 3)).astype(np.float32))
    m = LSTM(3, 8, num_layers=2, dropout=0.5)
    ref = LSTM(3, 8, num_layers=2)
    ref.load_state_dict(m.state_dict())
    a, _ = m(x)
    b, _ = m(x)
    assert not np.allclose(a.detach().numpy(), b.detach().numpy())  # fresh masks each call
    m.eval()
    c, _ = m(x)
    np.testing.assert_allclose(c.detach().numpy(), ref(x)[0].detach().numpy(), atol=1e-6)
    one = LSTM(3, 8, num_layers=1, dropout=0.0)
    np.testing.assert_array_equal(one(x)[0].detach().numpy(), one(x)[0].detach().numpy())


def test_errors_are_clear(rng):
    m = LSTM(3, 4, num_layers=2, batch_first=True)
    with pytest.raises(ValueError, match=r"LSTM\(3, 4, num_layers=2, batch_first=True\): input of shape \(2, 5, 7\) "
                                         r"has 7 features.*input_size=3"):
        m(dw.zeros(2, 5, 7))
    with pytest.raises(ValueError, match=r"expected input of 3 dims \(batch, seq, input_size\).*"
                                         r"got shape \(2, 5, 3, 1\)"):
        m(dw.zeros(2, 5, 3, 1))
    with pytest.raises(ValueError, match=r"h_0 must have shape \(2, 2, 4\).*got \(1, 2, 4\)"):
        m(dw.zeros(2, 5, 3), (dw.zeros(1, 2, 4), dw.zeros(2, 2, 4)))
    with pytest.raises(ValueError, match=r"c_0 must have shape \(2, 2, 4\)"):
        m(dw.zeros(2, 5, 3), (dw.zeros(2, 2, 4), dw.zeros(2, 3, 4)))
    with pytest.raises(TypeError, match=r"hx must be a tuple \(h_0, c_0\)"):
        m(dw.zeros(2, 5, 3), dw.zeros(2, 2, 4))
    with pytest.raises(ValueError, match="lengths must lie in 0..5"):
        m(dw.zeros(2, 5, 3), lengths=[6, 1])
    with pytest.raises(NotImplementedError, match="proj_size=2"):
        LSTM(3, 4, proj_size=2)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        RNN(3, 4, nonlinearity="gelu")
    with pytest.raises(ValueError, match="hidden_size must be an int >= 1"):
        GRU(3, 0)
    with pytest.raises(ValueError, match="dropout must be a number in"):
        GRU(3, 4, 2, dropout=1.5)
    with pytest.warns(UserWarning, match="does nothing with num_layers=1"):
        GRU(3, 4, dropout=0.2)
    with pytest.raises(ValueError, match=r"GRUCell\(3, 4\): input of shape \(2, 5\) has 5 features"):
        GRUCell(3, 4)(dw.zeros(2, 5))
    with pytest.raises(ValueError, match=r"LSTMCell\(3, 4\): h must have shape \(2, 4\), got \(3, 4\)"):
        LSTMCell(3, 4)(dw.zeros(2, 3), (dw.zeros(3, 4), dw.zeros(2, 4)))


def test_float64_layer_keeps_dtype(rng):
    m = GRU(2, 3, dtype=dw.float64)
    out, h = m(dw.tensor(rng.standard_normal((4, 1, 2)), dtype=dw.float64))
    assert out.dtype == np.float64 and h.dtype == np.float64
    out32, _ = GRU(2, 3)(dw.tensor(rng.standard_normal((4, 1, 2)), dtype=dw.float64))
    assert out32.dtype == np.float32  # input follows the weights


def test_vanishing_gradients_rnn_vs_lstm():
    """The last step's loss reaches step 0 of a 40-step sequence 1e-3 times as strongly through an LSTM
    whose forget gates start open (bias +1, the usual init) and ~1e-11 through a vanilla RNN (measured;
    the test asks for a 100x gap)."""
    from deepwise.diagnostics.vanishing import compare_gradient_flow, format_gradient_flow

    dw.manual_seed(0)
    rnn, lstm = RNN(8, 64), LSTM(8, 64)
    lstm.bias_ih_l0.array[64:128] += 1.0  # forget-gate rows (i, f, g, o)
    flows = compare_gradient_flow({"RNN": rnn, "LSTM": lstm}, seq_len=40, batch_size=4)
    r, l_ = flows["RNN"], flows["LSTM"]
    assert r.shape == (40,) and r[-1] == 1.0 and l_[-1] == 1.0
    assert r[0] < 1e-6 and l_[0] > 100 * r[0], (r[0], l_[0])
    assert np.all(np.diff(np.log(r[:-1])) > 0)  # the RNN's signal fades monotonically with distance
    table = format_gradient_flow(flows, points=3)
    assert "t=0" in table and "t=39" in table and table.count("\n") == 2
    bf = GRU(3, 5, batch_first=True)
    from deepwise.diagnostics.vanishing import gradient_norms_through_time

    absolute = gradient_norms_through_time(bf, 6, relative=False)
    assert absolute.shape == (6,) and np.all(absolute > 0)
    with pytest.raises(ValueError, match="pass input_size="):
        gradient_norms_through_time(Linear(3, 3), 5)
