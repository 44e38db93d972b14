"""``Distribution``: the base of ``deepwise.distributions`` (PyTorch's ``torch.distributions`` names).

A distribution holds its parameters as Tensors, broadcast to one ``batch_shape`` (``Normal(loc, scale)``
with loc of shape (3,) and a scalar scale is three normals). ``sample(sample_shape)`` draws
``sample_shape + batch_shape + event_shape`` values without a graph; ``rsample`` (where a distribution
has one) draws them as a differentiable function of the parameters -- the reparameterisation trick a
VAE trains through. ``log_prob``, ``entropy``, ``mean`` and the like are built from deepwise's tensor
ops, so gradients flow back to the parameters as through any other computation.

Parameters and values are checked as PyTorch checks them (``validate_args``, on by default;
``Distribution.set_default_validate_args(False)`` turns it off): a bad one is a ValueError that
names the distribution, the argument, its shape and the constraint.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend, ops
from deepwise.autograd import no_grad
from deepwise.creation import tensor
from deepwise.tensor import Tensor

__all__ = ["Distribution", "as_shape", "broadcast_all"]


def as_shape(sample_shape) -> tuple:
    """``sample_shape`` (an int, a tuple/list or a torch.Size-like) as a tuple of ints."""
    if isinstance(sample_shape, (int, np.integer)):
        return (int(sample_shape),)
    try:
        return tuple(int(s) for s in sample_shape)
    except TypeError:
        raise TypeError(f"sample_shape must be a tuple of ints, got {type(sample_shape).__name__}") from None


def broadcast_all(*values):
    """Tensors and numbers -> Tensors of one broadcast shape. Numbers take the floating dtype and
    device of the Tensors among them (float32 when there are none)."""
    tensors = [v for v in values if isinstance(v, Tensor)]
    like = next((t for t in tensors if backend.is_floating(t.dtype)), None)
    dtype = like.dtype if like is not None else "float32"
    device = tensors[0].device if tensors else "cpu"
    out = []
    for v in values:
        if isinstance(v, Tensor):
            out.append(v)
        elif isinstance(v, (bool, int, float, np.number)) or isinstance(v, (list, tuple, np.ndarray)):
            out.append(tensor(v, dtype=dtype, device=device))
        else:
            raise TypeError(f"expected Tensors or numbers as distribution parameters, got {type(v).__name__}")
    shape = np.broadcast_shapes(*(tuple(t.shape) for t in out))
    return tuple(t if tuple(t.shape) == shape else ops.broadcast_to(t, shape) for t in out)


class Distribution:
    """Base class (see the module docstring). Subclasses set ``batch_shape`` / ``event_shape`` and
    implement what they support; the rest says which distribution lacks it."""

    has_rsample = False
    _validate_default = True

    def __init__(self, batch_shape=(), event_shape=(), validate_args=None):
        self._batch_shape = tuple(batch_shape)
        self._event_shape = tuple(event_shape)
        self._validate_args = Distribution._validate_default if validate_args is None else bool(validate_args)

    @staticmethod
    def set_default_validate_args(value: bool) -> None:
        """Check arguments by default (True, as PyTorch does) or not."""
        if value not in (True, False):
            raise ValueError(f"set_default_validate_args: expected True or False, got {value!r}")
        Distribution._validate_default = value

    @property
    def batch_shape(self) -> tuple:
        return self._batch_shape

    @property
    def event_shape(self) -> tuple:
        return self._event_shape

    def _extended_shape(self, sample_shape=()) -> tuple:
        return as_shape(sample_shape) + self._batch_shape + self._event_shape

    # -------------------------------------------------------------- what subclasses provide
    def _missing(self, what):
        return NotImplementedError(f"{type(self).__name__} has no {what} in deepwise.distributions")

    @property
    def mean(self):
        raise self._missing("mean")

    @property
    def mode(self):
        raise self._missing("mode")

    @property
    def variance(self):
        raise self._missing("variance")

    @property
    def stddev(self):
        return self.variance.sqrt()

    def rsample(self, sample_shape=()):
        raise NotImplementedError(f"{type(self).__name__} has no rsample (no reparameterised sampling): use "
                                  "sample(), which gives no gradient, or a score-function estimator with log_prob")

    def sample(self, sample_shape=()):
        """Values drawn without a graph (``rsample`` detached where the distribution has it)."""
        with no_grad():
            return self.rsample(sample_shape)

    def sample_n(self, n: int):
        return self.sample((n,))

    def log_prob(self, value):
        raise self._missing("log_prob")

    def cdf(self, value):
        raise self._missing("cdf")

    def icdf(self, value):
        raise self._missing("icdf")

    def entropy(self):
        raise self._missing("entropy")

    def perplexity(self):
        return ops.exp(self.entropy())

    # -------------------------------------------------------------- checks
    def _check(self, name, value, ok, constraint):
        """Raise the ValueError of an argument outside its constraint (``ok``: a bool Tensor)."""
        if not self._validate_args:
            return
        good = ok.numpy() if isinstance(ok, Tensor) else np.asarray(ok)
        if not bool(np.all(good)):
            bad = value.detach().numpy() if isinstance(value, Tensor) else np.asarray(value)
            shown = np.asarray(bad)[~np.broadcast_to(good, np.shape(bad))] if np.ndim(bad) else bad
            raise ValueError(f"Expected parameter {name} (Tensor of shape {tuple(np.shape(bad))}) of distribution "
                             f"{type(self).__name__} to satisfy the constraint {constraint}, but found invalid "
                             f"values: {shown}")

    def _check_value(self, value, ok, support):
        if not self._validate_args:
            return
        good = ok.numpy() if isinstance(ok, Tensor) else np.asarray(ok)
        if not bool(np.all(good)):
            raise ValueError(f"Expected value argument (Tensor of shape {tuple(value.shape)}) to be within the "
                             f"support ({support}) of the distribution {type(self).__name__}, but found invalid "
                             "values")

    def _as_value(self, value):
        if isinstance(value, Tensor):
            return value
        return tensor(value, dtype=self._dtype, device=self._device)

    def __repr__(self):
        params = ", ".join(f"{name}: {_brief(getattr(self, name))}" for name in self._param_names())
        return f"{type(self).__name__}({params})"

    def _param_names(self):
        return ()


def _brief(t) -> str:
    if isinstance(t, Tensor) and t.numel() == 1:
        return str(float(t.detach().numpy().reshape(-1)[0]))
    return f"torch.Size({list(t.shape)})" if isinstance(t, Tensor) else str(t)
