"""Scores for generated text against references: exact match, chrF and BLEU (corpus level).

    exact_match(["5. März 2024"], ["5. März 2024"])    # 1.0
    chrf(hypotheses, references)                      # 0..100, character n-grams 1..6, beta 2
    bleu(hypotheses, references)                      # 0..100, word n-grams 1..4, brevity penalty

chrF (Popović, 2015) compares character n-grams (spaces removed) of each hypothesis with its
reference; the matched, hypothesis and reference n-gram counts are summed over the corpus for each n,
the precisions and recalls averaged over n = 1..6 and combined as an F-score with recall weighted beta
(2) times as much as precision. BLEU (Papineni et al., 2002) is the geometric mean of the corpus
word n-gram precisions (n = 1..4) times the brevity penalty, with one reference per hypothesis and no
smoothing (a corpus with no matching 4-gram scores 0).
"""

from __future__ import annotations

import math
import re
from collections import Counter

__all__ = ["bleu", "chrf", "exact_match"]

_WORD = re.compile(r"\w+|[^\w\s]")


def _check(op, hyps, refs):
    hyps, refs = list(hyps), list(refs)
    if len(hyps) != len(refs):
        raise ValueError(f"{op}: {len(hyps)} hypotheses but {len(refs)} references")
    if not hyps:
        raise ValueError(f"{op}: no hypotheses to score")
    return hyps, refs


def exact_match(hypotheses, references) -> float:
    """The fraction of hypotheses equal to their reference (after stripping outer whitespace)."""
    hyps, refs = _check("exact_match", hypotheses, references)
    return sum(h.strip() == r.strip() for h, r in zip(hyps, refs)) / len(hyps)


def _ngrams(seq, n):
    return Counter(tuple(seq[i:i + n]) for i in range(len(seq) - n + 1))


def chrf(hypotheses, references, order: int = 6, beta: float = 2.0) -> float:
    """Corpus chrF in 0..100 (see the module docstring)."""
    hyps, refs = _check("chrf", hypotheses, references)
    match, hyp_total, ref_total = [0] * order, [0] * order, [0] * order
    for h, r in zip(hyps, refs):
        hc, rc = "".join(h.split()), "".join(r.split())
        for n in range(1, order + 1):
            hn, rn = _ngrams(hc, n), _ngrams(rc, n)
            match[n - 1] += sum((hn & rn).values())
            hyp_total[n - 1] += sum(hn.values())
            ref_total[n - 1] += sum(rn.values())
    ns = [i for i in range(order) if hyp_total[i] or ref_total[i]]
    if not ns:
        return 0.0
    p = sum(match[i] / hyp_total[i] if hyp_total[i] else 0.0 for i in ns) / len(ns)
    r = sum(match[i] / ref_total[i] if ref_total[i] else 0.0 for i in ns) / len(ns)
    if p + r == 0:
        return 0.0
    b2 = beta * beta
    return 100.0 * (1 + b2) * p * r / (b2 * p + r)


def bleu(hypotheses, references, order: int = 4) -> float:
    """Corpus BLEU in 0..100 with word tokens (``\\w+`` or one punctuation mark)."""
    hyps, refs = _check("bleu", hypotheses, references)
    match, total = [0] * order, [0] * order
    hyp_len = ref_len = 0
    for h, r in zip(hyps, refs):
        ht, rt = _WORD.findall(h), _WORD.findall(r)
        hyp_len += len(ht)
        ref_len += len(rt)
        for n in range(1, order + 1):
            hn, rn = _ngrams(ht, n), _ngrams(rt, n)
            match[n - 1] += sum((hn & rn).values())
            total[n - 1] += sum(hn.values())
    if hyp_len == 0 or any(m == 0 for m in match):
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total)) / order
    bp = 1.0 if hyp_len > ref_len else math.exp(1 - ref_len / hyp_len)
    return 100.0 * bp * math.exp(log_p)
