"""``Vocab``: tokens <-> integer ids, character- or word-level, saved as JSON.

    vocab = Vocab.build(text, level="char")          # every character seen, most frequent first
    ids = vocab.encode("hello")                      # int64 array
    vocab.decode(ids)                                # "hello"
    vocab.save("vocab.json"); Vocab.load("vocab.json")

Word level splits on words and single punctuation marks (``\\w+|[^\\w\\s]``) and decodes by joining
tokens with spaces, so it round-trips the tokens, not the exact spacing. Characters or words not in
the vocabulary map to ``unk_token`` (``"<unk>"`` by default); with ``unk_token=None`` they are an error.
"""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np

from deepwise.io import atomic_write_bytes
from deepwise.text._arrays import host_array

__all__ = ["Vocab"]

_FORMAT = "deepwise.vocab"
_VERSION = 1
_WORD = re.compile(r"\w+|[^\w\s]")
_LEVELS = ("char", "word")


class Vocab:
    """An ordered list of distinct tokens; a token's id is its position."""

    def __init__(self, tokens, level: str = "char", unk_token: str | None = "<unk>", lower: bool = False):
        if level not in _LEVELS:
            raise ValueError(f"Vocab: level must be 'char' or 'word', got {level!r}")
        tokens = list(tokens)
        for t in tokens:
            if not isinstance(t, str) or not t:
                raise TypeError(f"Vocab: tokens must be non-empty strings, got {t!r}")
            if level == "char" and len(t) != 1 and t != unk_token:
                raise ValueError(f"Vocab: a character-level vocabulary holds single characters, got {t!r}")
        if unk_token is not None and unk_token not in tokens:
            tokens.insert(0, unk_token)
        self.tokens = tokens
        self.stoi = {t: i for i, t in enumerate(tokens)}
        if len(self.stoi) != len(tokens):
            dup = next(t for t in tokens if tokens.count(t) > 1)
            raise ValueError(f"Vocab: token {dup!r} appears more than once")
        self.level = level
        self.unk_token = unk_token
        self.unk_index = None if unk_token is None else self.stoi[unk_token]
        self.lower = bool(lower)

    @classmethod
    def build(cls, text, level: str = "char", min_freq: int = 1, max_size: int | None = None,
              unk_token: str | None = "<unk>", specials=(), lower: bool = False) -> Vocab:
        """The tokens of ``text`` (a string or an iterable of strings) seen at least ``min_freq`` times,
        most frequent first (ties in code-point order), after ``unk_token`` and ``specials``;
        ``max_size`` caps the total size."""
        if level not in _LEVELS:
            raise ValueError(f"Vocab.build: level must be 'char' or 'word', got {level!r}")
        texts = [text] if isinstance(text, str) else list(text)
        counts = Counter()
        for t in texts:
            counts.update(_tokenize(t.lower() if lower else t, level))
        head = ([unk_token] if unk_token is not None else []) + [s for s in specials if s != unk_token]
        ranked = sorted((c for c in counts.items() if c[1] >= min_freq and c[0] not in head),
                        key=lambda kv: (-kv[1], kv[0]))
        tokens = head + [t for t, _ in ranked]
        if max_size is not None:
            if max_size < len(head):
                raise ValueError(f"Vocab.build: max_size={max_size} leaves no room for the {len(head)} special tokens")
            tokens = tokens[:max_size]
        return cls(tokens, level=level, unk_token=unk_token, lower=lower)

    # ------------------------------------------------------------------------------------- use
    def __len__(self) -> int:
        return len(self.tokens)

    def __contains__(self, token) -> bool:
        return token in self.stoi

    def __getitem__(self, token: str) -> int:
        """The id of ``token`` (the unknown id if it is not in the vocabulary)."""
        i = self.stoi.get(token, self.unk_index)
        if i is None:
            raise KeyError(f"Vocab: token {token!r} is not in the vocabulary (and there is no unk_token)")
        return i

    def tokenize(self, text: str) -> list[str]:
        return _tokenize(text.lower() if self.lower else text, self.level)

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> int64 ids; unknown tokens become ``unk_index`` (an error without an unk_token)."""
        if not isinstance(text, str):
            raise TypeError(f"Vocab.encode: expected a string, got {type(text).__name__}")
        toks = self.tokenize(text)
        unk = self.unk_index
        ids = [self.stoi.get(t, unk) for t in toks]
        if unk is None and None in ids:
            bad = sorted({t for t, i in zip(toks, ids) if i is None})
            raise KeyError(f"Vocab.encode: {len(bad)} token(s) not in the vocabulary and no unk_token: "
                           f"{', '.join(map(repr, bad[:10]))}")
        return np.asarray(ids, dtype=np.int64)

    def decode(self, ids) -> str:
        """Ids (list, array or 1-D Tensor) -> text: characters joined as they are, words with spaces."""
        arr = _host_ids(ids)
        if arr.ndim > 1:
            raise ValueError(f"Vocab.decode: expected a 1-D sequence of ids, got shape {arr.shape}")
        arr = arr.reshape(-1)
        if arr.size and (arr.min() < 0 or arr.max() >= len(self.tokens)):
            raise IndexError(f"Vocab.decode: ids must be in 0..{len(self.tokens) - 1}, got "
                             f"min {int(arr.min())}, max {int(arr.max())}")
        toks = [self.tokens[i] for i in arr.tolist()]
        return ("" if self.level == "char" else " ").join(toks)

    # ---------------------------------------------------------------------------------- saving
    def to_dict(self) -> dict:
        return {"format": _FORMAT, "version": _VERSION, "level": self.level, "unk_token": self.unk_token,
                "lower": self.lower, "tokens": self.tokens}

    @classmethod
    def from_dict(cls, d: dict, source: str = "vocab") -> Vocab:
        if not isinstance(d, dict) or d.get("format") != _FORMAT:
            raise ValueError(f"{source}: not a deepwise vocabulary (expected a JSON object with "
                             f"\"format\": \"{_FORMAT}\")")
        if d.get("version") != _VERSION:
            raise ValueError(f"{source}: vocabulary format version {d.get('version')!r} is not supported "
                             f"(this deepwise reads version {_VERSION})")
        tokens = d.get("tokens")
        if not isinstance(tokens, list):
            raise ValueError(f"{source}: \"tokens\" must be a list of strings")
        return cls(tokens, level=d.get("level", "char"), unk_token=d.get("unk_token"), lower=bool(d.get("lower")))

    def save(self, path) -> None:
        """Write the vocabulary as JSON (atomically: a reader sees the old file or the new one)."""
        atomic_write_bytes(str(path), (json.dumps(self.to_dict(), ensure_ascii=True, indent=1) + "\n").encode())

    @classmethod
    def load(cls, path) -> Vocab:
        with open(path, encoding="utf-8") as fh:
            try:
                d = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not a JSON vocabulary ({exc})") from None
        return cls.from_dict(d, source=str(path))

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocab(size={len(self)}, level={self.level!r}, unk_token={self.unk_token!r})"


def _host_ids(ids) -> np.ndarray:
    arr = host_array(ids)
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"Vocab.decode: ids must be integers, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _tokenize(text: str, level: str) -> list[str]:
    return list(text) if level == "char" else _WORD.findall(text)
