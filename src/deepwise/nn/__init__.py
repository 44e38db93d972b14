"""Neural-network building blocks, named as in ``torch.nn``: ``Module``, ``Parameter``, containers,
layers, ``init`` and ``functional`` (``import deepwise.nn.functional as F``)."""

from deepwise.nn import functional, init
from deepwise.nn.containers import ModuleDict, ModuleList, Sequential
from deepwise.nn.layers import *  # noqa: F403 - every layer is nn.<Name>
from deepwise.nn.module import Module
from deepwise.nn.parameter import Parameter

__all__ = [n for n in dir() if not n.startswith("_")]


def __getattr__(name):
    # nn.utils imports deepwise.optim, which may import nn: load it on first use
    if name == "utils":
        import importlib  # noqa: PLC0415

        return importlib.import_module("deepwise.nn.utils")
    raise AttributeError(f"module 'deepwise.nn' has no attribute {name!r}")
