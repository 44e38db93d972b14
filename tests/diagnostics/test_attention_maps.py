"""dw.diagnostics.attention_maps reads every attention layer's per-head weights; describe_head puts a
head's pattern in words; plot_attention_map draws one with the tokens on the axes."""

from __future__ import annotations

import numpy as np
import pytest

import deepwise as dw
from deepwise import nn
from deepwise.diagnostics import attention_maps, describe_attention, describe_head
from deepwise.models import GPT


def test_maps_of_multihead_attention_match_its_own_weights(rng):
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    q = dw.tensor(rng.normal(size=(2, 4, 8)).astype(np.float32))
    kv = dw.tensor(rng.normal(size=(2, 6, 8)).astype(np.float32))
    maps = attention_maps(mha, q, kv, kv, need_weights=False)
    assert len(maps) == 1 and maps[0].weights.shape == (2, 2, 4, 6) and maps[0].num_heads == 2
    _, per_head = mha(q, kv, kv, average_attn_weights=False)
    np.testing.assert_allclose(maps[0].weights, per_head.array, atol=1e-6)
    # the layer is put back: the caller's arguments mean what they meant
    out, w = mha(q, kv, kv, need_weights=False)
    assert w is None and "forward" not in mha.__dict__


def test_maps_of_gpt_are_per_layer_and_causal(rng):
    m = GPT(11, block_size=8, n_layer=3, n_head=2, n_embd=8)
    m.train()
    maps = attention_maps(m, dw.tensor(rng.integers(0, 11, (2, 5))))
    assert [x.name for x in maps] == ["blocks.0.attn", "blocks.1.attn", "blocks.2.attn"]
    for x in maps:
        assert x.weights.shape == (2, 2, 5, 5)
        np.testing.assert_allclose(x.weights.sum(-1), 1.0, atol=1e-5)
        assert np.all(np.triu(x.weights, 1) == 0)
    assert m.training and not m.blocks[0].attn.keep_weights  # put back as it was


def test_no_attention_layers_is_an_error():
    with pytest.raises(ValueError, match="has no attention layers"):
        attention_maps(nn.Linear(3, 3), dw.zeros(1, 3))


def _shifted(L, offset):
    w = np.zeros((L, L))
    for i in range(L):
        w[i, max(i - offset, 0)] = 1.0
    return w


def test_describe_head_names_the_pattern():
    assert describe_head(_shifted(8, 1)).startswith("mostly looks at the previous token (100%")
    assert describe_head(np.eye(6)).startswith("mostly looks at the token itself")
    first = np.zeros((6, 6))
    first[:, 0] = 1.0
    assert describe_head(first).startswith("mostly looks at the first token")
    commas = np.zeros((5, 5))
    commas[:, 2] = 0.7
    commas[:, 4] = 0.3
    assert "','" in describe_head(commas, tokens=["a", "b", ",", "c", "d"])
    uniform = np.full((6, 6), 1 / 6)
    assert describe_head(uniform).startswith("spreads its attention (about 6.0 positions")
    align = np.zeros((4, 7))
    for i, j in enumerate([0, 2, 4, 6]):
        align[i, j] = 0.9
        align[i, (j + 1) % 7] = 0.1
    assert "monotonic alignment" in describe_head(align, key_tokens=list("abcdefg"))
    copy = np.zeros((3, 4))  # writing "2", "0", "2" while looking at the source's "2", "0", "2"
    copy[0, 1] = copy[1, 2] = copy[2, 1] = 1.0
    assert "copying" in describe_head(copy, tokens=["2", "0", "2"], key_tokens=["x", "2", "0", "y"])
    with pytest.raises(ValueError, match=r"\(L, S\)"):
        describe_head(np.zeros(4))


def test_describe_attention_counts_layers_and_heads_from_one(rng):
    m = GPT(11, block_size=8, n_layer=2, n_head=3, n_embd=6)
    maps = attention_maps(m, dw.tensor(rng.integers(0, 11, (1, 6))))
    lines = describe_attention(maps, tokens=list("abcdef"))
    assert len(lines) == 6
    assert lines[0].startswith("head 1 of layer 1 (blocks.0.attn) ")
    assert lines[-1].startswith("head 3 of layer 2 (blocks.1.attn) ")


def test_plot_attention_map_puts_tokens_on_the_axes():
    plt = pytest.importorskip("matplotlib.pyplot")
    from deepwise.diagnostics.attention import plot_attention_map

    fig = plot_attention_map({"weights": np.eye(3).tolist(), "x_tokens": ["a", " ", "c"],
                              "y_tokens": ["x", "y", "z"], "title": "head 1"}, plt)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "\u2423", "c"]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["x", "y", "z"]
    assert ax.get_title() == "head 1"
    plt.close(fig)


def test_report_shows_attention_maps_sentences_and_translations(tmp_path):
    pytest.importorskip("matplotlib")
    import json

    from deepwise.diagnostics import build_report

    (tmp_path / "history.csv").write_text("epoch,loss,val_loss\n0,1.0,1.1\n1,0.5,0.6\n")
    (tmp_path / "config.json").write_text(json.dumps({"recipe": "translate-dates"}))
    metrics = {"test_exact_match": 0.9,
               "attention_maps": [{"title": "layer 1 cross-attention", "weights": np.eye(3).tolist(),
                                   "x_tokens": list("abc"), "y_tokens": list("xyz")}],
               "attention_text": ["head 1 of layer 1 mostly looks at the previous token (80% of its attention)"],
               "translations": [{"source": "March 5, 2024", "reference": "5. März 2024", "greedy": "5. März 2024",
                                 "beam": "5. März 2024"}]}
    (tmp_path / "metrics.json").write_text(json.dumps(metrics))
    page = open(build_report(str(tmp_path)), encoding="utf-8").read()
    assert "What attention looks at" in page and "alt='layer 1 cross-attention'" in page
    assert "mostly looks at the previous token" in page
    assert "<td>5. März 2024</td>" in page and "Test translations" in page
