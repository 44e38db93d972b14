"""Running a model over data: in eval mode, without a graph, in batches, answers as NumPy arrays.

Used wherever a trained model is asked for many outputs at once -- an autoencoder's embeddings, the
generative diagnostics' reconstructions -- so none of them loops over samples or holds a graph.
"""

from __future__ import annotations

import contextlib

import numpy as np

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.tensor import Tensor


@contextlib.contextmanager
def eval_mode(model):
    """The block runs with ``model`` in eval mode and no graph; its train/eval mode is restored after."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        with no_grad():
            yield
    finally:
        model.train(was_training)


def to_host(t) -> np.ndarray:
    """A Tensor or array (on any device) as a NumPy array."""
    arr = t.array if isinstance(t, Tensor) else t
    if backend.is_array(arr) and not isinstance(arr, np.ndarray):
        arr = backend.to_device(arr, backend.Device("cpu"))
    return np.asarray(arr)


def run_in_batches(model, fn, x, batch_size):
    """fn(model, batch Tensor) over x in batches (eval mode, no graph), concatenated as NumPy."""
    x = to_host(x)
    if x.shape[0] == 0:
        raise ValueError(f"no samples to run (x has shape {x.shape})")
    device = next(iter(model.parameters())).device
    out = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            out.append(to_host(fn(model, Tensor(x[i:i + batch_size]).to(device))))
    return np.concatenate(out)


def embeddings(model, x, batch_size: int = 256) -> np.ndarray:
    """``model.encode(x)`` for all of x, as a NumPy array (N, latent_dim)."""
    if not hasattr(model, "encode"):
        raise TypeError(f"embeddings: {type(model).__name__} has no encode(x)")
    return run_in_batches(model, lambda m, b: m.encode(b), x, batch_size)
