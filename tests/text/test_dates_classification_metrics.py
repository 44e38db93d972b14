"""The bundled date pairs and sentiment sentences, the classification loaders and the text scores."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from deepwise.text import Vocab
from deepwise.text.classification import encode_padded, load_imdb_folder, load_sentiment_sentences, load_sst2_tsv
from deepwise.text.dates import STYLES, load_date_pairs, split_date_pairs
from deepwise.text.metrics import bleu, chrf, exact_match


def test_bundled_date_pairs_are_cldr_dates_in_three_styles():
    pairs = load_date_pairs()
    assert len(pairs) == 12000
    by_iso = {p.iso: p for p in pairs}
    assert len(by_iso) == 12000  # distinct dates
    assert {p.style for p in pairs} == set(STYLES)
    for p in pairs[:: 997]:
        y, m, d = (int(t) for t in p.iso.split("-"))
        assert str(y) in p.english and str(y) in p.german
        if p.style == "medium":
            assert p.german == f"{d:02d}.{m:02d}.{y}"
        else:
            assert p.german.split(" ")[-3].rstrip(".") == str(d)
    sunday = [p for p in pairs if p.style == "full" and p.english.startswith("Sunday")]
    assert sunday and all(p.german.startswith("Sonntag, ") for p in sunday)
    assert any("März" in p.german for p in pairs)


def test_date_split_is_by_date_and_stable():
    pairs = load_date_pairs()
    train, val, test = split_date_pairs(pairs)
    assert len(train) + len(val) + len(test) == len(pairs)
    assert 0.08 < len(test) / len(pairs) < 0.12 and 0.08 < len(val) / len(pairs) < 0.12
    assert not {p.iso for p in train} & {p.iso for p in test}
    sub = load_date_pairs(max_pairs=600)
    assert len(sub) == 600 and {p.style for p in sub} == set(STYLES)
    _, _, sub_test = split_date_pairs(sub)
    assert {p.iso for p in sub_test} <= {p.iso for p in test}  # a subset keeps its pairs' split


def test_date_file_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.tsv.gz"
    bad.write_bytes(gzip.compress(b"nothing here\n"))
    with pytest.raises(ValueError, match="bad.tsv.gz"):
        load_date_pairs(bad)
    with pytest.raises(FileNotFoundError):
        load_date_pairs(tmp_path / "missing.tsv.gz")


def test_bundled_sentiment_sentences():
    texts, labels, sources = load_sentiment_sentences()
    assert len(texts) == len(labels) == len(sources) == 3000
    assert labels.dtype == np.int64 and labels.sum() == 1500
    for site in ("amazon", "imdb", "yelp"):
        mask = np.array([s == site for s in sources])
        assert mask.sum() == 1000 and labels[mask].sum() == 500
    assert texts[0].startswith("So there is no way for me to plug it in here")
    assert labels[0] == 0


def test_imdb_folder_loader(tmp_path):
    for split, rows in (("train", {"pos": ["Great film.<br />Loved it", "Superb"], "neg": ["Awful", "Dull, slow"]}),
                        ("test", {"pos": ["Fine"], "neg": ["Bad"]})):
        for sub, docs in rows.items():
            folder = tmp_path / split / sub
            folder.mkdir(parents=True)
            for i, doc in enumerate(docs):
                (folder / f"{i}_{7 if sub == 'pos' else 2}.txt").write_text(doc, encoding="utf-8")
        (tmp_path / split / "urls.txt").write_text("ignored")
    texts, labels = load_imdb_folder(tmp_path, "train")
    assert texts == ["Awful", "Dull, slow", "Great film. Loved it", "Superb"]
    assert labels.tolist() == [0, 0, 1, 1]
    texts, labels = load_imdb_folder(tmp_path, "train", max_per_class=1)
    assert texts == ["Awful", "Great film. Loved it"] and labels.tolist() == [0, 1]
    assert load_imdb_folder(tmp_path, "test")[0] == ["Bad", "Fine"]
    with pytest.raises(FileNotFoundError, match="unsup"):
        load_imdb_folder(tmp_path, "unsup")


def test_sst2_tsv_loader(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("sentence\tlabel\nhide new secretions from the parental units \t0\n"
                    "contains no wit , only labored gags \t0\nthe greatest musicians \t1\n\n", encoding="utf-8")
    texts, labels = load_sst2_tsv(path)
    assert texts == ["hide new secretions from the parental units ", "contains no wit , only labored gags ",
                     "the greatest musicians "]
    assert labels.tolist() == [0, 0, 1] and labels.dtype == np.int64
    test_split = tmp_path / "test.tsv"
    test_split.write_text("index\tsentence\n0\tit 's a charming journey\n")
    with pytest.raises(ValueError, match="no 'label' column"):
        load_sst2_tsv(test_split)
    broken = tmp_path / "broken.tsv"
    broken.write_text("sentence\tlabel\ngood\tpositive\n")
    with pytest.raises(ValueError, match="line 2"):
        load_sst2_tsv(broken)


def test_encode_padded():
    vocab = Vocab.build(["a b c", "b c"], level="word", specials=("<pad>",), unk_token="<unk>")
    pad = vocab["<pad>"]
    ids, lengths = encode_padded(vocab, ["a b c", "c", "", "a b c a b"], max_len=4, pad_index=pad)
    assert ids.shape == (4, 4) and ids.dtype == np.int64
    assert lengths.tolist() == [3, 1, 1, 4]
    assert ids[1].tolist() == [vocab["c"], pad, pad, pad]
    assert ids[2].tolist() == [pad] * 4


def test_exact_match_and_chrf_values():
    assert exact_match(["a", "b ", "c"], ["a", "b", "d"]) == pytest.approx(2 / 3)
    assert chrf(["5. März 2024"], ["5. März 2024"]) == pytest.approx(100.0)
    assert chrf(["xyz"], ["abc"]) == 0.0
    # by hand: "ab" vs "abc": n=1 P=2/2 R=2/3, n=2 P=1/1 R=1/2, n=3 only in the reference: P=0, R=0
    p, r = (1 + 1 + 0) / 3, (2 / 3 + 1 / 2 + 0) / 3
    assert chrf(["ab"], ["abc"], order=3) == pytest.approx(100 * 5 * p * r / (4 * p + r))
    with pytest.raises(ValueError, match="2 hypotheses but 1 references"):
        chrf(["a", "b"], ["a"])


def test_chrf_matches_sacrebleu():
    sacrebleu = pytest.importorskip("sacrebleu")
    h = ["Dienstag, 5. März 2024", "5 März 2024", "05.03.2025", "the cat sat on the mat today"]
    r = ["Dienstag, 5. März 2024", "5. März 2024", "05.03.2024", "the cat is on the mat today"]
    assert chrf(h, r) == pytest.approx(sacrebleu.corpus_chrf(h, [r]).score, abs=1e-9)


def test_bleu_values():
    assert bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert bleu(["the cat"], ["a dog ran off"]) == 0.0
    # one hypothesis, shorter than its reference: the brevity penalty applies
    h, r = "the cat sat on the mat", "the cat sat on the red mat"
    p = [6 / 6, 4 / 5, 3 / 4, 2 / 3]
    expected = 100 * np.exp(1 - 7 / 6) * np.exp(np.mean(np.log(p)))
    assert bleu([h], [r]) == pytest.approx(expected)


def test_bundled_dates_are_what_babel_formats(tmp_path):
    babel_dates = pytest.importorskip("babel.dates")
    import datetime

    for p in load_date_pairs()[:: 1499]:
        d = datetime.date.fromisoformat(p.iso)
        assert babel_dates.format_date(d, p.style, locale="en_US") == p.english
        assert babel_dates.format_date(d, p.style, locale="de_DE") == p.german
    from deepwise.text.dates import build_date_pairs

    path = tmp_path / "few.tsv.gz"
    assert build_date_pairs(path, n=30, seed=1) == 30
    few = load_date_pairs(path)
    assert len(few) == 30 and [p.iso for p in few] == sorted(p.iso for p in few)
    with pytest.raises(ValueError, match="n must be in"):
        build_date_pairs(path, n=0)
