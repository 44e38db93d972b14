"""``nn.utils``: gradient clipping (``deepwise.nn.clip``; also ``dw.optim.clip_grad_norm_``) and flat
parameter vectors."""

from __future__ import annotations

from deepwise.autograd import no_grad
from deepwise.nn.clip import clip_grad_norm_, clip_grad_value_
from deepwise.ops.shape import cat
from deepwise.tensor import Tensor


def _as_list(parameters):
    if isinstance(parameters, Tensor):
        return [parameters]
    return list(parameters)


def parameters_to_vector(parameters) -> Tensor:
    """All parameters flattened and concatenated into one 1-D tensor (differentiable)."""
    params = _as_list(parameters)
    if not params:
        raise ValueError("parameters_to_vector: no parameters given")
    devices = {str(p.device) for p in params}
    if len(devices) > 1:
        raise RuntimeError(f"parameters_to_vector: parameters live on several devices {sorted(devices)}")
    return cat([p.reshape(-1) for p in params])


def vector_to_parameters(vec: Tensor, parameters) -> None:
    """Copy consecutive slices of the 1-D ``vec`` into the parameters, in place (inverse of
    ``parameters_to_vector``)."""
    if not isinstance(vec, Tensor):
        raise TypeError(f"vector_to_parameters: expected a Tensor, got {type(vec).__name__}")
    if vec.ndim != 1:
        raise ValueError(f"vector_to_parameters: vec must be 1-D, got shape {vec.shape}")
    params = _as_list(parameters)
    total = sum(p.numel() for p in params)
    if vec.numel() != total:
        raise ValueError(
            f"vector_to_parameters: vec has {vec.numel()} elements but the parameters hold {total}"
        )
    offset = 0
    with no_grad():
        for p in params:
            n = p.numel()
            p.array[...] = vec.array[offset:offset + n].reshape(p.shape).astype(p.dtype, copy=False)
            offset += n


__all__ = ["clip_grad_norm_", "clip_grad_value_", "parameters_to_vector", "vector_to_parameters"]
