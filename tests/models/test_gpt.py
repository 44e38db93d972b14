"""models.GPT: shapes, tied head, PyTorch parity of the forward and gradients, and KV-cached generation
that gives exactly the tokens of uncached generation."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise.models import GPT


def _model(tie=True, block=16, dropout=0.0):
    dw.manual_seed(0)
    return GPT(23, block_size=block, n_layer=2, n_head=2, n_embd=16, dropout=dropout, tie_weights=tie)


def test_shapes_keys_and_tied_head(rng):
    m = _model(tie=True)
    idx = rng.integers(0, 23, (3, 7))
    assert m(dw.tensor(idx)).shape == (3, 7, 23)
    keys = set(m.state_dict())
    assert "lm_head.weight" not in keys and "wte.weight" in keys and "blocks.1.attn.c_attn.weight" in keys
    untied = _model(tie=False)
    assert untied.state_dict()["lm_head.weight"].shape == (23, 16)
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in m.parameters()) == 23 * 16
    # tied: the head's gradient flows into the embedding
    m(dw.tensor(idx)).sum().backward()
    assert np.abs(m.wte.weight.grad.array).sum() > 0
    assert "GPT(vocab_size=23" in repr(m)


def test_positions_only_see_the_past(rng):
    m = _model()
    idx = rng.integers(0, 23, (1, 10))
    a = m(dw.tensor(idx)).array
    changed = idx.copy()
    changed[0, 6] = (changed[0, 6] + 1) % 23
    b = m(dw.tensor(changed)).array
    np.testing.assert_array_equal(a[0, :6], b[0, :6])
    assert np.abs(a[0, 6:] - b[0, 6:]).max() > 1e-4


def _torch_forward(torch, sd, idx, n_layer, n_head):
    """The same network written with torch functional ops, from deepwise's state dict."""
    F = torch.nn.functional
    w = {k: torch.tensor(v.array.copy(), dtype=torch.float64, requires_grad=True) for k, v in sd.items()}
    ids = torch.tensor(idx)
    B, T = ids.shape
    x = w["wte.weight"][ids] + w["wpe.weight"][torch.arange(T)]
    C = x.shape[-1]
    for i in range(n_layer):
        p = f"blocks.{i}."
        h = F.layer_norm(x, (C,), w[p + "ln_1.weight"], w[p + "ln_1.bias"])
        q, k, v = F.linear(h, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]).split(C, dim=2)
        q, k, v = (t.reshape(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).reshape(B, T, C)
        x = x + F.linear(y, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"])
        h = F.layer_norm(x, (C,), w[p + "ln_2.weight"], w[p + "ln_2.bias"])
        h = F.linear(F.gelu(F.linear(h, w[p + "mlp_fc.weight"], w[p + "mlp_fc.bias"])), w[p + "mlp_proj.weight"],
                     w[p + "mlp_proj.bias"])
        x = x + h
    x = F.layer_norm(x, (C,), w["ln_f.weight"], w["ln_f.bias"])
    return F.linear(x, w["wte.weight"]), w


def test_forward_and_gradients_match_pytorch(torch, rng):
    m = _model()
    for p in m.parameters():  # move away from the init so every weight matters
        p.array[...] = rng.normal(0, 0.3, p.shape).astype(np.float32)
    idx = rng.integers(0, 23, (2, 9))
    out = m(dw.tensor(idx))
    proj = rng.normal(size=out.shape)
    (out * dw.tensor(proj.astype(np.float32))).sum().backward()
    ref, w = _torch_forward(torch, m.state_dict(), idx, 2, 2)
    (ref * torch.tensor(proj)).sum().backward()
    np.testing.assert_allclose(out.array, ref.detach().numpy(), rtol=1e-4, atol=1e-4)
    for name, p in m.named_parameters():
        np.testing.assert_allclose(p.grad.array, w[name].grad.numpy(), rtol=1e-3, atol=1e-4, err_msg=name)


@pytest.mark.parametrize("temperature,top_k", [(0, None), (1.0, None), (0.8, 5)])
def test_cached_generation_equals_uncached_exactly(rng, temperature, top_k):
    m = _model(block=16)
    idx = rng.integers(0, 23, (2, 5))
    # 30 new tokens run past block_size=16: the window slides and the cache is rebuilt
    a = m.generate(idx, 30, temperature=temperature, top_k=top_k, generator=np.random.default_rng(7))
    b = m.generate(idx, 30, temperature=temperature, top_k=top_k, use_cache=False,
                   generator=np.random.default_rng(7))
    assert a.shape == (2, 35) and a.dtype == np.int64
    np.testing.assert_array_equal(a.array, b.array)
    np.testing.assert_array_equal(a.array[:, :5], idx)
    assert m.training  # put back as it was


def test_cache_gives_the_logits_of_the_full_run(rng):
    m = _model()
    idx = rng.integers(0, 23, (2, 12))
    full = m(dw.tensor(idx)).array
    with dw.no_grad():
        first, cache = m._run(dw.tensor(idx[:, :7]))
        mid, cache = m._run(dw.tensor(idx[:, 7:10]), cache)   # several new positions after a past
        last, cache = m._run(dw.tensor(idx[:, 10:11]), cache)  # one new position
    np.testing.assert_allclose(mid.array, full[:, 7:10], atol=1e-5)
    np.testing.assert_allclose(last.array[:, 0], full[:, 10], atol=1e-5)


def test_top_k_one_is_greedy_and_sampling_is_seeded(rng):
    m = _model()
    idx = rng.integers(0, 23, (1, 4))
    greedy = m.generate(idx, 8, temperature=0).array
    np.testing.assert_array_equal(m.generate(idx, 8, temperature=1.5, top_k=1).array, greedy)
    s1 = m.generate(idx, 8, temperature=2.0, generator=np.random.default_rng(3)).array
    s2 = m.generate(idx, 8, temperature=2.0, generator=np.random.default_rng(3)).array
    np.testing.assert_array_equal(s1, s2)


def test_attention_weights_are_kept_on_request(rng):
    m = _model()
    attn = m.blocks[0].attn
    attn.keep_weights = True
    m(dw.tensor(rng.integers(0, 23, (2, 6))))
    w = attn.last_weights
    assert w.shape == (2, 2, 6, 6)
    np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.triu(w[0, 0], 1) == 0)


def test_errors_say_what_was_wrong(rng):
    m = _model(block=8)
    with pytest.raises(ValueError, match="exceed block_size=8"):
        m(dw.tensor(rng.integers(0, 23, (1, 9))))
    with pytest.raises(ValueError, match=r"\(batch, seq\)"):
        m(dw.tensor(rng.integers(0, 23, (9,))))
    with pytest.raises(ValueError, match="temperature"):
        m.generate(rng.integers(0, 23, (1, 3)), 2, temperature=-1)
    with pytest.raises(ValueError, match="top_k"):
        m.generate(rng.integers(0, 23, (1, 3)), 2, top_k=0)
    with pytest.raises(ValueError, match="n_embd"):
        GPT(10, n_embd=10, n_head=3)
