"""``torch.nn.modules.activation``'s names, for programs that import from there; the classes live in
``deepwise.nn.layers.activation`` (``MultiheadAttention`` in ``deepwise.nn.layers.attention``)."""

from __future__ import annotations

from deepwise.nn.layers.activation import (
    CELU,
    ELU,
    GELU,
    GLU,
    SELU,
    Hardsigmoid,
    Hardswish,
    Hardtanh,
    LeakyReLU,
    LogSigmoid,
    LogSoftmax,
    Mish,
    PReLU,
    ReLU,
    ReLU6,
    Sigmoid,
    SiLU,
    Softmax,
    Softmin,
    Softplus,
    Softsign,
    Tanh,
)
from deepwise.nn.layers.attention import MultiheadAttention

__all__ = [
    "MultiheadAttention",
    "ReLU", "Hardtanh", "ReLU6", "Sigmoid", "Hardsigmoid", "Tanh", "SiLU", "Mish", "Hardswish", "ELU",
    "CELU", "SELU", "GLU", "GELU", "LeakyReLU", "LogSigmoid", "Softplus", "PReLU", "Softsign", "Softmin",
    "Softmax", "LogSoftmax",
]
