"""Adagrad: per-coordinate learning rates that shrink with the sum of squared gradients.

Per parameter, with ``g`` the gradient (negated when ``maximize``) and ``t`` the step count::

    g = g + weight_decay * p                   (when weight_decay != 0)
    clr = lr / (1 + (t - 1) * lr_decay)
    sum = sum + g * g
    p = p - clr * g / (sqrt(sum) + eps)
"""

from __future__ import annotations

from deepwise.backend import get_array_module
from deepwise.optim.optimizer import Optimizer, neg_or_same, product, with_weight_decay
from deepwise.tensor import Tensor


class Adagrad(Optimizer):
    """``Adagrad(params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
    maximize=False)``. Like PyTorch, the state (``step`` and ``sum``) exists from construction on."""

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0, eps=1e-10, *,
                 maximize=False):
        defaults = {
            "lr": lr, "lr_decay": lr_decay, "eps": eps, "weight_decay": weight_decay,
            "initial_accumulator_value": initial_accumulator_value, "maximize": maximize,
        }
        super().__init__(params, defaults)
        for group in self.param_groups:
            for p in group["params"]:
                self._init_state(p, group)

    def _init_state(self, p, group):
        xp = get_array_module(p.array)
        state = self.state[p]
        state["step"] = 0
        state["sum"] = Tensor._make(xp.full_like(p.array, float(group["initial_accumulator_value"])))

    def _check_group(self, group, where):
        for key in ("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps"):
            self._check_number(group, key, where)

    def _update_group(self, group):
        lr = float(group["lr"])
        lr_decay = float(group["lr_decay"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        for p, g in self._grads(group):
            xp = get_array_module(p.array)
            state = self.state[p]
            if not state:  # a parameter added with add_param_group after construction
                self._init_state(p, group)
            state["step"] += 1
            g, _ = neg_or_same(g, group["maximize"])
            if weight_decay != 0:
                g = with_weight_decay(g, p.array, weight_decay)
            clr = lr / (1.0 + (state["step"] - 1) * lr_decay)
            tmp = product(xp, g, g, p.array)
            total = state["sum"].array
            total += tmp
            std = xp.sqrt(total, out=tmp)
            std += eps
            step = product(xp, g, clr, p.array)  # PyTorch's addcdiv order: (clr * g) / std
            step /= std
            p.array -= step
