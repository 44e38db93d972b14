"""deepwise.text: vocabularies, windows, padding, sampling and the stdlib docstring corpus."""

from __future__ import annotations

import json

import numpy as np
import pytest

import deepwise as dw
from deepwise.text import (
    ASCII_ALPHABET,
    LanguageModel,
    SequenceDataset,
    Vocab,
    load_stdlib_docstrings,
    next_token_windows,
    pad_sequences,
    sample,
    sample_next,
    sliding_windows,
    to_ascii,
)

TEXT = "the cat sat on the mat. The cat ran!"


# ------------------------------------------------------------------------------------------- vocab
def test_char_vocab_round_trip_and_order():
    v = Vocab.build(TEXT)
    assert v.tokens[0] == "<unk>" and v.unk_index == 0
    assert v.tokens[1] == " "  # the most frequent character comes first
    ids = v.encode(TEXT)
    assert ids.dtype == np.int64 and ids.shape == (len(TEXT),)
    assert v.decode(ids) == TEXT
    assert v.decode(v.encode("tax?")) == "ta<unk><unk>"  # 'x' and '?' are unknown


def test_word_vocab_min_freq_lower_and_max_size():
    v = Vocab.build(TEXT, level="word", lower=True, min_freq=2)
    assert v.tokens == ["<unk>", "the", "cat"]
    assert v.encode("The cat flew").tolist() == [1, 2, 0]
    assert v.decode([1, 2]) == "the cat"
    assert len(Vocab.build(TEXT, level="word", max_size=4)) == 4
    full = Vocab.build(TEXT, level="word", specials=("<pad>",))
    assert full.tokens[:2] == ["<unk>", "<pad>"] and "." in full and "!" in full


def test_vocab_without_unk_refuses_unknown_tokens():
    v = Vocab(list("abc"), unk_token=None)
    assert len(v) == 3 and v.unk_index is None
    assert v.encode("cab").tolist() == [2, 0, 1]
    with pytest.raises(KeyError, match="'z'"):
        v.encode("abz")
    with pytest.raises(IndexError, match="ids must be in 0..2"):
        v.decode([0, 3])
    with pytest.raises(ValueError, match="appears more than once"):
        Vocab(list("aba"), unk_token=None)
    with pytest.raises(ValueError, match="single characters"):
        Vocab(["ab"], level="char")


def test_vocab_save_load(tmp_path):
    v = Vocab.build(TEXT, level="word", lower=True)
    path = tmp_path / "vocab.json"
    v.save(path)
    back = Vocab.load(path)
    assert back == v and back.tokens == v.tokens and back.lower and back.level == "word"
    assert back.encode("THE mat").tolist() == v.encode("the mat").tolist()
    (tmp_path / "bad.json").write_text(json.dumps({"tokens": ["a"]}))
    with pytest.raises(ValueError, match="not a deepwise vocabulary"):
        Vocab.load(tmp_path / "bad.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ValueError, match="not a JSON vocabulary"):
        Vocab.load(tmp_path / "junk.json")


# ----------------------------------------------------------------------------------------- windows
def test_sliding_windows_univariate_and_multivariate():
    s = np.arange(10, dtype=np.float64)
    x, y = sliding_windows(s, window=3, horizon=2, stride=2)
    assert x.dtype == np.float32 and x.shape == (3, 3, 1) and y.shape == (3, 2)
    np.testing.assert_array_equal(x[1, :, 0], [2, 3, 4])
    np.testing.assert_array_equal(y[1], [5, 6])
    m = np.stack([s, -s], axis=1)
    x2, y2 = sliding_windows(m, window=4)
    assert x2.shape == (6, 4, 2) and y2.shape == (6, 1, 2)
    np.testing.assert_array_equal(y2[-1, 0], [9, -9])
    with pytest.raises(ValueError, match="shorter than one window"):
        sliding_windows(s, window=10)


def test_next_token_windows_shift_by_one():
    ids = np.arange(20)
    x, y = next_token_windows(ids, seq_len=6)
    assert x.shape == (3, 6) and x.dtype == np.int64
    np.testing.assert_array_equal(y, x + 1)
    x, y = next_token_windows(ids, seq_len=6, stride=1)
    assert x.shape == (14, 6)
    np.testing.assert_array_equal(x[-1], np.arange(13, 19))


def test_sequence_dataset_matches_the_window_functions():
    ids = np.arange(50) % 7
    ds = SequenceDataset(ids, 8)
    x, y = next_token_windows(ids, 8)
    assert len(ds) == len(x)
    bx, by = ds.__getitems__(np.array([0, 3]))
    np.testing.assert_array_equal(bx, x[[0, 3]])
    np.testing.assert_array_equal(by, y[[0, 3]])
    series = np.sin(np.arange(40) / 3)
    fds = SequenceDataset(series, 5, mode="forecast", horizon=2)
    fx, fy = sliding_windows(series, 5, horizon=2)
    assert len(fds) == len(fx)
    item_x, item_y = fds[7]
    np.testing.assert_allclose(item_x, fx[7])
    np.testing.assert_allclose(item_y, fy[7])
    with pytest.raises(IndexError):
        fds[len(fds)]
    batches = list(dw.data.DataLoader(ds, batch_size=4))
    assert tuple(batches[0][0].shape) == (4, 8) and batches[0][0].dtype == np.int64


def test_pad_sequences():
    padded, lengths = pad_sequences([[1, 2, 3], [4], [5, 6]], padding_value=-1)
    np.testing.assert_array_equal(padded, [[1, 2, 3], [4, -1, -1], [5, 6, -1]])
    np.testing.assert_array_equal(lengths, [3, 1, 2])
    padded, lengths = pad_sequences([np.ones((4, 2)), np.ones((1, 2))], max_len=3)
    assert padded.shape == (2, 3, 2) and lengths.tolist() == [3, 1]
    with pytest.raises(ValueError, match="sequence 1 has shape"):
        pad_sequences([np.ones((2, 2)), np.ones((2, 3))])


# ---------------------------------------------------------------------------------------- sampling
def test_sample_next_temperature_and_top_k():
    logits = np.log(np.array([0.1, 0.2, 0.3, 0.4]))
    assert sample_next(logits, temperature=0) == 3
    draws = [sample_next(logits, top_k=2, generator=np.random.default_rng(i)) for i in range(300)]
    assert set(draws) == {2, 3}  # only the two largest logits survive
    cold = [sample_next(logits, temperature=0.05, generator=np.random.default_rng(i)) for i in range(50)]
    assert set(cold) == {3}
    hot = np.bincount([sample_next(logits, temperature=1.0, generator=np.random.default_rng(i))
                       for i in range(4000)], minlength=4) / 4000
    np.testing.assert_allclose(hot, [0.1, 0.2, 0.3, 0.4], atol=0.03)


def test_sample_is_deterministic_under_seed_and_uses_the_state():
    vocab = Vocab(list(ASCII_ALPHABET), unk_token=None)
    dw.manual_seed(1)
    model = LanguageModel(len(vocab), 8, 16)
    model.train()
    dw.manual_seed(5)
    a = sample(model, vocab, "def ", 30, temperature=0.8, top_k=10)
    dw.manual_seed(5)
    b = sample(model, vocab, "def ", 30, temperature=0.8, top_k=10)
    dw.manual_seed(6)
    c = sample(model, vocab, "def ", 30, temperature=0.8, top_k=10)
    assert a == b and a != c
    assert a.startswith("def ") and len(a) == 34 and model.training  # mode restored
    # greedy decoding with the stepped state equals re-running the whole prefix each time
    greedy = sample(model, vocab, "x = ", 12, temperature=0)

    class Plain(dw.nn.Module):  # no step(): sample re-runs the prefix
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            return self.inner(ids)

    assert sample(Plain(model), vocab, "x = ", 12, temperature=0) == greedy
    with pytest.raises(ValueError, match="at least one token"):
        sample(model, vocab, "", 5)
    with pytest.raises(ValueError, match="top_k must be None or an int >= 1"):
        sample(model, vocab, "a", 5, top_k=0)


def test_language_model_logits_layout():
    model = LanguageModel(11, 4, 6, num_layers=2, cell="gru")
    out = model(dw.tensor(np.zeros((3, 5), dtype=np.int64)))
    assert tuple(out.shape) == (3, 11, 5)
    last, state = model.step(dw.tensor(np.zeros((3, 5), dtype=np.int64)))
    np.testing.assert_allclose(last.detach().numpy(), out.detach().numpy()[:, :, -1], atol=1e-6)
    assert tuple(state.shape) == (2, 3, 6)
    with pytest.raises(ValueError, match="cell must be one of"):
        LanguageModel(5, cell="transformer")


# ------------------------------------------------------------------------------------------ corpus
def test_stdlib_docstrings_are_deterministic_ascii_english():
    a = load_stdlib_docstrings(max_chars=50_000)
    b = load_stdlib_docstrings(max_chars=50_000)
    assert a == b and len(a) == 50_000
    assert set(a) <= set(ASCII_ALPHABET)
    assert a.startswith(load_stdlib_docstrings(max_chars=1000))
    words = a.lower().split()
    assert words.count("the") > 200 and "return" in words  # English prose about code
    assert to_ascii("caf\u00e9\tna\u00efve \u2603") == "cafe    naive "
    with pytest.raises(ValueError, match="max_chars must be a positive int"):
        load_stdlib_docstrings(max_chars=0)
