"""Neural-network building blocks, named as in ``torch.nn``: ``Module``, ``Parameter``, containers,
layers, ``init``, ``functional`` (``import deepwise.nn.functional as F``) and ``utils`` (gradient
clipping, flat parameter vectors)."""

from deepwise.nn import functional, init, parallel, utils
from deepwise.nn.containers import ModuleDict, ModuleList, Sequential
from deepwise.nn.layers import *  # every layer is nn.<Name>
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter

__all__ = [n for n in dir() if not n.startswith("_")]
