"""Adam and AdamW: adaptive moment estimation, with L2 or decoupled weight decay and AMSGrad.

Per parameter, with ``g`` the gradient (negated when ``maximize``) and ``t`` the step count::

    g = g + weight_decay * p               (Adam's L2 penalty)  |  p = p * (1 - lr * weight_decay)  (AdamW)
    m = lerp(m, g, 1 - beta1)              v = beta2 * v + (1 - beta2) * g * g
    v_hat = max(v_hat, v)                  (amsgrad; used in place of v below)
    p = p - lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)
"""

from __future__ import annotations

from deepwise.backend import get_array_module
from deepwise.optim.optimizer import Optimizer, lerp_, neg_or_same, product, with_weight_decay
from deepwise.tensor import Tensor


class Adam(Optimizer):
    """``Adam(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
    maximize=False, decoupled_weight_decay=False)``; ``decoupled_weight_decay=True`` is AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 maximize=False, decoupled_weight_decay=False):
        defaults = {
            "lr": lr, "betas": betas, "eps": eps, "weight_decay": weight_decay, "amsgrad": amsgrad,
            "maximize": maximize, "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _check_group(self, group, where):
        self._check_number(group, "lr", where)
        self._check_number(group, "eps", where)
        self._check_number(group, "weight_decay", where)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise ValueError(f"{self._name}: betas must be a pair (beta1, beta2), got {betas!r}{where}")
        group["betas"] = tuple(betas)
        for i, beta in enumerate(betas):
            if isinstance(beta, bool) or not isinstance(beta, (int, float)) or not 0.0 <= beta < 1.0:
                raise ValueError(f"{self._name}: invalid betas[{i}] {beta!r}: it must be in [0, 1){where}")

    def _update_group(self, group):
        lr = float(group["lr"])
        beta1, beta2 = (float(b) for b in group["betas"])
        eps = float(group["eps"])
        weight_decay = float(group["weight_decay"])
        amsgrad = bool(group["amsgrad"])
        decoupled = bool(group["decoupled_weight_decay"])
        for p, g in self._grads(group):
            xp = get_array_module(p.array)
            state = self.state[p]
            if not state:
                state["step"] = 0
                state["exp_avg"] = Tensor._make(xp.zeros_like(p.array))
                state["exp_avg_sq"] = Tensor._make(xp.zeros_like(p.array))
                if amsgrad:
                    state["max_exp_avg_sq"] = Tensor._make(xp.zeros_like(p.array))
            state["step"] += 1
            step = state["step"]
            g, _ = neg_or_same(g, group["maximize"])
            if weight_decay != 0:
                if decoupled:
                    p.array *= 1.0 - lr * weight_decay
                else:
                    g = with_weight_decay(g, p.array, weight_decay)
            m = state["exp_avg"].array
            v = state["exp_avg_sq"].array
            tmp = xp.empty_like(p.array)
            lerp_(xp, m, g, 1.0 - beta1, tmp)
            xp.multiply(g, 1.0 - beta2, out=tmp)  # PyTorch's addcmul order: (value * g) * g
            tmp *= g
            v *= beta2
            v += tmp
            bias_correction1 = 1.0 - beta1**step
            bias_correction2 = 1.0 - beta2**step
            step_size = lr / bias_correction1
            if amsgrad:
                if "max_exp_avg_sq" not in state:
                    state["max_exp_avg_sq"] = Tensor._make(xp.zeros_like(p.array))
                v_max = state["max_exp_avg_sq"].array
                xp.maximum(v_max, v, out=v_max)
                v = v_max
            denom = xp.sqrt(v, out=tmp)
            denom /= bias_correction2**0.5
            denom += eps
            update = product(xp, m, step_size, p.array)  # PyTorch's addcdiv order: (value * m) / denom
            update /= denom
            p.array -= update


class AdamW(Adam):
    """Adam with decoupled weight decay: ``AdamW(params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8,
    weight_decay=1e-2, amsgrad=False, *, maximize=False)``."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                         decoupled_weight_decay=True)

    def load_state_dict(self, state_dict):
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            group["decoupled_weight_decay"] = True
