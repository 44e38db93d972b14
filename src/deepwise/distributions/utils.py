"""Helpers of ``deepwise.distributions`` (``torch.distributions.utils``)."""

from __future__ import annotations

import numpy as np

__all__ = ["clamp_probs", "logits_to_probs", "probs_to_logits"]


def clamp_probs(probs):
    """``probs`` kept inside (eps, 1 - eps) of their dtype, so their logs stay finite."""
    eps = float(np.finfo(np.dtype(probs.dtype)).eps)
    return probs.clamp(min=eps, max=1 - eps)


def probs_to_logits(probs, is_binary: bool = False):
    p = clamp_probs(probs)
    return p.log() - (-p).log1p() if is_binary else p.log()


def logits_to_probs(logits, is_binary: bool = False):
    return logits.sigmoid() if is_binary else logits.softmax(dim=-1)
