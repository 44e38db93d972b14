"""Attention masks in the exported graph: computed from the graph's inputs (a dynamic batch keeps
them right), and a fully masked row gives what deepwise and PyTorch's scaled_dot_product_attention
give -- zero weights and a zero output, not NaN."""

import io

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F
from deepwise.ops.attention import attention

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

OPSETS = [13, 17, 21]


def export_and_run(model, example, batch, opset, n_outputs=1):
    """Export at ``example``'s batch size (axis 0 of every input dynamic); run ``batch`` in
    onnxruntime and deepwise (eval mode); returns (onnxruntime outputs, deepwise outputs as arrays)."""
    names = [f"in{i}" for i in range(len(example))]
    buf = io.BytesIO()
    proto = dw.onnx.export(model, example, buf, input_names=names, dynamic_axes={n: {0: "batch"} for n in names},
                           opset_version=opset)
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    got = sess.run(None, dict(zip(names, batch)))
    model.eval()
    with dw.no_grad():
        want = model(*[dw.tensor(a) for a in batch])
    want = want if isinstance(want, tuple) else (want,)
    assert len(got) == len(want) == n_outputs
    return got, [w.array for w in want]


class SDPA(dw.nn.Module):
    """Projected queries over the input as keys and values, under a mask given as a second input."""

    def __init__(self):
        super().__init__()
        self.q = dw.nn.Linear(4, 4)

    def forward(self, x, mask):
        return F.scaled_dot_product_attention(self.q(x), x, x, attn_mask=mask)


def _qkv(model, x):
    torch = pytest.importorskip("torch")
    with dw.no_grad():
        q = model.q(dw.tensor(x)).array
    return torch.from_numpy(q), torch.from_numpy(x), torch.from_numpy(x)


@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("kind", ["bool", "float"])
def test_fully_masked_rows_give_zeros_as_deepwise_and_pytorch(kind, opset):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    dw.manual_seed(0)
    model = SDPA()

    def masks(n):
        allow = rng.random((n, 6, 6)) < 0.6
        allow[:, 1] = False  # query 1 of every item sees nothing
        allow[-1] = False  # nor does any query of the last item
        allow[0, 2] = True
        if kind == "bool":
            return allow
        return np.where(allow, rng.standard_normal(allow.shape), -np.inf).astype(np.float32)

    example = (rng.standard_normal((2, 6, 4)).astype(np.float32), masks(2))
    x, m = rng.standard_normal((3, 6, 4)).astype(np.float32), masks(3)
    (got,), (want,) = export_and_run(model, example, (x, m), opset)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    dead = ~np.isfinite(m).any(-1) if kind == "float" else ~m.any(-1)
    assert dead[:, 1].all() and dead[-1].all()
    assert not got[dead].any()  # zeros where nothing may be attended
    assert np.abs(got[~dead]).sum() > 0
    ref = torch.nn.functional.scaled_dot_product_attention(*_qkv(model, x), attn_mask=torch.from_numpy(m))
    np.testing.assert_allclose(got, ref.numpy(), rtol=1e-4, atol=1e-5)  # PyTorch gives zeros there too


class PaddedMHA(dw.nn.Module):
    """MultiheadAttention over token embeddings with the padding mask made from the ids (id 0 = pad)."""

    def __init__(self, **kw):
        super().__init__()
        self.embed = dw.nn.Embedding(7, 8)
        self.attn = dw.nn.MultiheadAttention(8, 2, batch_first=True, **kw)

    def forward(self, ids):
        x = self.embed(ids)
        L = ids.shape[1]
        causal = dw.nn.Transformer.generate_square_subsequent_mask(L) == float("-inf")  # bool, True = masked
        out, weights = self.attn(x, x, x, key_padding_mask=ids == 0, attn_mask=causal)
        return out, weights


def _ids(rng, n, lengths):
    ids = rng.integers(1, 7, (n, 6))
    ids[np.arange(6)[None, :] >= np.asarray(lengths)[:, None]] = 0
    return ids.astype(np.int64)


@pytest.mark.parametrize("opset", OPSETS)
def test_multihead_attention_padding_made_in_the_graph(opset):
    """key_padding_mask from the ids and a boolean causal mask, combined in the graph: the exported
    model follows each input's padding at any batch size; an all-padding item gives zero weights and
    an output of out_proj's bias alone."""
    rng = np.random.default_rng(1)
    dw.manual_seed(0)
    model = PaddedMHA()
    dw.nn.init.normal_(model.attn.out_proj.bias)
    got, want = export_and_run(model, (_ids(rng, 2, [6, 6]),), (_ids(rng, 4, [6, 3, 1, 0]),), opset, n_outputs=2)
    for a, b in zip(got, want):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    out, weights = got
    assert not weights[3].any()  # the item that is all padding
    np.testing.assert_allclose(out[3], np.broadcast_to(model.attn.out_proj.bias.array, (6, 8)), rtol=1e-5)
    assert not weights[2][:, 1:].any() and np.allclose(weights[2][:, 0], 1.0)  # one real token: itself
    np.testing.assert_allclose(weights[:3].sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("opset", [13, 21])
@pytest.mark.parametrize("extra", [{"add_bias_kv": True}, {"add_zero_attn": True}])
def test_multihead_attention_masks_with_extra_keys(extra, opset):
    """bias_kv / zero_attn add a key that is never masked: the boolean masks are padded in the graph,
    and even an all-padding item attends to that key (as in deepwise and PyTorch)."""
    rng = np.random.default_rng(2)
    dw.manual_seed(0)
    model = PaddedMHA(**extra)
    got, want = export_and_run(model, (_ids(rng, 2, [6, 4]),), (_ids(rng, 3, [5, 2, 0]),), opset, n_outputs=2)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)
    assert got[1].shape == (3, 6, 7)
    np.testing.assert_allclose(got[1][2, :, -1], 1.0, rtol=1e-5)  # only the added key is left


@pytest.mark.parametrize("opset", [13, 17])
def test_float_key_padding_and_stacked_attn_mask(opset):
    """A float key_padding_mask (-inf on padding) and a per-head (N * num_heads, L, S) float attn_mask,
    both graph inputs: added in the graph, dead rows zero."""
    rng = np.random.default_rng(3)
    dw.manual_seed(0)

    class FloatMasks(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = dw.nn.MultiheadAttention(8, 2, batch_first=True)

        def forward(self, x, pad, mask):
            return self.attn(x, x, x, key_padding_mask=pad, attn_mask=mask.reshape(-1, 5, 5), need_weights=False)[0]

    def inputs(n, dead):
        pad = np.zeros((n, 5), np.float32)
        pad[dead] = -np.inf
        mask = rng.standard_normal((n, 2, 5, 5)).astype(np.float32)
        return rng.standard_normal((n, 5, 8)).astype(np.float32), pad, mask

    model = FloatMasks()
    dw.nn.init.normal_(model.attn.out_proj.bias)
    (got,), (want,) = export_and_run(model, inputs(2, 0), inputs(3, 1), opset)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got[1], np.broadcast_to(model.attn.out_proj.bias.array, (5, 8)), atol=1e-6)


@pytest.mark.parametrize("dead_row", [False, True])
def test_constant_masks(dead_row):
    """A mask made inside the model (a constant of the graph): with a row that sees nothing that row is
    zeros; with something in every row the graph leaves out the dead-row guard."""
    allow = np.tri(5, 5, dtype=bool)
    if dead_row:
        allow[2] = False

    class Const(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = dw.nn.Linear(4, 4)

        def forward(self, x):
            return F.scaled_dot_product_attention(self.q(x), x, x, attn_mask=dw.tensor(allow))

    dw.manual_seed(0)
    rng = np.random.default_rng(4)
    model = Const()
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    proto = dw.onnx.export(model, x, io.BytesIO(), input_names=["x"], dynamic_axes={"x": {0: "b"}})
    (got,), (want,) = export_and_run(model, (x,), (rng.standard_normal((3, 5, 4)).astype(np.float32),), 17)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert ("IsInf" in {n.op_type for n in proto.graph.node}) == dead_row
    assert not got[:, 2].any() if dead_row else np.abs(got[:, 2]).sum() > 0


@pytest.mark.parametrize("opset", [13, 17])
def test_sequence_first_transformer_with_padding_masks(opset):
    """nn.Transformer with (L, N, E) inputs (batch on axis 1, dynamic), source and target padding made
    from the ids in the graph and a causal target mask: equal to deepwise at another batch size."""

    class Seq2Seq(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = dw.nn.Embedding(7, 8)
            self.model = dw.nn.Transformer(d_model=8, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                                           dim_feedforward=16, dropout=0.0)

        def forward(self, src, tgt):  # ids (S, N) and (T, N), 0 = padding
            mask = dw.nn.Transformer.generate_square_subsequent_mask(tgt.shape[0])
            pad_s, pad_t = (src == 0).permute(1, 0), (tgt == 0).permute(1, 0)
            return self.model(self.embed(src), self.embed(tgt), tgt_mask=mask, src_key_padding_mask=pad_s,
                              tgt_key_padding_mask=pad_t, memory_key_padding_mask=pad_s)

    rng = np.random.default_rng(5)
    dw.manual_seed(0)
    model = Seq2Seq()

    def ids(n, lengths, L):
        a = rng.integers(1, 7, (L, n))
        a[np.arange(L)[:, None] >= np.asarray(lengths)[None, :]] = 0
        return a.astype(np.int64)

    example, batch = (ids(2, [6, 6], 6), ids(2, [5, 5], 5)), (ids(3, [6, 2, 4], 6), ids(3, [5, 1, 3], 5))
    buf = io.BytesIO()
    dw.onnx.export(model, example, buf, input_names=["src", "tgt"], opset_version=opset,
                   dynamic_axes={"src": {1: "batch"}, "tgt": {1: "batch"}})
    sess = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = sess.run(None, {"src": batch[0], "tgt": batch[1]})
    model.eval()
    with dw.no_grad():
        want = model(*[dw.tensor(a) for a in batch]).array
    assert got.shape == (5, 3, 8)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_constant_mask_and_causal_together_guard_the_rows_they_empty():
    """A constant mask with something in every row can still leave a row nothing once the causal
    triangle is applied too (as the op allows for callers such as MultiheadAttention)."""
    allow = np.ones((5, 5), dtype=bool)
    allow[0, 0] = False  # query 0 may see only keys 1.., which causal hides

    class Both(dw.nn.Module):
        def __init__(self):
            super().__init__()
            self.q = dw.nn.Linear(4, 4)

        def forward(self, x):
            return attention(self.q(x), x, x, is_causal=True, bool_mask=allow)[0]

    dw.manual_seed(0)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 5, 4)).astype(np.float32)
    (got,), (want,) = export_and_run(Both(), (x,), (rng.standard_normal((3, 5, 4)).astype(np.float32),), 17)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert not got[:, 0].any() and np.abs(got[:, 1]).sum() > 0
