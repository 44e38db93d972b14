"""Optimizers, learning-rate schedulers and gradient clipping, with PyTorch's names and update rules.

    opt = dw.optim.AdamW(model.parameters(), lr=1e-3)
    sched = dw.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-2, total_steps=1000)
    loss.backward(); dw.optim.clip_grad_norm_(model.parameters(), 1.0); opt.step(); sched.step()
"""

from deepwise.nn.clip import clip_grad_norm_, clip_grad_value_  # torch.nn.utils is their home
from deepwise.optim import lr_scheduler
from deepwise.optim.adadelta import Adadelta
from deepwise.optim.adagrad import Adagrad
from deepwise.optim.adam import Adam, AdamW
from deepwise.optim.lbfgs import LBFGS
from deepwise.optim.optimizer import Optimizer, required
from deepwise.optim.rmsprop import RMSprop
from deepwise.optim.sgd import SGD

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "Adadelta", "LBFGS", "lr_scheduler",
    "clip_grad_norm_", "clip_grad_value_", "required",
]
