"""``dw.callbacks``: every training callback in one namespace — the Keras-style ones of
``deepwise.train.callbacks``, the diagnostic ones of ``deepwise.diagnostics`` and ``TensorBoard``
(``deepwise.utils.tensorboard``)."""

from deepwise.diagnostics.gradients import GradientMonitor
from deepwise.diagnostics.overfitting import OverfittingAdvisor
from deepwise.train.callbacks import *  # noqa: F403
from deepwise.train.callbacks import __all__ as _train_callbacks
from deepwise.utils.tensorboard import TensorBoard

__all__ = [*_train_callbacks, "GradientMonitor", "OverfittingAdvisor", "TensorBoard"]
