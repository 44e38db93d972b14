"""Generate text from a trained next-token model: temperature and top-k sampling.

Draws come from ``deepwise.random.generator()`` (or the ``generator`` given), so the same seed gives
the same text.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend, random
from deepwise.autograd import no_grad
from deepwise.tensor import Tensor
from deepwise.text._arrays import host_array

__all__ = ["sample", "sample_next"]


def sample_next(logits, temperature: float = 1.0, top_k: int | None = None, generator=None) -> int:
    """One token id drawn from ``softmax(logits / temperature)`` restricted to the ``top_k`` largest
    logits; ``temperature=0`` picks the argmax."""
    z = host_array(logits).astype(np.float64).reshape(-1)
    if temperature == 0:
        return int(np.argmax(z))
    z = z / temperature
    if top_k is not None and top_k < z.size:
        kth = np.partition(z, z.size - top_k)[z.size - top_k]
        z = np.where(z >= kth, z, -np.inf)
    p = np.exp(z - z.max())
    cdf = np.cumsum(p)
    u = (generator or random.generator()).random() * cdf[-1]
    return int(min(np.searchsorted(cdf, u, side="right"), z.size - 1))


def _device(model):
    for p in model.parameters():
        return p.device
    return backend.Device("cpu")


def _last_logits(out, vocab_size):
    """Logits of the last position from a full-sequence output: (1, V, T) (classes on dim 1, checked
    first) or (1, T, V)."""
    if out.ndim == 3 and out.shape[1] == vocab_size:
        return out[0, :, -1]
    if out.ndim == 3 and out.shape[2] == vocab_size:
        return out[0, -1]
    raise ValueError(f"sample: the model returned shape {tuple(out.shape)}; expected (1, vocab, seq) or "
                     f"(1, seq, vocab) with vocab = {vocab_size}")


def sample(model, vocab, prompt: str, length: int, temperature: float = 1.0, top_k: int | None = None,
           generator=None) -> str:
    """``prompt`` followed by ``length`` generated tokens, as text.

    ``model`` maps token ids (1, seq) to logits; if it has ``step(ids, state) -> (last logits, state)``
    (``LanguageModel`` does) each new token costs one step, otherwise the whole text so far is run
    again for every token. The model runs in eval mode, without a graph, and is put back as it was."""
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 0:
        raise ValueError(f"sample: length must be an int >= 0, got {length!r}")
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or temperature < 0:
        raise ValueError(f"sample: temperature must be a number >= 0, got {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or top_k < 1):
        raise ValueError(f"sample: top_k must be None or an int >= 1, got {top_k!r}")
    ids = vocab.encode(prompt)
    if ids.size == 0:
        raise ValueError("sample: the prompt must hold at least one token")
    device = _device(model)
    stepper = getattr(model, "step", None)

    def as_tensor(a):
        return Tensor._make(backend.to_device(np.asarray(a, dtype=np.int64)[None, :], device))

    was_training = model.training
    model.eval()
    new = []
    try:
        with no_grad():
            if stepper is not None:
                logits, state = stepper(as_tensor(ids), None)
                for _ in range(length):
                    new.append(sample_next(logits[0], temperature, top_k, generator))
                    logits, state = stepper(as_tensor(new[-1:]), state)
            else:
                seq = list(ids.tolist())
                for _ in range(length):
                    logits = _last_logits(model(as_tensor(seq)), len(vocab))
                    seq.append(sample_next(logits, temperature, top_k, generator))
                new = seq[len(ids):]
    finally:
        model.train(was_training)
    if not new:
        return prompt
    sep = "" if vocab.level == "char" else " "
    return prompt + sep + vocab.decode(new)
