"""The one seeded generator behind every random op (creation, init, dropout, shuffling, splits).

Numbers are drawn on the CPU and moved to the target device, so a seed gives the same values on
NumPy and CuPy.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator: two runs seeded alike draw identical numbers everywhere in deepwise."""
    global _generator
    _generator = np.random.default_rng(int(seed))


seed = manual_seed


def generator() -> np.random.Generator:
    """The shared ``numpy.random.Generator``; draw from it, do not keep it across ``manual_seed``."""
    return _generator


def draw_dtype(dtype) -> np.dtype:
    """The dtype random values for a tensor of ``dtype`` are drawn in: its own when float32 or
    float64, else float32 (then cast on writing)."""
    dtype = np.dtype(dtype)
    return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)


def get_rng_state() -> dict:
    """A JSON-serialisable snapshot of the generator (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state: dict) -> None:
    global _generator
    bitgen = getattr(np.random, state["bit_generator"])()
    bitgen.state = state
    _generator = np.random.Generator(bitgen)
