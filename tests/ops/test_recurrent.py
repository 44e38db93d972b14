"""The fused recurrent ops (``deepwise.ops.recurrent``): finite differences in float64 for every input,
one direction at a time, with and without padding; single-layer parity with PyTorch; argument errors."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.autograd import gradcheck
from deepwise.ops.recurrent import gru_layer, lengths_array, lstm_layer, rnn_layer

GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}


def _params(kind, I, H, rng, dtype=np.float64, bias=True):
    g = GATES[kind] * H
    arrays = [rng.uniform(-0.6, 0.6, (g, I)), rng.uniform(-0.6, 0.6, (g, H))]
    if bias:
        arrays += [rng.uniform(-0.5, 0.5, g), rng.uniform(-0.5, 0.5, g)]
    return [dw.tensor(a, dtype=dtype, requires_grad=True) for a in arrays]


def _f64(a, requires_grad=False):
    return dw.tensor(a, dtype=np.float64, requires_grad=requires_grad)


def _call(kind, x, params, states, **kw):
    if not params[2:]:
        params = params + [None, None]
    if kind == "lstm":
        return lstm_layer(x, *params, *states, **kw)
    if kind == "gru":
        return gru_layer(x, *params, *states, **kw)
    return rnn_layer(x, *params, *states, nonlinearity=kind[4:], **kw)


@pytest.mark.parametrize("kind", list(GATES))
@pytest.mark.parametrize("reverse,batch_first,lengths", [
    (False, False, None), (True, True, None), (False, True, [4, 2, 1]), (True, False, [3, 4, 0])])
def test_gradcheck_every_input(kind, reverse, batch_first, lengths, rng):
    T, B, I, H = 4, 3, 2, 3
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I))
    if kind == "rnn_relu":
        x = np.abs(x) + 0.1  # keep pre-activations away from relu's kink, where differences are not defined
    inputs = [_f64(x, True)] + _params(kind, I, H, rng)
    n_states = 2 if kind == "lstm" else 1
    states = [_f64(rng.standard_normal((B, H)) * 0.5, True) for _ in range(n_states)]

    def fn(x, *rest):
        params, st = list(rest[:4]), list(rest[4:])
        return _call(kind, x, params, st, reverse=reverse, batch_first=batch_first, lengths=lengths)

    assert gradcheck(fn, inputs + states, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn_tanh"])
def test_gradcheck_without_bias_or_state(kind, rng):
    T, B, I, H = 3, 2, 3, 2
    x = _f64(rng.standard_normal((T, B, I)), True)
    params = _params(kind, I, H, rng, bias=False)
    assert gradcheck(lambda x, w1, w2: _call(kind, x, [w1, w2], []), [x] + params, atol=1e-6)


@pytest.mark.parametrize("kind", list(GATES))
@pytest.mark.parametrize("reverse", [False, True])
def test_single_layer_matches_torch(kind, reverse, torch, rng):
    T, B, I, H = 6, 4, 5, 7
    cls = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}.get(kind)
    if cls is None:
        ref = torch.nn.RNN(I, H, nonlinearity=kind[4:], bidirectional=reverse)
    else:
        ref = cls(I, H, bidirectional=reverse)
    sfx = "_l0_reverse" if reverse else "_l0"
    x = rng.standard_normal((T, B, I)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    out_t, _ = ref(tx)
    d = 1 if reverse else 0
    out_t = out_t[..., d * H:(d + 1) * H]
    proj = rng.standard_normal(out_t.shape).astype(np.float32)
    (out_t * torch.tensor(proj)).sum().backward()

    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    params = [dw.tensor(getattr(ref, n + sfx).detach().numpy(), requires_grad=True) for n in names]
    dx = dw.tensor(x, requires_grad=True)
    out = _call(kind, dx, params, [], reverse=reverse)[0]
    assert out.dtype == np.float32
    (out * dw.tensor(proj)).sum().backward()
    np.testing.assert_allclose(out.detach().numpy(), out_t.detach().numpy(), atol=1e-5)
    np.testing.assert_allclose(dx.grad.numpy(), tx.grad.numpy(), atol=1e-5)
    for n, p in zip(names, params):
        assert p.grad.dtype == np.float32
        np.testing.assert_allclose(p.grad.numpy(), getattr(ref, n + sfx).grad.numpy(), atol=2e-5, err_msg=n)


@pytest.mark.parametrize("T,B,batch_first,reverse", [(8, 32, True, False), (5, 1, False, True), (3, 7, True, True)])
def test_lstm_column_layout_sizes_match_torch_bit_identically_run_to_run(T, B, batch_first, reverse, torch, rng):
    """The LSTM's per-step (features, batch) blocks: batch 1, odd batches and a block width whose row
    stride gets padded (T * B * 4 bytes a multiple of 1 KiB) agree with PyTorch, and two runs give the
    same bits."""
    I, H = 6, 16
    ref = torch.nn.LSTM(I, H, batch_first=batch_first, bidirectional=reverse)
    sfx = "_l0_reverse" if reverse else "_l0"
    x = rng.standard_normal((B, T, I) if batch_first else (T, B, I)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    h0, c0 = (rng.standard_normal((B, H)).astype(np.float32) for _ in range(2))
    d = 1 if reverse else 0
    states = tuple(torch.tensor(np.stack([np.zeros_like(s), s][1 - d:3 - d])) for s in (h0, c0))
    out_t, (hn_t, cn_t) = ref(tx, states)
    out_t = out_t[..., d * H:(d + 1) * H]
    proj = rng.standard_normal(out_t.shape).astype(np.float32)
    ((out_t * torch.tensor(proj)).sum() + hn_t[d].sum() * 2 + cn_t[d].sum() * 3).backward()
    names = ["weight_ih", "weight_hh", "bias_ih", "bias_hh"]
    runs = []
    for _ in range(2):
        params = [dw.tensor(getattr(ref, n + sfx).detach().numpy(), requires_grad=True) for n in names]
        xs = dw.tensor(x, requires_grad=True)
        hs, cs = dw.tensor(h0, requires_grad=True), dw.tensor(c0, requires_grad=True)
        out, hn, cn = lstm_layer(xs, *params, hs, cs, reverse=reverse, batch_first=batch_first)
        ((out * dw.tensor(proj)).sum() + hn.sum() * 2 + cn.sum() * 3).backward()
        runs.append([t.numpy() for t in (out.detach(), hn.detach(), cn.detach(), xs.grad, hs.grad, cs.grad)]
                    + [p.grad.numpy() for p in params])
    for a, b in zip(*runs):
        assert a.tobytes() == b.tobytes()
    want = [out_t, hn_t[d], cn_t[d], tx.grad] + [getattr(ref, n + sfx).grad for n in names]
    got = runs[0][:4] + runs[0][6:]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w.detach().numpy(), atol=3e-5, rtol=1e-5)


@pytest.mark.parametrize("kind", list(GATES))
def test_padding_is_invisible(kind, rng):
    """A padded batch gives, for every sequence, what running it alone unpadded gives: outputs (zero
    past the length), final states and every gradient, in both directions."""
    T, I, H = 6, 3, 4
    lens = [6, 3, 1]
    x = rng.standard_normal((len(lens), T, I))
    params = _params(kind, I, H, rng)
    for reverse in (False, True):
        xb = _f64(x, True)
        res = _call(kind, xb, params, [], lengths=lens, reverse=reverse, batch_first=True)
        proj = rng.standard_normal(res[0].shape)
        loss = (res[0] * _f64(proj)).sum() + sum((r * (k + 2)).sum() for k, r in enumerate(res[1:]))
        grads = dw.autograd.grad(loss, [xb] + params)
        out = res[0].detach().numpy()
        param_sum = [np.zeros(p.shape) for p in params]
        for b, n in enumerate(lens):
            xa = _f64(x[b:b + 1, :n], True)
            alone = _call(kind, xa, params, [], reverse=reverse, batch_first=True)
            loss_a = (alone[0] * _f64(proj[b:b + 1, :n])).sum() + sum(
                (r * (k + 2)).sum() for k, r in enumerate(alone[1:]))
            ga = dw.autograd.grad(loss_a, [xa] + params)
            np.testing.assert_allclose(out[b, :n], alone[0].detach().numpy()[0], atol=1e-12)
            assert np.all(out[b, n:] == 0)
            for r, ra in zip(res[1:], alone[1:]):
                np.testing.assert_allclose(r.detach().numpy()[b], ra.detach().numpy()[0], atol=1e-12)
            np.testing.assert_allclose(grads[0].numpy()[b, :n], ga[0].numpy()[0], atol=1e-12)
            assert np.all(grads[0].numpy()[b, n:] == 0)
            for acc, g in zip(param_sum, ga[1:]):
                acc += g.numpy()
        for g, want in zip(grads[1:], param_sum):
            np.testing.assert_allclose(g.numpy(), want, atol=1e-10)


def test_lstm_backward_twice_with_retain_graph(rng):
    x = dw.tensor(rng.standard_normal((4, 2, 3)).astype(np.float32), requires_grad=True)
    params = _params("lstm", 3, 5, rng, dtype=np.float32)
    out = lstm_layer(x, *params)[0]
    loss = (out * out).sum()
    loss.backward(retain_graph=True)
    first = [p.grad.numpy().copy() for p in [x] + params]
    loss.backward()
    for p, g in zip([x] + params, first):
        np.testing.assert_allclose(p.grad.numpy(), 2 * g, rtol=1e-6)


@pytest.mark.parametrize("cls,layer", [("LSTM", "LSTMLayer"), ("GRU", "GRULayer"), ("RNN", "RNNLayer")])
def test_create_graph_through_a_recurrent_layer_names_the_op(cls, layer, rng):
    """The layers' backward through time is on arrays only: a double backward is refused, by name."""
    model = getattr(dw.nn, cls)(3, 4)
    x = dw.tensor(rng.standard_normal((5, 2, 3)).astype(np.float32), requires_grad=True)
    out = model(x)[0]
    with pytest.raises(RuntimeError, match=f"{layer} does not support create_graph=True"):
        dw.autograd.grad((out * out).sum(), x, create_graph=True)
    (gx,) = dw.autograd.grad((model(x)[0] ** 2).sum(), x)  # first order is unaffected
    assert gx.shape == x.shape and np.isfinite(gx.numpy()).all()


def test_unused_outputs_and_no_grad(rng):
    x = _f64(rng.standard_normal((5, 2, 3)))
    params = _params("gru", 3, 4, rng)
    out, h_n = gru_layer(x, *params)
    h_n.sum().backward()  # output unused: the engine hands zeros
    assert params[1].grad is not None and np.abs(params[1].grad.numpy()).sum() > 0
    assert x.grad is None
    with dw.no_grad():
        out2, _ = gru_layer(x, *params)
    assert not out2.requires_grad
    np.testing.assert_array_equal(out2.numpy(), out.detach().numpy())


def test_zero_length_sequences_keep_the_initial_state(rng):
    x = _f64(rng.standard_normal((3, 2, 2)))
    params = _params("lstm", 2, 3, rng)
    h0 = _f64(rng.standard_normal((2, 3)))
    c0 = _f64(rng.standard_normal((2, 3)))
    out, h, c = lstm_layer(x, *params, h0, c0, lengths=np.array([0, 3]))
    np.testing.assert_array_equal(h.detach().numpy()[0], h0.numpy()[0])
    np.testing.assert_array_equal(c.detach().numpy()[0], c0.numpy()[0])
    assert np.all(out.detach().numpy()[:, 0] == 0)


def test_errors_name_the_op_and_shapes(rng):
    x = dw.tensor(rng.standard_normal((4, 2, 3)).astype(np.float32))
    params = _params("lstm", 3, 5, rng, dtype=np.float32)
    with pytest.raises(ValueError, match=r"lstm_layer: input of shape \(4, 2, 6\) has 6 features"):
        lstm_layer(dw.tensor(np.zeros((4, 2, 6), np.float32)), *params)
    with pytest.raises(ValueError, match="lstm_layer: input must be 3-D"):
        lstm_layer(dw.tensor(np.zeros((4, 3), np.float32)), *params)
    with pytest.raises(ValueError, match=r"initial state hx must be \(batch, hidden\) = \(2, 5\)"):
        lstm_layer(x, *params, dw.zeros(3, 5))
    with pytest.raises(ValueError, match=r"weight_hh must be \(3\*hidden, hidden\)"):
        gru_layer(x, *params)
    with pytest.raises(ValueError, match="lengths must lie in 0..4"):
        lstm_layer(x, *params, lengths=[5, 1])
    with pytest.raises(ValueError, match=r"one length per batch item \(2\)"):
        lstm_layer(x, *params, lengths=[1, 2, 3])
    with pytest.raises(TypeError, match="lengths must be integers"):
        lengths_array([1.5, 2.0], 2, 4, "op")
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        rnn_layer(x, *_params("rnn_tanh", 3, 5, rng, dtype=np.float32), nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=r"input of shape \(0, 2, 3\) has no time steps"):
        lstm_layer(dw.tensor(np.zeros((0, 2, 3), np.float32)), *params)
    with pytest.raises(ValueError, match="give both bias_ih and bias_hh"):
        lstm_layer(x, params[0], params[1], params[2], None)


def test_lengths_accept_tensors_lists_and_arrays():
    want = np.array([3, 1], dtype=np.int64)
    for value in ([3, 1], np.array([3, 1], dtype=np.int32), dw.tensor(np.array([3, 1])), np.array([3.0, 1.0])):
        np.testing.assert_array_equal(lengths_array(value, 2, 4, "op"), want)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_saturated_gates_are_exact_limits_without_warnings(kind, rng, torch):
    """Pre-activations of +-1e4 push exp() past float32's range: gates must come out as exactly 0 or 1
    (tanh as -1 or 1), match torch, and raise no overflow warning."""
    import warnings

    T, B, I, H = 3, 2, 4, 3
    x = rng.standard_normal((T, B, I)).astype(np.float32) * 1e3
    params = [p.detach().numpy().astype(np.float32) * 10 for p in _params(kind, I, H, rng)]
    ref = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[kind](I, H)
    ref.load_state_dict(dict(zip(["weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"],
                                 [torch.tensor(p) for p in params])))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _call(kind, dw.tensor(x), [dw.tensor(p) for p in params], [])[0]
    want = ref(torch.tensor(x))[0].detach().numpy()
    assert np.isfinite(out.numpy()).all()
    np.testing.assert_allclose(out.numpy(), want, atol=1e-5)


@pytest.mark.gpu
@pytest.mark.parametrize("kind", list(GATES))
def test_cupy_matches_numpy(kind, rng):
    """The same code path on CuPy arrays: outputs and every gradient as on NumPy (float32)."""
    pytest.importorskip("cupy")
    T, B, I, H = 6, 3, 4, 5
    x = rng.standard_normal((B, T, I)).astype(np.float32)
    params = [p.detach().numpy().astype(np.float32) for p in _params(kind, I, H, rng)]
    results = []
    for device in ("cpu", "cuda"):
        xs = dw.tensor(x).to(device).requires_grad_(True)
        ps = [dw.tensor(p).to(device).requires_grad_(True) for p in params]
        res = _call(kind, xs, ps, [], lengths=[6, 2, 4], reverse=kind != "gru", batch_first=True)
        (res[0].sum() + res[1].sum()).backward()
        results.append([t.detach().to("cpu").numpy() for t in (res[0], res[1], xs.grad, *[p.grad for p in ps])])
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)
