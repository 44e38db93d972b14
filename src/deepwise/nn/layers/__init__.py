"""Layers, one family per file; all re-exported by ``deepwise.nn``."""

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
from deepwise.nn.layers.conv import Conv1d, Conv2d, ConvTranspose1d, ConvTranspose2d
from deepwise.nn.layers.dropout import AlphaDropout, Dropout, Dropout1d, Dropout2d
from deepwise.nn.layers.embedding import Embedding
from deepwise.nn.layers.linear import Linear
from deepwise.nn.layers.loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    KLDivLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
)
from deepwise.nn.layers.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, SyncBatchNorm
from deepwise.nn.layers.pool import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AdaptiveMaxPool1d,
    AdaptiveMaxPool2d,
    AvgPool1d,
    AvgPool2d,
    MaxPool1d,
    MaxPool2d,
    Upsample,
)
from deepwise.nn.layers.positional import LearnedPositionalEncoding, SinusoidalPositionalEncoding
from deepwise.nn.layers.recurrent import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell, RNNCellBase
from deepwise.nn.layers.shape import Flatten, Identity, Unflatten
from deepwise.nn.layers.transformer import (
    Transformer,
    TransformerDecoder,
    TransformerDecoderLayer,
    TransformerEncoder,
    TransformerEncoderLayer,
)

__all__ = [n for n in dir() if not n.startswith("_")]
