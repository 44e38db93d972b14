"""Stochastic gradient descent with momentum, dampening, Nesterov momentum and weight decay.

Per parameter, with ``g`` the gradient (negated when ``maximize``)::

    g = g + weight_decay * p                        (when weight_decay != 0)
    buf = g  (first step)  |  buf = momentum * buf + (1 - dampening) * g
    g = g + momentum * buf  (nesterov)  |  g = buf  (momentum != 0)
    p = p - lr * g
"""

from __future__ import annotations

from deepwise.backend import get_array_module
from deepwise.optim.optimizer import Optimizer, neg_or_same, product, with_weight_decay
from deepwise.tensor import Tensor


class SGD(Optimizer):
    """``SGD(params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
    maximize=False)``."""

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False):
        defaults = {
            "lr": lr, "momentum": momentum, "dampening": dampening, "weight_decay": weight_decay,
            "nesterov": nesterov, "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group, where):
        self._check_number(group, "lr", where)
        self._check_number(group, "momentum", where)
        self._check_number(group, "weight_decay", where)
        self._check_number(group, "dampening", where, low=float("-inf"))
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(
                f"SGD: Nesterov momentum requires a momentum > 0 and zero dampening, got momentum="
                f"{group['momentum']}, dampening={group['dampening']}{where}"
            )

    def _update_group(self, group):
        lr = float(group["lr"])
        momentum = float(group["momentum"])
        dampening = float(group["dampening"])
        weight_decay = float(group["weight_decay"])
        nesterov = bool(group["nesterov"])
        for p, g in self._grads(group):
            xp = get_array_module(p.array)
            g, owned = neg_or_same(g, group["maximize"])
            if weight_decay != 0:
                g, owned = with_weight_decay(g, p.array, weight_decay), True
            if momentum != 0:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    b = g if owned and g.dtype == p.array.dtype else g.astype(p.array.dtype, copy=True)
                    state["momentum_buffer"] = Tensor._make(b)
                else:
                    b = buf.array
                    b *= momentum
                    b += g if dampening == 0 else product(xp, g, 1.0 - dampening, p.array)
                if nesterov:  # g + momentum * buf
                    step, owned = product(xp, b, momentum, p.array), True
                    step += g
                else:
                    step, owned = b, False  # the buffer itself: never scaled in place
            else:
                step = g
            # p -= lr * step, scaling in place only an array this step made
            if owned:
                step *= lr
            else:
                step = product(xp, step, lr, p.array)
            xp.subtract(p.array, step, out=p.array)
