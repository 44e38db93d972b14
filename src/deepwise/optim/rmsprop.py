"""RMSprop: divide the gradient by a running root-mean-square of recent gradients.

Per parameter, with ``g`` the gradient (negated when ``maximize``)::

    g = g + weight_decay * p                   (when weight_decay != 0)
    v = alpha * v + (1 - alpha) * g * g
    avg = sqrt(v - mean_g**2) + eps  with  mean_g = lerp(mean_g, g, 1 - alpha)   (centered)
    avg = sqrt(v) + eps                                                          (otherwise)
    buf = momentum * buf + g / avg;  p = p - lr * buf                            (momentum > 0)
    p = p - lr * g / avg                                                         (otherwise)
"""

from __future__ import annotations

from deepwise.backend import get_array_module
from deepwise.optim.optimizer import Optimizer, lerp_, neg_or_same, product, with_weight_decay
from deepwise.tensor import Tensor


class RMSprop(Optimizer):
    """``RMSprop(params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
    maximize=False)``."""

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False, *,
                 maximize=False):
        defaults = {
            "lr": lr, "alpha": alpha, "eps": eps, "weight_decay": weight_decay, "momentum": momentum,
            "centered": centered, "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _check_group(self, group, where):
        for key in ("lr", "alpha", "eps", "weight_decay", "momentum"):
            self._check_number(group, key, where)

    def _update_group(self, group):
        lr = float(group["lr"])
        alpha = float(group["alpha"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        momentum = float(group["momentum"])
        centered = bool(group["centered"])
        for p, g in self._grads(group):
            xp = get_array_module(p.array)
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["square_avg"] = Tensor._make(xp.zeros_like(p.array))
            if momentum > 0 and "momentum_buffer" not in state:
                state["momentum_buffer"] = Tensor._make(xp.zeros_like(p.array))
            if centered and "grad_avg" not in state:
                state["grad_avg"] = Tensor._make(xp.zeros_like(p.array))
            state["step"] += 1
            g, _ = neg_or_same(g, group["maximize"])
            if weight_decay != 0:
                g = with_weight_decay(g, p.array, weight_decay)
            square_avg = state["square_avg"].array
            tmp = product(xp, g, 1.0 - alpha, p.array)  # PyTorch's addcmul order: (value * g) * g
            tmp *= g
            square_avg *= alpha
            square_avg += tmp
            if centered:
                grad_avg = state["grad_avg"].array
                lerp_(xp, grad_avg, g, 1.0 - alpha, tmp)
                xp.multiply(grad_avg, grad_avg, out=tmp)
                xp.subtract(square_avg, tmp, out=tmp)
                avg = xp.sqrt(tmp, out=tmp)
            else:
                avg = xp.sqrt(square_avg, out=tmp)
            avg += eps
            if momentum > 0:
                buf = state["momentum_buffer"].array
                buf *= momentum
                buf += xp.divide(g, avg, out=tmp)
                xp.multiply(buf, lr, out=tmp)
                p.array -= tmp
            else:
                step = product(xp, g, lr, p.array)  # PyTorch's addcdiv order: (lr * g) / avg
                step /= avg
                p.array -= step
