"""``Linear``: y = x W^T + b, with PyTorch's parameter layout and default initialisation."""

from __future__ import annotations

import math

from deepwise import backend
from deepwise.creation import empty
from deepwise.nn import init
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter
from deepwise.ops.linalg import linear


class Linear(Module):
    """Affine map of the last dimension: (..., in_features) -> (..., out_features).

    ``weight`` is (out_features, in_features) and ``bias`` (out_features,), as in PyTorch, both drawn
    from U(-1/sqrt(in_features), 1/sqrt(in_features)) (kaiming_uniform_ with a=sqrt(5) for the weight).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        for name, value in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"Linear: {name} must be a non-negative int, got {value!r}")
        dtype = backend.to_dtype(dtype) or backend.DEFAULT_FLOAT
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty(out_features, in_features, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device)

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.in_features
            bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        if input.ndim == 0 or input.shape[-1] != self.in_features:
            raise RuntimeError(
                f"{self!r}: input of shape {tuple(input.shape)} has "
                f"{input.shape[-1] if input.ndim else 0} features in its last dimension, "
                f"expected in_features={self.in_features}"
            )
        return linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


__all__ = ["Linear"]
