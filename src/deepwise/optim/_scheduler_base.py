"""The scheduler base class and the argument checks the schedulers share."""

from __future__ import annotations

import warnings
from numbers import Integral, Real

from deepwise.optim.optimizer import Optimizer


def plain_copy(value):
    if isinstance(value, list):
        return [plain_copy(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_copy(v) for v in value)
    if isinstance(value, dict):
        return {k: plain_copy(v) for k, v in value.items()}
    return value


def check_optimizer(name, optimizer):
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"{name}: expected a deepwise Optimizer, got {type(optimizer).__name__}")


def check_int(name, key, value, low):
    if isinstance(value, bool) or not isinstance(value, Integral) or value < low:
        raise ValueError(f"{name}: {key} must be an integer >= {low}, got {value!r}")


def check_real(name, key, value, low=None, high=None):
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name}: {key} must be a number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name}: {key} must be in [{low}, {high}], got {value!r}")


def per_group(name, key, optimizer, value):
    if isinstance(value, (list, tuple)):
        if len(value) != len(optimizer.param_groups):
            raise ValueError(
                f"{name}: {key} has {len(value)} values but the optimizer has "
                f"{len(optimizer.param_groups)} param groups"
            )
        return list(value)
    return [value] * len(optimizer.param_groups)


class LRScheduler:
    """Base class: subclasses implement ``get_lr()`` (the next rates, from ``last_epoch`` and the
    current ``group["lr"]``) and optionally ``_get_closed_form_lr()`` (the rates at ``last_epoch``
    computed from ``base_lrs`` alone)."""

    _not_saved = ("optimizer",)
    _required_keys = ("last_epoch", "base_lrs")

    def __init__(self, optimizer, last_epoch=-1):
        name = type(self).__name__
        check_optimizer(name, optimizer)
        check_int(name, "last_epoch", last_epoch, -1)
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"{name}: param group {i} has no 'initial_lr', which resuming with last_epoch="
                        f"{last_epoch} needs; load the optimizer's state dict first, or use last_epoch=-1"
                    )
        self.base_lrs = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._initial_step()

    def _initial_step(self):
        self._step_count = 0
        self._is_initial = True
        try:
            self.step()
        finally:
            self._is_initial = False

    def get_lr(self):
        raise NotImplementedError(f"{type(self).__name__} must implement get_lr()")

    def get_last_lr(self):
        """The rates of the param groups after the latest step."""
        return list(self._last_lr)

    def step(self, epoch=None):
        """Advance one epoch (``epoch=`` jumps to that epoch using the closed form; deprecated)."""
        if self._step_count == 1 and not getattr(self.optimizer, "_opt_called", True):
            warnings.warn(
                f"{type(self).__name__}.step() was called before optimizer.step(): call optimizer.step() "
                "first, or the first value of the learning-rate schedule is skipped",
                UserWarning, stacklevel=2,
            )
        self._step_count += 1
        if epoch is not None:
            warnings.warn(
                "scheduler.step(epoch) is deprecated: call step() once per epoch instead",
                UserWarning, stacklevel=2,
            )
        self._update_lr(epoch)

    def _update_lr(self, epoch=None):
        if epoch is None:
            self.last_epoch += 1
            values = self.get_lr()
        else:
            self.last_epoch = epoch
            closed_form = getattr(self, "_get_closed_form_lr", None)
            values = closed_form() if closed_form is not None else self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def _group_lrs(self):
        return [group["lr"] for group in self.optimizer.param_groups]

    # ------------------------------------------------------------------------------ state dict
    def state_dict(self):
        """Everything but the optimizer, as plain values."""
        return {k: plain_copy(v) for k, v in self.__dict__.items() if k not in self._not_saved}

    def load_state_dict(self, state_dict):
        name = type(self).__name__
        if not isinstance(state_dict, dict):
            raise TypeError(f"{name}.load_state_dict: expected a dict, got {type(state_dict).__name__}")
        missing = [k for k in self._required_keys if k not in state_dict]
        if missing:
            raise ValueError(f"{name}.load_state_dict: the state dict lacks {missing}; is it from a {name}?")
        for key in ("base_lrs", "_last_lr", "min_lrs"):
            if key in state_dict and len(state_dict[key]) != len(self.optimizer.param_groups):
                raise ValueError(
                    f"{name}.load_state_dict: '{key}' has {len(state_dict[key])} entries but the optimizer "
                    f"has {len(self.optimizer.param_groups)} param groups"
                )
        self.__dict__.update({k: plain_copy(v) for k, v in state_dict.items() if k not in self._not_saved})
