"""``torch.nn.modules``, the package PyTorch programs import layers from
(``from torch.nn.modules.loss import _Loss`` aside, ``from torch.nn.modules.conv import Conv2d``):
one module per PyTorch file, each re-exporting the deepwise layers of that name. The layers
themselves live in ``deepwise.nn.layers``; every one is also ``deepwise.nn.<Name>``."""

from deepwise.nn.containers import ModuleDict, ModuleList, Sequential
from deepwise.nn.layers import *
from deepwise.nn.module import Module
from deepwise.nn.modules import (
    activation,
    batchnorm,
    container,
    conv,
    dropout,
    flatten,
    linear,
    loss,
    module,
    normalization,
    pooling,
    rnn,
    sparse,
    transformer,
    upsampling,
    utils,
)
