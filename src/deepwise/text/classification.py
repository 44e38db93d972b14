"""Labelled text for classification: the bundled sentiment sentences and readers for the formats
people bring.

    texts, labels, sources = load_sentiment_sentences()        # 3,000 review sentences, 0 = neg, 1 = pos
    texts, labels = load_imdb_folder("aclImdb", split="train")  # aclImdb/train/{pos,neg}/*.txt
    texts, labels = load_sst2_tsv("SST-2/train.tsv")           # "sentence<TAB>label" with a header
    ids, lengths = encode_padded(vocab, texts, max_len=64)     # (N, max_len) int64, lengths (N,)

The bundled corpus is the UCI "Sentiment Labelled Sentences" set (Kotzias et al., KDD 2015; CC BY 4.0,
see ``data/datasets/files/SENTIMENT_LICENSE.txt``): 1,000 sentences each from Amazon, IMDb and Yelp
reviews, half positive, half negative.
"""

from __future__ import annotations

import gzip
import os

import numpy as np

__all__ = ["SENTIMENT_FILE", "encode_padded", "load_imdb_folder", "load_sentiment_sentences", "load_sst2_tsv"]

SENTIMENT_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "datasets",
                              "files", "sentiment_sentences.tsv.gz")
_HEADER = "source\tlabel\tsentence"


def load_sentiment_sentences(path=SENTIMENT_FILE):
    """``(texts, labels, sources)``: lists of sentences, an int64 array of 0/1 labels and the site each
    sentence comes from ('amazon', 'imdb' or 'yelp')."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_sentiment_sentences: no such file {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = fh.read().split("\n")
    if rows[0] != _HEADER:
        raise ValueError(f"load_sentiment_sentences: {path} does not start with the header {_HEADER!r}")
    texts, labels, sources = [], [], []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        parts = row.split("\t")
        if len(parts) != 3 or parts[1] not in ("0", "1"):
            raise ValueError(f"load_sentiment_sentences: {path} line {lineno} is not source<TAB>0|1<TAB>sentence")
        sources.append(parts[0])
        labels.append(int(parts[1]))
        texts.append(parts[2])
    return texts, np.asarray(labels, dtype=np.int64), sources


def load_imdb_folder(root, split: str = "train", max_per_class: int | None = None):
    """An aclImdb-style folder: ``root/<split>/pos/*.txt`` (label 1) and ``root/<split>/neg/*.txt``
    (label 0), one review per file (``<br />`` line breaks become spaces). Files are read in name order,
    negatives first; ``max_per_class`` caps each class. Returns ``(texts, labels)``."""
    base = os.path.join(str(root), split)
    texts, labels = [], []
    for label, sub in ((0, "neg"), (1, "pos")):
        folder = os.path.join(base, sub)
        if not os.path.isdir(folder):
            raise FileNotFoundError(f"load_imdb_folder: expected a folder {folder} of .txt reviews "
                                    f"(the aclImdb layout: {split}/pos and {split}/neg)")
        names = sorted(n for n in os.listdir(folder) if n.endswith(".txt"))
        if max_per_class is not None:
            names = names[:max_per_class]
        for name in names:
            with open(os.path.join(folder, name), encoding="utf-8", errors="replace") as fh:
                texts.append(" ".join(fh.read().replace("<br />", " ").split()))
            labels.append(label)
    if not texts:
        raise ValueError(f"load_imdb_folder: {base} has no .txt reviews in pos/ or neg/")
    return texts, np.asarray(labels, dtype=np.int64)


def load_sst2_tsv(path, text_column: str = "sentence", label_column: str = "label"):
    """An SST-2-style TSV: a header row naming the columns, then one example per line. Returns
    ``(texts, labels)``; a file without the label column (the GLUE test split) is an error."""
    with open(path, encoding="utf-8") as fh:
        lines = [line.rstrip("\r\n") for line in fh]
    if not lines:
        raise ValueError(f"load_sst2_tsv: {path} is empty")
    header = lines[0].split("\t")
    for col in (text_column, label_column):
        if col not in header:
            raise ValueError(f"load_sst2_tsv: {path} has columns {header}, no {col!r} column")
    ti, li = header.index(text_column), header.index(label_column)
    texts, labels = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) != len(header):
            raise ValueError(f"load_sst2_tsv: {path} line {lineno} has {len(parts)} fields, the header {len(header)}")
        try:
            labels.append(int(parts[li]))
        except ValueError:
            raise ValueError(f"load_sst2_tsv: {path} line {lineno}: label {parts[li]!r} is not an integer") from None
        texts.append(parts[ti])
    return texts, np.asarray(labels, dtype=np.int64)


def encode_padded(vocab, texts, max_len: int, pad_index: int = 0):
    """Encode each text with ``vocab`` (cut to ``max_len`` tokens) into one (N, max_len) int64 array
    padded with ``pad_index``, and the lengths (N,) int64 (at least 1: an empty text holds one pad)."""
    if max_len < 1:
        raise ValueError(f"encode_padded: max_len must be >= 1, got {max_len}")
    out = np.full((len(texts), max_len), pad_index, dtype=np.int64)
    lengths = np.ones(len(texts), dtype=np.int64)
    for i, t in enumerate(texts):
        ids = vocab.encode(t)[:max_len]
        out[i, : len(ids)] = ids
        lengths[i] = max(len(ids), 1)
    return out, lengths
