"""Vanishing gradients through time: how much does the last step's loss still feel step t?

``gradient_norms_through_time(layer, seq_len)`` feeds a random sequence through a recurrent layer (or
any model mapping a float sequence to a sequence), takes a loss on the output of the LAST step only,
and returns, for every step t, the norm of that loss's gradient with respect to the input at step t,
``|| d loss_T / d x_t ||``. In a vanilla RNN this falls geometrically as t moves away from T (each
step back multiplies by W_hh^T and tanh' < 1); an LSTM's cell path (c_t = f * c_{t-1} + ...) keeps it
alive for as long as the forget gate stays near 1.

    rnn, lstm = nn.RNN(8, 64), nn.LSTM(8, 64)
    flows = compare_gradient_flow({"RNN": rnn, "LSTM": lstm}, seq_len=60)
    print(format_gradient_flow(flows))        # table of norms relative to the last step
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd import enable_grad
from deepwise.tensor import Tensor

__all__ = ["compare_gradient_flow", "format_gradient_flow", "gradient_norms_through_time"]


def _output(result):
    """The sequence output of a recurrent layer / model call: the first element of a tuple."""
    while isinstance(result, (tuple, list)):
        result = result[0]
    if not isinstance(result, Tensor):
        raise TypeError(f"gradient_norms_through_time: the model returned {type(result).__name__}, "
                        "expected a Tensor (or a tuple whose first element is the output sequence)")
    return result


def _device(model):
    for p in model.parameters():
        return p.device, p.dtype
    return backend.Device("cpu"), np.dtype(np.float32)


def gradient_norms_through_time(layer_or_model, seq_len: int, batch_size: int = 8, input_size: int | None = None,
                                batch_first: bool | None = None, relative: bool = True, seed: int = 0) -> np.ndarray:
    """Norms (seq_len,) of d loss / d x_t, t = 0 .. seq_len-1, where loss = <output at step T-1, v> for a
    fixed random v, summed over a batch of standard-normal input sequences.

    ``input_size`` and ``batch_first`` default to the layer's own attributes (``nn.RNN`` / ``LSTM`` /
    ``GRU`` have them); give them for other models. ``relative=True`` divides by the norm at the last
    step, so entry t says how much weaker step t's signal is. The draws use their own generator
    (``seed``), not deepwise's, so calling this does not change a training run. Modules run in their
    current mode (call ``.eval()`` first to switch dropout off)."""
    if isinstance(seq_len, bool) or not isinstance(seq_len, (int, np.integer)) or seq_len < 1:
        raise ValueError(f"gradient_norms_through_time: seq_len must be an int >= 1, got {seq_len!r}")
    if input_size is None:
        input_size = getattr(layer_or_model, "input_size", None)
        if input_size is None:
            raise ValueError(f"gradient_norms_through_time: {type(layer_or_model).__name__} has no input_size "
                             "attribute; pass input_size=")
    if batch_first is None:
        batch_first = bool(getattr(layer_or_model, "batch_first", False))
    device, dtype = _device(layer_or_model)
    rng = np.random.default_rng(seed)
    shape = (batch_size, seq_len, input_size) if batch_first else (seq_len, batch_size, input_size)
    x = Tensor(backend.to_device(rng.standard_normal(shape).astype(dtype), device), requires_grad=True)
    with enable_grad():
        out = _output(layer_or_model(x))
        last = out[:, -1] if batch_first else out[-1]
        v = Tensor(backend.to_device(rng.standard_normal(tuple(last.shape)).astype(last.dtype), device))
        (last * v).sum().backward()
    g = backend.to_device(x.grad.array, backend.Device("cpu")).astype(np.float64)
    if batch_first:
        g = g.swapaxes(0, 1)
    norms = np.sqrt((g.reshape(seq_len, -1) ** 2).sum(axis=1))
    if relative:
        if norms[-1] == 0:
            raise ValueError("gradient_norms_through_time: the last step's gradient is zero; nothing to compare with")
        norms = norms / norms[-1]
    return norms


def compare_gradient_flow(models: dict, seq_len: int, **kwargs) -> dict:
    """``{name: gradient_norms_through_time(model, seq_len, **kwargs)}`` for several models."""
    return {name: gradient_norms_through_time(m, seq_len, **kwargs) for name, m in models.items()}


def format_gradient_flow(flows: dict, points: int = 6) -> str:
    """A text table: for each model the norms at ``points`` steps from the first to the last."""
    if not flows:
        return ""
    T = len(next(iter(flows.values())))
    steps = sorted(set(np.linspace(0, T - 1, min(points, T)).round().astype(int).tolist()))
    width = max(len(n) for n in flows)
    lines = [" " * width + "  " + "".join(f"{'t=' + str(s):>11}" for s in steps)]
    for name, norms in flows.items():
        lines.append(name.ljust(width) + "  " + "".join(f"{norms[s]:11.2e}" for s in steps))
    return "\n".join(lines)
