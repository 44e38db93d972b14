"""Transformer layers against PyTorch: the same state_dict (same keys) gives the same outputs, input
gradients and parameter gradients for encoder/decoder layers, stacks and the full nn.Transformer,
across batch_first, norm_first, activations, bias and masks; float64 finite differences; the causal
mask; errors that name the layer and the mask; positional encodings."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
import deepwise.nn.functional as F
from deepwise import nn

torch = pytest.importorskip("torch")
TF = torch.nn.functional

D, HEADS, FF, N, S, T = 8, 2, 16, 2, 5, 4


def _load(ours, theirs):
    sd = {k: v.detach().numpy() for k, v in theirs.state_dict().items()}
    assert list(sd) == list(ours.state_dict())
    ours.load_state_dict(sd)
    return ours, theirs


def _seq(rng, length, batch_first, unbatched=False):
    shape = (length, D) if unbatched else ((N, length, D) if batch_first else (length, N, D))
    return rng.standard_normal(shape).astype(np.float32)


def _compare(ours, theirs, inputs, masks, rng, atol=3e-5):
    """Forward both on the same inputs and masks; compare outputs, input and parameter gradients."""
    d_in = [dw.tensor(x, requires_grad=True) for x in inputs]
    t_in = [torch.tensor(x, requires_grad=True) for x in inputs]
    d_masks = {k: (dw.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in masks.items()}
    t_masks = {k: (torch.tensor(v) if isinstance(v, np.ndarray) else v) for k, v in masks.items()}
    out, t_out = ours(*d_in, **d_masks), theirs(*t_in, **t_masks)
    assert out.dtype == dw.float32
    np.testing.assert_allclose(out.detach().numpy(), t_out.detach().numpy(), atol=atol, rtol=1e-4, err_msg="output")
    p = rng.standard_normal(tuple(t_out.shape)).astype(np.float32)
    (out * dw.tensor(p)).sum().backward()
    (t_out * torch.tensor(p)).sum().backward()
    for i, (a, b) in enumerate(zip(d_in, t_in)):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=atol, rtol=1e-4, err_msg=f"input {i} grad")
    named = dict(theirs.named_parameters())
    for name, param in ours.named_parameters():
        assert param.grad is not None, name
        np.testing.assert_allclose(param.grad.numpy(), named[name].grad.numpy(), atol=atol, rtol=1e-4, err_msg=name)
    return out


ACTIVATIONS = {
    "relu": ("relu", "relu"),
    "gelu": ("gelu", "gelu"),
    "callable": (lambda x: F.silu(x), lambda x: TF.silu(x)),
    "module": (nn.GELU(approximate="tanh"), torch.nn.GELU(approximate="tanh")),
}


def _masks(rng, kind, length, prefix="src", key_length=None):
    key_length = length if key_length is None else key_length
    kpm = rng.random((N, key_length)) < 0.3
    kpm[:, 0] = False
    if kind == "none":
        return {}
    if kind == "bool":
        m = rng.random((length, key_length)) < 0.3
        m[:, 0] = False
        return {f"{prefix}_mask": m}
    if kind == "float (N*H)":
        return {f"{prefix}_mask": rng.standard_normal((N * HEADS, length, key_length)).astype(np.float32)}
    if kind == "padding":
        return {f"{prefix}_key_padding_mask": kpm}
    if kind == "causal + padding":
        causal = np.triu(np.full((length, key_length), -np.inf, dtype=np.float32), 1)
        return {f"{prefix}_mask": causal, f"{prefix}_key_padding_mask": np.where(kpm, -np.inf, 0).astype(np.float32)}
    raise AssertionError(kind)


ENC_CASES = [
    (bf, nf, act, masks)
    for bf in (False, True) for nf in (False, True) for act in ("relu", "gelu") for masks in ("none", "padding")
] + [
    (True, False, "callable", "bool"), (False, True, "module", "float (N*H)"),
    (True, True, "relu", "causal + padding"), (False, False, "gelu", "causal + padding"),
]


@pytest.mark.parametrize("batch_first,norm_first,activation,masks", ENC_CASES)
def test_encoder_layer_matches_torch(batch_first, norm_first, activation, masks, rng):
    mine, theirs_act = ACTIVATIONS[activation]
    kw = {"dim_feedforward": FF, "dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ours, theirs = _load(nn.TransformerEncoderLayer(D, HEADS, activation=mine, **kw),
                         torch.nn.TransformerEncoderLayer(D, HEADS, activation=theirs_act, **kw))
    _compare(ours, theirs, [_seq(rng, S, batch_first)], _masks(rng, masks, S), rng)


def test_encoder_layer_causal_flag_and_no_bias(rng):
    kw = {"dim_feedforward": FF, "dropout": 0.0, "batch_first": True, "bias": False}
    ours, theirs = _load(nn.TransformerEncoderLayer(D, HEADS, **kw), torch.nn.TransformerEncoderLayer(D, HEADS, **kw))
    assert not any("bias" in k for k in ours.state_dict())
    causal = torch.nn.Transformer.generate_square_subsequent_mask(S).numpy()
    _compare(ours, theirs, [_seq(rng, S, True)], {"src_mask": causal, "is_causal": True}, rng)


def test_encoder_layer_unbatched(rng):
    kw = {"dim_feedforward": FF, "dropout": 0.0}
    ours, theirs = _load(nn.TransformerEncoderLayer(D, HEADS, **kw), torch.nn.TransformerEncoderLayer(D, HEADS, **kw))
    out = _compare(ours, theirs, [_seq(rng, S, False, unbatched=True)], {}, rng)
    assert tuple(out.shape) == (S, D)


DEC_CASES = [
    (False, False, "relu", "none", "none"),
    (True, False, "gelu", "causal + padding", "padding"),
    (False, True, "relu", "bool", "bool"),
    (True, True, "callable", "causal + padding", "float (N*H)"),
]


@pytest.mark.parametrize("batch_first,norm_first,activation,tgt_masks,memory_masks", DEC_CASES)
def test_decoder_layer_matches_torch_with_memory_masks(batch_first, norm_first, activation, tgt_masks,
                                                       memory_masks, rng):
    mine, theirs_act = ACTIVATIONS[activation]
    kw = {"dim_feedforward": FF, "dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ours, theirs = _load(nn.TransformerDecoderLayer(D, HEADS, activation=mine, **kw),
                         torch.nn.TransformerDecoderLayer(D, HEADS, activation=theirs_act, **kw))
    masks = {**_masks(rng, tgt_masks, T, "tgt"), **_masks(rng, memory_masks, T, "memory", key_length=S)}
    _compare(ours, theirs, [_seq(rng, T, batch_first), _seq(rng, S, batch_first)], masks, rng)


@pytest.mark.parametrize("batch_first", [False, True])
def test_stacks_with_final_norm_match_torch(batch_first, rng):
    kw = {"dim_feedforward": FF, "dropout": 0.0, "batch_first": batch_first}
    enc, t_enc = _load(nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, **kw), 2, norm=nn.LayerNorm(D)),
                       torch.nn.TransformerEncoder(torch.nn.TransformerEncoderLayer(D, HEADS, **kw), 2,
                                                   norm=torch.nn.LayerNorm(D), enable_nested_tensor=False))
    assert "layers.1.self_attn.in_proj_weight" in enc.state_dict() and "norm.weight" in enc.state_dict()
    causal = np.triu(np.full((S, S), -np.inf, dtype=np.float32), 1)
    _compare(enc, t_enc, [_seq(rng, S, batch_first)], {"mask": causal}, rng)
    dec, t_dec = _load(nn.TransformerDecoder(nn.TransformerDecoderLayer(D, HEADS, **kw), 2, norm=nn.LayerNorm(D)),
                       torch.nn.TransformerDecoder(torch.nn.TransformerDecoderLayer(D, HEADS, **kw), 2,
                                                   norm=torch.nn.LayerNorm(D)))
    masks = {"tgt_mask": np.triu(np.full((T, T), -np.inf, dtype=np.float32), 1),
             **_masks(rng, "padding", T, "memory", key_length=S)}
    _compare(dec, t_dec, [_seq(rng, T, batch_first), _seq(rng, S, batch_first)], masks, rng)


def test_stack_layers_are_independent_copies():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(D, HEADS, FF), 3)
    w = [layer.linear1.weight for layer in enc.layers]
    assert len({id(p) for p in w}) == 3
    wide = nn.TransformerDecoder(nn.TransformerDecoderLayer(D, HEADS, FF, dtype=dw.float64), 2)
    assert {p.dtype for p in wide.parameters()} == {dw.float64}  # the copies keep the layer's dtype
    assert all(np.array_equal(w[0].detach().numpy(), p.detach().numpy()) for p in w)  # copies of one layer, as PyTorch


@pytest.mark.parametrize("batch_first,norm_first", [(False, False), (True, True)])
def test_full_transformer_matches_torch(batch_first, norm_first, rng):
    kw = {"d_model": D, "nhead": HEADS, "num_encoder_layers": 2, "num_decoder_layers": 2, "dim_feedforward": FF,
          "dropout": 0.0, "batch_first": batch_first, "norm_first": norm_first}
    ours, theirs = _load(nn.Transformer(**kw), torch.nn.Transformer(**kw))
    kpm = rng.random((N, S)) < 0.3
    kpm[:, 0] = False
    masks = {"tgt_mask": nn.Transformer.generate_square_subsequent_mask(T).numpy(),
             "src_key_padding_mask": kpm, "memory_key_padding_mask": kpm,
             "tgt_key_padding_mask": np.zeros((N, T), dtype=bool)}
    _compare(ours, theirs, [_seq(rng, S, batch_first), _seq(rng, T, batch_first)], masks, rng, atol=5e-5)


def test_transformer_defaults_and_init():
    model = nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32)
    theirs = torch.nn.Transformer(d_model=16, nhead=2, num_encoder_layers=1, num_decoder_layers=1, dim_feedforward=32)
    assert list(model.state_dict()) == list(theirs.state_dict())
    layer = model.encoder.layers[0]
    assert layer.dropout.p == 0.1 and layer.norm1.eps == 1e-5 and not layer.norm_first
    assert layer.self_attn.batch_first is False
    w = model.encoder.layers[0].linear1.weight.detach().numpy()  # Xavier-uniform, as PyTorch's _reset_parameters
    bound = np.sqrt(6.0 / (16 + 32))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.8 * bound
    default = nn.TransformerEncoderLayer(16, 2)
    assert default.linear1.out_features == 2048


def test_generate_square_subsequent_mask_matches_torch():
    ours = nn.Transformer.generate_square_subsequent_mask(5)
    theirs = torch.nn.Transformer.generate_square_subsequent_mask(5)
    assert ours.dtype == dw.float32
    np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert nn.Transformer.generate_square_subsequent_mask(3, dtype=dw.float64).dtype == dw.float64


def test_encoder_layer_gradcheck_float64(rng):
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.0, batch_first=True, dtype=dw.float64)
    kpm = dw.tensor(np.array([[False, False, True], [False, False, False]]))
    x = dw.tensor(rng.standard_normal((2, 3, 4)), dtype=dw.float64, requires_grad=True)
    dw.autograd.gradcheck(lambda x: layer(x, src_key_padding_mask=kpm), [x], atol=1e-5, rtol=1e-3)


def test_decoder_layer_gradcheck_float64(rng):
    layer = nn.TransformerDecoderLayer(4, 2, 8, dropout=0.0, norm_first=True, activation="gelu", dtype=dw.float64)
    causal = nn.Transformer.generate_square_subsequent_mask(3, dtype=dw.float64)
    tgt = dw.tensor(rng.standard_normal((3, 2, 4)), dtype=dw.float64, requires_grad=True)
    mem = dw.tensor(rng.standard_normal((4, 2, 4)), dtype=dw.float64, requires_grad=True)
    dw.autograd.gradcheck(lambda t, m: layer(t, m, tgt_mask=causal), [tgt, mem], atol=1e-5, rtol=1e-3)


def test_full_transformer_gradcheck_float64(rng):
    model = nn.Transformer(4, 2, 1, 1, 6, dropout=0.0, batch_first=True, dtype=dw.float64)
    causal = nn.Transformer.generate_square_subsequent_mask(2, dtype=dw.float64)
    src = dw.tensor(rng.standard_normal((1, 3, 4)), dtype=dw.float64, requires_grad=True)
    tgt = dw.tensor(rng.standard_normal((1, 2, 4)), dtype=dw.float64, requires_grad=True)
    dw.autograd.gradcheck(lambda s, t: model(s, t, tgt_mask=causal), [src, tgt], atol=1e-5, rtol=1e-3)


def test_fully_padded_sample_stays_finite(rng):
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.0, batch_first=True)
    x = dw.tensor(_seq(rng, S, True), requires_grad=True)
    kpm = np.zeros((N, S), dtype=bool)
    kpm[0] = True
    out = layer(x, src_key_padding_mask=dw.tensor(kpm))
    out.sum().backward()
    assert np.all(np.isfinite(out.detach().numpy())) and np.all(np.isfinite(x.grad.numpy()))
    for p in layer.parameters():
        assert np.all(np.isfinite(p.grad.numpy()))


def test_dropout_is_active_only_in_training(rng):
    layer = nn.TransformerEncoderLayer(D, HEADS, FF, dropout=0.5, batch_first=True)
    x = dw.tensor(_seq(rng, S, True))
    layer.eval()
    a, b = layer(x), layer(x)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    layer.train()
    assert not np.allclose(layer(x).detach().numpy(), a.detach().numpy())


def test_mask_errors_name_the_layer_the_mask_and_the_shape(rng):
    enc = nn.TransformerEncoderLayer(D, HEADS, FF, batch_first=True)
    x = dw.tensor(_seq(rng, S, True))
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: src_mask of shape \(4, 4\) should be \(L, S\) "
                                         r"= \(5, 5\) or \(N \* num_heads, L, S\) = \(4, 5, 5\)"):
        enc(x, src_mask=dw.tensor(np.zeros((4, 4), dtype=bool)))
    with pytest.raises(ValueError, match=r"TransformerEncoderLayer: src_key_padding_mask of shape \(5,\) should be "
                                         r"\(N, S\) = \(2, 5\)"):
        enc(x, src_key_padding_mask=dw.tensor(np.zeros(5, dtype=bool)))
    with pytest.raises(TypeError, match="TransformerEncoderLayer: src_mask must be bool"):
        enc(x, src_mask=dw.tensor(np.zeros((S, S), dtype=np.int64)))
    dec = nn.TransformerDecoderLayer(D, HEADS, FF)
    tgt, mem = dw.tensor(_seq(rng, T, False)), dw.tensor(_seq(rng, S, False))
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer: memory_mask of shape \(4, 4\) should be "
                                         r"\(L, S\) = \(4, 5\)"):
        dec(tgt, mem, memory_mask=dw.tensor(np.zeros((T, T), dtype=bool)))
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer: memory_key_padding_mask of shape \(2, 4\) "
                                         r"should be \(N, S\) = \(2, 5\)"):
        dec(tgt, mem, memory_key_padding_mask=dw.tensor(np.zeros((N, T), dtype=bool)))
    with pytest.raises(ValueError, match=r"TransformerDecoderLayer: tgt_mask of shape \(5, 5\)"):
        dec(tgt, mem, tgt_mask=nn.Transformer.generate_square_subsequent_mask(5))
    with pytest.raises(ValueError, match="activation should be 'relu' or 'gelu'"):
        nn.TransformerEncoderLayer(D, HEADS, activation="tanh")
    model = nn.Transformer(D, HEADS, 1, 1, FF)
    with pytest.raises(ValueError, match="Transformer: src of shape .* and tgt of shape .* same batch size"):
        model(dw.tensor(np.zeros((S, 3, D), np.float32)), dw.tensor(_seq(rng, T, False)))
    with pytest.raises(ValueError, match="d_model = 8"):
        model(dw.tensor(np.zeros((S, N, 4), np.float32)), dw.tensor(np.zeros((T, N, 4), np.float32)))


# ------------------------------------------------------------------------------ positional encodings
def test_sinusoidal_encoding_values_layouts_and_offset(rng):
    pe = nn.SinusoidalPositionalEncoding(6, max_len=20)
    assert list(pe.state_dict()) == []  # a fixed table: rebuilt, never saved
    pos = np.arange(20)[:, None]
    want = np.zeros((20, 6))
    for i in range(3):  # the paper's formula, one frequency at a time
        want[:, 2 * i] = np.sin(pos[:, 0] / 10000 ** (2 * i / 6))
        want[:, 2 * i + 1] = np.cos(pos[:, 0] / 10000 ** (2 * i / 6))
    np.testing.assert_allclose(pe.pe.numpy(), want, atol=1e-6)
    assert pe.pe.dtype == dw.float32
    x = rng.standard_normal((4, 3, 6)).astype(np.float32)  # (L, N, E)
    np.testing.assert_allclose(pe(dw.tensor(x)).numpy(), x + want[:4, None], atol=1e-6)
    xb = x.transpose(1, 0, 2)  # (N, L, E)
    pb = nn.SinusoidalPositionalEncoding(6, max_len=20, batch_first=True)
    np.testing.assert_allclose(pb(dw.tensor(xb), offset=5).numpy(), xb + want[5:9], atol=1e-6)
    np.testing.assert_allclose(pe(dw.tensor(x[:, 0]), offset=2).numpy(), x[:, 0] + want[2:6], atol=1e-6)
    assert nn.SinusoidalPositionalEncoding(6, max_len=4, dtype=dw.float64).pe.dtype == dw.float64
    odd = nn.SinusoidalPositionalEncoding(5, max_len=4)
    assert tuple(odd.pe.shape) == (4, 5) and np.all(np.isfinite(odd.pe.numpy()))


def test_learned_encoding_trains_the_rows_it_uses(rng):
    pe = nn.LearnedPositionalEncoding(10, 4, batch_first=True)
    assert list(pe.state_dict()) == ["weight"] and tuple(pe.weight.shape) == (10, 4)
    assert 0.01 < pe.weight.detach().numpy().std() < 0.03
    x = dw.tensor(rng.standard_normal((2, 3, 4)).astype(np.float32), requires_grad=True)
    out = pe(x, offset=4)
    np.testing.assert_allclose(out.detach().numpy(), x.detach().numpy() + pe.weight.detach().numpy()[4:7], atol=1e-6)
    out.sum().backward()
    g = pe.weight.grad.numpy()
    assert np.all(g[4:7] == 2) and np.all(g[:4] == 0) and np.all(g[7:] == 0)  # summed over the batch of 2
    np.testing.assert_array_equal(x.grad.numpy(), np.ones((2, 3, 4)))


def test_positional_encoding_errors_name_the_layer():
    pe = nn.SinusoidalPositionalEncoding(4, max_len=8)
    with pytest.raises(ValueError, match=r"SinusoidalPositionalEncoding: positions 6..9 go past max_len=8"):
        pe(dw.zeros(4, 1, 4), offset=6)
    with pytest.raises(ValueError, match=r"LearnedPositionalEncoding: input of shape \(3, 1, 5\) should be"):
        nn.LearnedPositionalEncoding(8, 4)(dw.zeros(3, 1, 5))
    with pytest.raises(ValueError, match="offset must be a non-negative int"):
        pe(dw.zeros(2, 4), offset=-1)
