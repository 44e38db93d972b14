"""Reverse-mode automatic differentiation: grad mode, the graph, the walk, anomaly mode, gradient checks.

The modules, in the order they build on each other: ``mode`` (grad mode), ``anomaly`` (anomaly
mode and its errors), ``engine`` (the walk: ``backward`` and ``grad``), ``function`` (``Function``
and its graph node ``Context``), ``gradcheck`` (finite differences in float64).
"""

from __future__ import annotations

from deepwise.autograd.anomaly import detect_anomaly
from deepwise.autograd.engine import backward, grad, run_backward
from deepwise.autograd.function import Context, Function, Variable
from deepwise.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from deepwise.autograd.mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)

__all__ = [
    "Context", "Function", "GradcheckError", "backward", "detect_anomaly", "enable_grad", "grad",
    "gradcheck", "gradgradcheck", "inference_mode", "is_grad_enabled", "no_grad", "run_backward",
    "set_grad_enabled", "Variable",
]
