"""Adadelta: a step size from the ratio of running RMS of past updates to running RMS of gradients.

Per parameter, with ``g`` the gradient (negated when ``maximize``)::

    g = g + weight_decay * p                   (when weight_decay != 0)
    v = rho * v + (1 - rho) * g * g                          (square_avg)
    delta = sqrt(u + eps) / sqrt(v + eps) * g
    u = rho * u + (1 - rho) * delta * delta                  (acc_delta)
    p = p - lr * delta
"""

from __future__ import annotations

from deepwise.backend import get_array_module
from deepwise.optim.optimizer import Optimizer, neg_or_same, product, with_weight_decay
from deepwise.tensor import Tensor


class Adadelta(Optimizer):
    """``Adadelta(params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False)``, as
    PyTorch's (state ``step``, ``square_avg`` and ``acc_delta``, made at a parameter's first step)."""

    def __init__(self, params, lr=1.0, rho=0.9, eps=1e-6, weight_decay=0, *, maximize=False):
        defaults = {"lr": lr, "rho": rho, "eps": eps, "weight_decay": weight_decay, "maximize": maximize}
        super().__init__(params, defaults)

    def _check_group(self, group, where):
        for key in ("lr", "eps", "weight_decay"):
            self._check_number(group, key, where)
        self._check_number(group, "rho", where, high=1.0, high_inclusive=True)

    def _update_group(self, group):
        lr = float(group["lr"])
        rho = float(group["rho"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        for p, g in self._grads(group):
            xp = get_array_module(p.array)
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = Tensor._make(xp.zeros_like(p.array))
                state["acc_delta"] = Tensor._make(xp.zeros_like(p.array))
            state["step"] += 1
            g, _ = neg_or_same(g, group["maximize"])
            if weight_decay != 0:
                g = with_weight_decay(g, p.array, weight_decay)
            square_avg = state["square_avg"].array
            acc_delta = state["acc_delta"].array
            tmp = product(xp, g, 1.0 - rho, p.array)  # addcmul's order: (value * g) * g
            tmp *= g
            square_avg *= rho
            square_avg += tmp
            std = xp.add(square_avg, eps, out=tmp)
            xp.sqrt(std, out=std)
            delta = xp.add(acc_delta, eps, out=xp.empty_like(p.array))
            xp.sqrt(delta, out=delta)
            delta /= std
            delta *= g
            xp.multiply(delta, 1.0 - rho, out=tmp)
            tmp *= delta
            acc_delta *= rho
            acc_delta += tmp
            delta *= lr
            p.array -= delta
