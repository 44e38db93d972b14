"""Dates written out in English and the same dates in German, from the Unicode CLDR locale data.

    pairs = load_date_pairs()                      # list of DatePair(iso, style, english, german)
    train, val, test = split_date_pairs(pairs)     # held out by date: a test date is never trained on
    build_date_pairs("dates.tsv.gz")               # rebuild the bundled file (needs ``pip install babel``)

The bundled file ``data/datasets/files/dates_en_de.tsv.gz`` holds 12,000 dates drawn uniformly from
1900-01-01 .. 2099-12-31 (seed 0), each written in one of three CLDR styles, in the ``en_US`` and
``de_DE`` locales as the ``babel`` package formats them:

    full    Tuesday, March 5, 2024   ->  Dienstag, 5. März 2024
    long    March 5, 2024            ->  5. März 2024
    medium  Mar 5, 2024              ->  05.03.2024

A translator has to copy the numbers, map month and weekday names, reorder day and month and, in the
medium style, turn a month name into its number. Licence of the data: Unicode License v3 (CLDR, see
``DATES_LICENSE.txt`` beside the file); babel, used only to build it, is BSD-licensed.
"""

from __future__ import annotations

import datetime
import gzip
import hashlib
import os
from typing import NamedTuple

import numpy as np

from deepwise.io import atomic_write_bytes

__all__ = ["DATES_FILE", "STYLES", "DatePair", "build_date_pairs", "load_date_pairs", "split_date_pairs"]

DATES_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "data", "datasets",
                          "files", "dates_en_de.tsv.gz")
STYLES = ("full", "long", "medium")
_HEADER = "iso\tstyle\tenglish\tgerman"
_FIRST, _LAST = datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)


class DatePair(NamedTuple):
    iso: str        # 2024-03-05
    style: str      # full | long | medium
    english: str    # Tuesday, March 5, 2024
    german: str     # Dienstag, 5. März 2024


def build_date_pairs(path=DATES_FILE, n: int = 12000, seed: int = 0, source_locale: str = "en_US",
                     target_locale: str = "de_DE") -> int:
    """Write ``n`` date pairs (distinct dates, a style each, drawn with ``seed``) to ``path`` as gzipped
    TSV; returns the number written. Needs the ``babel`` package (CLDR data), at build time only."""
    try:
        from babel.dates import format_date  # noqa: PLC0415
    except ImportError:
        raise ImportError("build_date_pairs needs babel for the CLDR locale data: pip install babel") from None
    span = (_LAST - _FIRST).days + 1
    if not 1 <= n <= span:
        raise ValueError(f"build_date_pairs: n must be in 1..{span}, got {n}")
    rng = np.random.default_rng(seed)
    days = np.sort(rng.choice(span, size=n, replace=False))
    styles = rng.integers(0, len(STYLES), n)
    lines = [_HEADER]
    for d, s in zip(days.tolist(), styles.tolist()):
        date = _FIRST + datetime.timedelta(days=d)
        style = STYLES[s]
        src = format_date(date, style, locale=source_locale)
        tgt = format_date(date, style, locale=target_locale)
        lines.append(f"{date.isoformat()}\t{style}\t{src}\t{tgt}")
    data = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0)
    atomic_write_bytes(str(path), data)
    return n


def load_date_pairs(path=DATES_FILE, max_pairs: int | None = None) -> list[DatePair]:
    """The pairs of the bundled file (or ``path``), in date order; ``max_pairs`` keeps every k-th pair so
    a small subset still spans all years and styles."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"load_date_pairs: no such file {path}")
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = fh.read().split("\n")
    if not rows or rows[0] != _HEADER:
        raise ValueError(f"load_date_pairs: {path} does not start with the header {_HEADER!r}")
    pairs = []
    for lineno, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        parts = row.split("\t")
        if len(parts) != 4 or parts[1] not in STYLES:
            raise ValueError(f"load_date_pairs: {path} line {lineno} is not iso<TAB>style<TAB>english<TAB>german")
        pairs.append(DatePair(*parts))
    if max_pairs is not None and 0 < max_pairs < len(pairs):
        step = len(pairs) / max_pairs
        pairs = [pairs[int(i * step)] for i in range(max_pairs)]
    return pairs


def split_date_pairs(pairs, val: float = 0.1, test: float = 0.1):
    """(train, val, test) lists, assigned by a hash of each date (stable when pairs are added or dropped)."""
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise ValueError(f"split_date_pairs: val and test must be fractions summing to < 1, got {val}, {test}")
    parts = ([], [], [])
    for p in pairs:
        u = int.from_bytes(hashlib.sha256(p.iso.encode()).digest()[:8], "big") / 2.0 ** 64
        parts[2 if u < test else 1 if u < test + val else 0].append(p)
    return parts
