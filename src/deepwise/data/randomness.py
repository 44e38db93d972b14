"""Where data-pipeline randomness comes from.

Random transforms and samplers draw from ``rng()`` (re-exported as ``deepwise.data.rng``). Outside a
``DataLoader`` fetch that is simply ``deepwise.random.generator()`` (so ``deepwise.manual_seed``
governs it). While a ``DataLoader``
fetches a batch, ``rng()`` is a per-epoch generator seeded by one draw taken from the shared generator
in the main thread when the epoch's iterator was created: batches prepared in a background thread
then get the same random numbers whatever the thread timing, and prefetching on or off gives
identical batches.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager

import numpy as np

from deepwise import random as _random

__all__ = ["child_seed", "rng", "using"]

_local = threading.local()


def rng() -> np.random.Generator:
    """The generator data code should draw from (see the module docstring)."""
    gen = getattr(_local, "generator", None)
    return gen if gen is not None else _random.generator()


@contextmanager
def using(gen: np.random.Generator | None):
    """Make ``rng()`` return ``gen`` in this thread for the duration of the block."""
    previous = getattr(_local, "generator", None)
    _local.generator = gen
    try:
        yield gen
    finally:
        _local.generator = previous


def child_seed() -> int:
    """One draw from the shared generator, the seed of an epoch's generator (call in the main thread)."""
    return int(rng().integers(0, 2**63 - 1))
