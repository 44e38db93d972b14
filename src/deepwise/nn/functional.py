"""The functional API (``import deepwise.nn.functional as F``), named as ``torch.nn.functional``.

Most names are the ops themselves, re-exported; the few activations below that have no op of their
own are compositions of ops, so autograd differentiates them.
"""

from __future__ import annotations

from deepwise.ops._autocast import autocast_op
from deepwise.ops.activation import elu, gelu, leaky_relu, log_softmax, relu, silu, softmax, softplus
from deepwise.ops.adaptive_pool import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
)
from deepwise.ops.arithmetic import clamp, where
from deepwise.ops.attention import scaled_dot_product_attention
from deepwise.ops.conv import conv1d, conv2d, conv_transpose1d, conv_transpose2d
from deepwise.ops.dropout import alpha_dropout, dropout, dropout1d, dropout2d
from deepwise.ops.embedding import embedding
from deepwise.ops.index import one_hot
from deepwise.ops.interpolate import interpolate, upsample
from deepwise.ops.linalg import linear
from deepwise.ops.loss import (
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from deepwise.ops.normalization import batch_norm, group_norm, layer_norm
from deepwise.ops.pool import (
    avg_pool1d,
    avg_pool2d,
    max_pool1d,
    max_pool2d,
)
from deepwise.ops.shape import chunk, pad
from deepwise.ops.unary import sigmoid, tanh

_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    """x clipped to [min_val, max_val]."""
    if min_val > max_val:
        raise ValueError(f"hardtanh: min_val {min_val} is above max_val {max_val}")
    return clamp(input, min_val, max_val)


def relu6(input, inplace=False):
    """min(max(x, 0), 6)."""
    return clamp(input, 0.0, 6.0)


def selu(input, inplace=False):
    """scale * elu(x, alpha) with the self-normalising constants."""
    return elu(input, _SELU_ALPHA) * _SELU_SCALE


def celu(input, alpha=1.0, inplace=False):
    """max(0, x) + min(0, alpha * (exp(x / alpha) - 1))."""
    if alpha == 0:
        raise ValueError("celu: alpha must not be 0")
    return elu(input / alpha, 1.0) * alpha


def mish(input, inplace=False):
    """x * tanh(softplus(x))."""
    return input * tanh(softplus(input))


def softsign(input):
    """x / (1 + |x|)."""
    return input / (input.abs() + 1.0)


def hardsigmoid(input, inplace=False):
    """relu6(x + 3) / 6."""
    return clamp(input / 6.0 + 0.5, 0.0, 1.0)


def hardswish(input, inplace=False):
    """x * relu6(x + 3) / 6."""
    return input * hardsigmoid(input)


def logsigmoid(input):
    """log(sigmoid(x)) = -softplus(-x), finite for large |x|."""
    return -softplus(-input, 1.0, float("inf"))


def softmin(input, dim=None, dtype=None):
    return softmax(-input, dim, dtype)


def glu(input, dim=-1):
    """a * sigmoid(b) where a, b are the two halves of ``input`` along ``dim``."""
    if input.shape[dim] % 2:
        raise ValueError(f"glu: dim {dim} of shape {input.shape} must have an even size to split in halves")
    a, b = chunk(input, 2, dim)
    return a * sigmoid(b)


@autocast_op("prelu")
def prelu(input, weight):
    """x where x >= 0, weight * x elsewhere; ``weight`` has one slope or one per channel (dim 1)."""
    if weight.ndim != 1:
        raise ValueError(f"prelu: weight must be 1-D, got shape {weight.shape}")
    w = weight
    if weight.shape[0] != 1:
        if input.ndim < 2 or input.shape[1] != weight.shape[0]:
            raise ValueError(
                f"prelu: {weight.shape[0]} slopes need an input with {weight.shape[0]} channels in dim 1, "
                f"got shape {input.shape}"
            )
        w = weight.reshape((weight.shape[0],) + (1,) * (input.ndim - 2))
    return where(input >= 0, input, input * w)


__all__ = [
    # activations
    "celu", "elu", "gelu", "glu", "hardsigmoid", "hardswish", "hardtanh", "leaky_relu", "log_softmax",
    "logsigmoid", "mish", "prelu", "relu", "relu6", "selu", "sigmoid", "silu", "softmax", "softmin",
    "softplus", "softsign", "tanh",
    # layers' functional forms
    "alpha_dropout", "dropout", "dropout1d", "dropout2d", "embedding", "linear", "one_hot", "pad",
    "batch_norm", "group_norm", "layer_norm",
    "conv1d", "conv2d", "conv_transpose1d", "conv_transpose2d", "interpolate", "upsample",
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "avg_pool1d",
    "avg_pool2d", "max_pool1d", "max_pool2d", "scaled_dot_product_attention",
    # losses
    "binary_cross_entropy", "binary_cross_entropy_with_logits", "cross_entropy", "huber_loss", "kl_div",
    "l1_loss", "mse_loss", "nll_loss", "smooth_l1_loss",
]
