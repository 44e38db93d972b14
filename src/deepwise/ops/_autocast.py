"""Autocast's per-op choice of precision, PyTorch's policy tables for the ops deepwise has.

An op function decorated ``@autocast_op("matmul")`` looks, while ``dw.autocast`` is on for the
device of its first tensor argument, at that device type's table and casts its floating tensor
arguments first (with the differentiable cast, so gradients flow back in each input's own dtype):

- ``lower``: float32 (and float16) inputs to autocast's dtype -- matmul, linear, convolutions;
- ``fp32``: float16 inputs to float32 -- losses everywhere; on CUDA also exp/log, softmax, norms,
  reductions, as in PyTorch, where the output is then float32;
- any op not listed runs in the dtype its inputs have.

float64 inputs are never cast (as in PyTorch). Without autocast the decorator costs one dict check.
"""

from __future__ import annotations

import functools

from deepwise import backend
from deepwise.tensor import Tensor

_LOWER = {"matmul", "linear", "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "prelu",
          "scaled_dot_product_attention"}
_LOSSES = {"cross_entropy", "nll_loss", "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss",
           "binary_cross_entropy", "binary_cross_entropy_with_logits", "kl_div"}

# torch 2.13's autocast lists (aten/src/ATen/autocast_mode.cpp), restricted to deepwise's ops. The CPU
# table is checked against torch's CPU autocast in tests/device/test_amp.py; on CUDA the float32
# group joins PyTorch's fp32 and fp32_set_opt_dtype lists (same outcome when no dtype= is passed).
POLICY = {
    "cpu": {**dict.fromkeys(_LOWER, "lower"), **dict.fromkeys(_LOSSES, "fp32")},
    "cuda": {**dict.fromkeys(_LOWER, "lower"), **dict.fromkeys(_LOSSES, "fp32"),
             **dict.fromkeys(("exp", "log", "log1p", "rsqrt", "pow", "softplus", "layer_norm", "group_norm", "norm",
                              "logsumexp", "sum", "prod", "cumsum", "softmax", "log_softmax"), "fp32")},
}
_FLOAT32 = backend.float32


def _device_type(args):
    for a in args:
        if isinstance(a, Tensor):
            return backend.device_of(a.array).type
    return None


def _cast(value, dtype, lower):
    if isinstance(value, Tensor) and backend.is_floating(value.dtype) and value.dtype != backend.float64:
        if value.dtype != dtype and (lower or value.dtype.itemsize < dtype.itemsize):
            return value.to(dtype)
    return value


def autocast_op(name):
    """Decorate op function ``name`` so autocast chooses its precision (see the module docstring)."""

    def decorate(fn):
        @functools.wraps(fn)
        def op(*args, **kwargs):
            if not backend.autocasting():
                return fn(*args, **kwargs)
            device_type = _device_type(args)
            low = backend.autocast_dtype(device_type) if device_type else None
            kind = POLICY[device_type].get(name) if low is not None else None
            if kind is None:
                return fn(*args, **kwargs)
            dtype, lower = (low, True) if kind == "lower" else (_FLOAT32, False)
            args = tuple(_cast(a, dtype, lower) for a in args)
            kwargs = {k: _cast(v, dtype, lower) for k, v in kwargs.items()}
            return fn(*args, **kwargs)

        op.autocast_name = name
        return op

    return decorate
