"""Weight initialisation, as in ``torch.nn.init``: each function fills ``tensor`` in place and returns it.

Values are drawn on the CPU from ``deepwise.random.generator()`` (or the ``generator`` passed in), in
the tensor's own floating dtype, then written into ``tensor.array`` (moved to its device). Nothing is
recorded by autograd.
"""

from __future__ import annotations

import math
from numbers import Real

import numpy as np

from deepwise import backend, random
from deepwise.autograd import no_grad

_LINEAR_LIKE = ("linear", "identity", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "sigmoid")


def calculate_gain(nonlinearity: str, param=None) -> float:
    """The gain that keeps activations' variance steady through ``nonlinearity``:
    1 for linear/conv/sigmoid, 5/3 for tanh, sqrt(2) for relu, sqrt(2 / (1 + slope^2)) for leaky_relu
    (slope ``param``, default 0.01), 3/4 for selu."""
    if nonlinearity in _LINEAR_LIKE:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3.0
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, Real) and not isinstance(param, bool):
            slope = float(param)
        else:
            raise ValueError(f"calculate_gain: negative slope {param!r} is not a number")
        return math.sqrt(2.0 / (1.0 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4.0
    raise ValueError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
        f"{', '.join(_LINEAR_LIKE + ('tanh', 'relu', 'leaky_relu', 'selu'))}"
    )


def _calculate_fan_in_and_fan_out(tensor):
    """(fan_in, fan_out) of a weight: (in, out) features times the receptive field for conv kernels
    of shape (out_channels, in_channels, *kernel)."""
    if tensor.ndim < 2:
        raise ValueError(
            f"fan in and fan out need a tensor of at least 2 dimensions, got shape {tuple(tensor.shape)}"
        )
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= int(s)
    return int(tensor.shape[1]) * receptive, int(tensor.shape[0]) * receptive


calculate_fan_in_and_fan_out = _calculate_fan_in_and_fan_out


def _fan(tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _write(tensor, values):
    with no_grad():
        tensor.array[...] = backend.to_device(np.asarray(values), tensor.device).astype(tensor.dtype, copy=False)
    return tensor


def _gen(generator):
    return generator if generator is not None else random.generator()


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with U(a, b)."""
    return tensor.uniform_(a, b, generator=generator)


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with N(mean, std^2)."""
    return tensor.normal_(mean, std, generator=generator)


def trunc_normal_(tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None):
    """Fill with N(mean, std^2) restricted to [a, b] (absolute bounds): out-of-range draws are redrawn."""
    if not a < b:
        raise ValueError(f"trunc_normal_: need a < b, got a={a}, b={b}")
    if std <= 0:
        raise ValueError(f"trunc_normal_: std must be > 0, got {std}")
    lo, hi = (a - mean) / std, (b - mean) / std
    if lo > 6 or hi < -6:
        raise ValueError(f"trunc_normal_: [a, b] = [{a}, {b}] is too far from the mean {mean} for std {std}")
    gen = _gen(generator)
    out = np.empty(int(np.prod(tensor.shape, dtype=np.int64)), np.float64)
    todo = np.arange(out.size)
    while todo.size:
        z = gen.standard_normal(todo.size)
        ok = (z >= lo) & (z <= hi)
        out[todo[ok]] = z[ok]
        todo = todo[~ok]
    return _write(tensor, (out * std + mean).reshape(tensor.shape))


def constant_(tensor, val: float):
    return _write(tensor, np.full(tensor.shape, val))


def zeros_(tensor):
    return constant_(tensor, 0.0)


def ones_(tensor):
    return constant_(tensor, 1.0)


def eye_(tensor):
    """Fill a 2-D tensor with the identity (ones on the main diagonal)."""
    if tensor.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    return _write(tensor, np.eye(*tensor.shape))


def dirac_(tensor, groups: int = 1):
    """Fill a conv weight (3-, 4- or 5-D) so the convolution passes its input channels through."""
    if tensor.ndim not in (3, 4, 5):
        raise ValueError(f"dirac_: only 3-, 4- or 5-D tensors are supported, got shape {tuple(tensor.shape)}")
    out_per_group = tensor.shape[0] // groups
    if tensor.shape[0] % groups:
        raise ValueError(f"dirac_: dim 0 ({tensor.shape[0]}) is not divisible by groups={groups}")
    values = np.zeros(tensor.shape)
    centre = tuple(k // 2 for k in tensor.shape[2:])
    for g in range(groups):
        for d in range(min(out_per_group, tensor.shape[1])):
            values[(g * out_per_group + d, d) + centre] = 1.0
    return _write(tensor, values)


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot: U(-bound, bound) with bound = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return uniform_(tensor, -bound, bound, generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot: N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)), generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _fan(tensor, mode)
    if fan == 0:
        raise ValueError(f"kaiming init of a tensor with zero elements (shape {tuple(tensor.shape)})")
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                     generator=None):
    """He: U(-bound, bound) with bound = gain * sqrt(3 / fan); ``a`` is leaky_relu's negative slope."""
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a: float = 0.0, mode: str = "fan_in", nonlinearity: str = "leaky_relu",
                    generator=None):
    """He: N(0, std^2) with std = gain / sqrt(fan)."""
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """A (semi-)orthogonal matrix from the QR decomposition of a Gaussian draw (signs fixed so the
    result is uniformly distributed), reshaped to the tensor; rows (or columns) are orthonormal."""
    if tensor.ndim < 2:
        raise ValueError(f"orthogonal_: only tensors with 2 or more dimensions are supported, got {tensor.shape}")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    flat = _gen(generator).standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _write(tensor, gain * q.reshape(tensor.shape))


def sparse_(tensor, sparsity: float, std: float = 0.01, generator=None):
    """2-D tensor from N(0, std^2) with a ``sparsity`` share of each column set to zero."""
    if tensor.ndim != 2:
        raise ValueError(f"sparse_: only 2-D tensors are supported, got shape {tuple(tensor.shape)}")
    rows, cols = tensor.shape
    gen = _gen(generator)
    values = gen.standard_normal((rows, cols)) * std
    n_zero = int(math.ceil(sparsity * rows))
    for c in range(cols):
        values[gen.permutation(rows)[:n_zero], c] = 0.0
    return _write(tensor, values)


__all__ = [
    "calculate_gain", "constant_", "dirac_", "eye_", "kaiming_normal_", "kaiming_uniform_", "normal_",
    "ones_", "orthogonal_", "sparse_", "trunc_normal_", "uniform_", "xavier_normal_", "xavier_uniform_",
    "zeros_",
]
