"""One-line op tests against two oracles: PyTorch (forward values and input gradients, float32) and
finite differences (``dw.autograd.gradcheck``, float64).

    helper_test_op([(3, 4), (4,)], lambda x, y: x * y)                    # same code runs on both
    helper_test_op([(3, 4)], lambda x: dw.gelu(x), lambda x: F.gelu(x))   # or one lambda per framework

Then the double backward: ``create_graph=True`` gradients checked by float64 finite differences
(``dw.autograd.gradgradcheck``) and second derivatives compared with PyTorch's in float64
(``double=False`` for an op that raises a clear error under create_graph instead; it follows
``gradcheck`` by default, which is off at non-differentiable points such as ties).

Each shape becomes an input drawn uniformly from ``[low, high)`` (one range for all, or one per
input), or ``data=`` gives the inputs' values. Outputs may be a tensor or a tuple of tensors
(``max(x, dim)`` gives values and indices); integer and bool outputs are compared exactly and
carry no gradient. Gradients are those of ``sum(out_i * p_i)`` for fixed random projections
``p_i``, so every output element gets a distinct weight.
"""

from __future__ import annotations

import numpy as np

import deepwise as dw


def _torch():
    import torch

    return torch


def _as_list(out):
    return list(out) if isinstance(out, (tuple, list)) else [out]


def _ranges(value, n):
    return list(value) if isinstance(value, (tuple, list)) else [value] * n


def make_inputs(shapes, low=-2.0, high=2.0, data=None, seed=0, dtype="float"):
    """float64 NumPy arrays for ``shapes`` (or ``data``); ``dtype='int'`` draws integers in [low, high)."""
    if data is not None:
        return [np.array(d, dtype=np.int64 if dtype == "int" else np.float64) for d in data]
    rng = np.random.default_rng(seed)
    lows, highs = _ranges(low, len(shapes)), _ranges(high, len(shapes))
    if dtype == "int":
        return [rng.integers(int(lo), int(hi), size=s) for s, lo, hi in zip(shapes, lows, highs)]
    return [rng.uniform(lo, hi, size=s) for s, lo, hi in zip(shapes, lows, highs)]


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def compare(dw_out, torch_out, atol, rtol, what="output"):
    """Same shape, same dtype name, close values (exactly equal for non-float outputs)."""
    got = np.asarray(dw_out.detach().numpy())
    want = torch_out.detach().numpy()
    assert tuple(dw_out.shape) == tuple(torch_out.shape), \
        f"{what}: deepwise shape {tuple(dw_out.shape)} != torch shape {tuple(torch_out.shape)}"
    assert str(dw_out.dtype) == _dtype_name(torch_out), \
        f"{what}: deepwise dtype {dw_out.dtype} != torch dtype {_dtype_name(torch_out)}"
    if want.dtype.kind == "f":
        np.testing.assert_allclose(got, want, atol=atol, rtol=rtol, err_msg=what)
    else:
        np.testing.assert_array_equal(got, want, err_msg=what)


def helper_test_op(shapes, dw_fn, torch_fn=None, *, low=-2.0, high=2.0, data=None, dtype="float",
                   atol=1e-5, rtol=1e-4, grad_atol=None, grad_rtol=None, forward_only=False,
                   gradcheck=True, gc_atol=1e-5, gc_rtol=1e-3, double=None, seed=0):
    """Compare ``dw_fn`` with ``torch_fn`` (default: the same callable) on the same inputs, then
    gradcheck ``dw_fn`` in float64. Returns the deepwise outputs (a list) for extra checks."""
    torch = _torch()
    torch_fn = dw_fn if torch_fn is None else torch_fn
    arrays = make_inputs(shapes, low, high, data, seed, dtype)
    differentiable = dtype == "float" and not forward_only
    if dtype == "float":
        arrays32 = [a.astype(np.float32) for a in arrays]
    else:
        arrays32 = arrays
    dw_in = [dw.tensor(a, requires_grad=differentiable) for a in arrays32]
    th_in = [torch.tensor(a, requires_grad=differentiable) for a in arrays32]

    dw_outs, th_outs = _as_list(dw_fn(*dw_in)), _as_list(torch_fn(*th_in))
    assert len(dw_outs) == len(th_outs), f"deepwise gives {len(dw_outs)} outputs, torch {len(th_outs)}"
    for i, (d, t) in enumerate(zip(dw_outs, th_outs)):
        compare(d, t, atol, rtol, what=f"forward output {i}")
    if not differentiable:
        return dw_outs

    # backward through a fixed random projection of every floating output
    rng = np.random.default_rng(seed + 1)
    dw_loss = th_loss = None
    for d, t in zip(dw_outs, th_outs):
        if not t.dtype.is_floating_point or not t.requires_grad:
            assert not d.requires_grad or d.dtype.kind != "f", "deepwise output requires grad, torch's does not"
            continue
        p = rng.standard_normal(d.shape).astype(np.float32)
        dl, tl = (d * dw.tensor(p)).sum(), (t * torch.tensor(p)).sum()
        dw_loss = dl if dw_loss is None else dw_loss + dl
        th_loss = tl if th_loss is None else th_loss + tl
    assert dw_loss is not None, "no floating output carries a gradient"
    dw_loss.backward()
    th_loss.backward()
    ga, gr = (atol if grad_atol is None else grad_atol), (rtol if grad_rtol is None else grad_rtol)
    for i, (d, t) in enumerate(zip(dw_in, th_in)):
        if t.grad is None:
            assert d.grad is None or not np.any(d.grad.numpy()), f"input {i}: torch has no gradient, deepwise does"
            continue
        assert d.grad is not None, f"input {i}: deepwise computed no gradient"
        compare(d.grad, t.grad, ga, gr, what=f"gradient of input {i}")

    if gradcheck:
        inputs64 = [dw.tensor(a, dtype=dw.float64, requires_grad=True) for a in arrays]
        dw.autograd.gradcheck(dw_fn, inputs64, atol=gc_atol, rtol=gc_rtol)
    if gradcheck if double is None else double:  # by default wherever finite differences apply
        check_double_backward(arrays, dw_fn, torch_fn, seed=seed, atol=gc_atol, rtol=gc_rtol)
    return dw_outs


def _projected(outs, vs, lib):
    total = None
    for o, v in zip(outs, vs):
        if o.dtype in (lib.float32, lib.float64) and o.requires_grad:
            term = (o * v).sum()
            total = term if total is None else total + term
    return total


def check_double_backward(arrays, dw_fn, torch_fn=None, *, seed=0, atol=1e-5, rtol=1e-3):
    """Second derivatives of ``dw_fn`` on float64 ``arrays``: finite differences (gradgradcheck)
    and PyTorch's ``autograd.grad(..., create_graph=True)`` twice, through the same projections."""
    torch = _torch()
    torch_fn = dw_fn if torch_fn is None else torch_fn
    xs = [dw.tensor(a, dtype=dw.float64, requires_grad=True) for a in arrays]
    dw.autograd.gradgradcheck(dw_fn, xs, atol=atol, rtol=rtol, seed=seed)

    rng = np.random.default_rng(seed + 2)
    outs = [o for o in _as_list(dw_fn(*xs)) if o.dtype == dw.float64]
    vs = [rng.standard_normal(o.shape) for o in outs]
    ws = [rng.standard_normal(np.shape(a)) for a in arrays]
    gs = dw.autograd.grad(_projected(outs, [dw.tensor(v, dtype=dw.float64) for v in vs], dw), xs,
                          create_graph=True, allow_unused=True)
    pen = [(g * dw.tensor(w, dtype=dw.float64)).sum() for g, w in zip(gs, ws) if g is not None and g.requires_grad]
    second = dw.autograd.grad(sum(pen[1:], pen[0]), xs, allow_unused=True) if pen else [None] * len(xs)

    txs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    touts = [o for o in _as_list(torch_fn(*txs)) if o.dtype == torch.float64]
    tgs = torch.autograd.grad(_projected(touts, [torch.tensor(v) for v in vs], torch), txs,
                              create_graph=True, allow_unused=True)
    tpen = [(g * torch.tensor(w)).sum() for g, w in zip(tgs, ws) if g is not None and g.requires_grad]
    tsecond = torch.autograd.grad(sum(tpen[1:], tpen[0]), txs, allow_unused=True) if tpen else [None] * len(txs)
    for i, (s, ts, a) in enumerate(zip(second, tsecond, arrays)):
        mine = np.zeros(np.shape(a)) if s is None else s.numpy()
        theirs = np.zeros(np.shape(a)) if ts is None else ts.detach().numpy(force=True)
        np.testing.assert_allclose(mine, theirs, rtol=1e-6, atol=1e-8,
                                   err_msg=f"second derivative of input {i} differs from PyTorch's")


def to_torch(t):
    """A deepwise tensor's values as a torch tensor (for building matching constant inputs)."""
    return _torch().tensor(np.array(t.detach().numpy()))
