"""What the Trainer does with one batch: unpack it, check it, run the model, compute the loss, step.

These are the building blocks of ``Trainer.train_step`` / ``eval_step`` / ``predict_step``, public so
that a subclass overriding ``train_step`` (a GAN with two optimizers, say) keeps every check, the
gradient-accumulation bookkeeping, clipping and the ``on_before_optimizer_step`` hook::

    def train_step(self, batch):
        real, _, _ = self.unpack_batch(batch)
        d_loss = ...;  self.backward(d_loss);  self.optimizer_step(self.d_optimizer)
        g_loss = ...;  self.backward(g_loss);  self.optimizer_step(self.optimizer)
        return {"d_loss": d_loss, "g_loss": g_loss}
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise.backend import Device
from deepwise.tensor import Tensor

__all__ = ["StepsMixin"]


def _rebuild(exc: BaseException, message: str) -> BaseException:
    """The same exception type with a fuller message; for a type that cannot be built from a message,
    its nearest built-in base class (so ``except ValueError`` still catches it)."""
    for cls in type(exc).__mro__:
        if not issubclass(cls, Exception):
            break
        if cls is not type(exc) and cls.__module__ != "builtins":
            continue
        try:
            return cls(message)
        except Exception:  # noqa: S112 - an exception class with a custom signature: try its base
            continue
    return RuntimeError(message)


class StepsMixin:
    """Per-batch helpers of ``Trainer`` (see the module docstring)."""

    # ------------------------------------------------------------------------------ where we are
    def _where(self) -> str:
        phase = getattr(self, "_phase", None)
        if phase == "train":
            return f"epoch {self.epoch + 1}, batch {self.batch_index}"
        if phase is not None:
            return f"{phase}, batch {self._phase_batch}"
        return "a batch"

    @property
    def device(self) -> Device:
        """The model's device (that of its first parameter; CPU for a model without parameters)."""
        if self._device is not None:
            return self._device
        for p in self.model.parameters():
            return p.device
        return Device("cpu")

    def parameter_name(self, param) -> str:
        """The dotted name of ``param`` in the model (``"0.weight"``), or its place in the optimizer."""
        names = getattr(self, "_param_names", None)
        if names is None:
            names = {id(p): name for name, p in self.model.named_parameters()}
            self._param_names = names
        if id(param) in names:
            return names[id(param)]
        for opt in self._optimizers():
            for g, group in enumerate(opt.param_groups):
                for j, p in enumerate(group["params"]):
                    if p is param:
                        return f"{type(opt).__name__}.param_groups[{g}][{j}]"
        return f"<parameter of shape {tuple(param.shape)}>"

    def _optimizers(self):
        return [obj for obj in self.state_objects().values() if obj is not None and hasattr(obj, "param_groups")]

    # ------------------------------------------------------------------------------ batches
    @staticmethod
    def batch_size_of(batch) -> int:
        """Number of samples in a batch (the first dimension of its first tensor)."""
        if type(batch) is tuple and batch and type(batch[0]) is Tensor:  # what the DataLoader yields
            shape = batch[0].data.shape
            if shape:
                return int(shape[0])
        first = batch
        while isinstance(first, (tuple, list)) and first:
            first = first[0]
        if isinstance(first, dict) and first:
            first = next(iter(first.values()))
        shape = getattr(first, "shape", None)
        if not shape:
            raise TypeError(f"Trainer: cannot tell the batch size of a batch of type {type(batch).__name__}; "
                            "batches should be Tensors or tuples of Tensors")
        return int(shape[0])

    def to_device(self, t):
        """``t`` (a Tensor or array) on the model's device (the device found when fit / evaluate /
        predict started)."""
        if t is None:
            return None
        device = self._run_device if self._run_device is not None else self.device
        if not isinstance(t, Tensor):
            t = Tensor(t)
        if device.type == "cpu" and isinstance(t.data, np.ndarray):
            return t  # the common case, without building a Device to compare
        return t if t.device == device else t.to(device)

    def unpack_batch(self, batch):
        """``(x, y, sample_weight)`` of a batch (y and weight None when absent), on the model's device,
        with the inputs checked for NaN / infinite values."""
        if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
            parts = batch
        elif isinstance(batch, Tensor) or backend.is_array(batch):
            parts = (batch,)
        else:
            raise TypeError(f"Trainer: a batch must be x, (x,), (x, y) or (x, y, sample_weight), got "
                            f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list))
                                                         else "") + "; override train_step for other layouts")
        k = len(parts)
        x = self.to_device(parts[0])
        y = self.to_device(parts[1]) if k > 1 else None
        w = self.to_device(parts[2]) if k > 2 else None
        self._check_finite(x, "inputs (x)")
        if y is not None and y.dtype.kind == "f":
            self._check_finite(y, "targets (y)")
        return x, y, w

    def _check_finite(self, t: Tensor, what: str) -> None:
        if t.dtype.kind != "f" or t.data.size == 0:
            return
        if self._loop_data is not None and self._loop_data.inputs_finite:
            return  # checked once for the whole array
        xp = backend.get_array_module(t.data)
        if math.isfinite(float(t.data.sum())):  # a sum is finite only if every element is
            return
        bad = ~xp.isfinite(t.data.reshape(t.shape[0], -1) if t.ndim > 1 else t.data.reshape(-1, 1))
        rows = bad.any(axis=1)
        if not bool(rows.any()):  # the sum overflowed on huge but finite values
            return
        sample = int(rows.argmax())
        kind = "NaN" if bool(xp.isnan(t.data).any()) else "infinite values"
        raise ValueError(f"Trainer: the {what} of {self._where()} contain {kind} (first in sample {sample} of the "
                         f"batch, batch shape {t.shape}); clean the data (e.g. numpy.nan_to_num) or drop those "
                         "samples")

    # ------------------------------------------------------------------------------ model
    def forward(self, x):
        """``model(x)``; an error gets the batch shape and, when the first layer's input size does not
        match, that layer's name and expected vs given size."""
        try:
            return self.model(x)
        except (ValueError, RuntimeError, TypeError, IndexError) as exc:
            raise _rebuild(exc, self._forward_message(exc, x)) from exc

    def _forward_message(self, exc, x) -> str:
        shape = tuple(getattr(x, "shape", ()))
        msg = f"Trainer: the model failed on an input batch of shape {shape} ({self._where()}): {exc}"
        for name, module in self.model.named_modules():
            if hasattr(module, "in_features"):
                expected, given, where = module.in_features, (shape[-1] if shape else None), "features (last dimension)"
            elif hasattr(module, "in_channels"):
                expected, given, where = module.in_channels, (shape[1] if len(shape) > 1 else None), "channels (dim 1)"
            else:
                continue
            if given is not None and given != expected:
                label = name if name else "(the model itself)"
                msg += (f". The model's first layer {label!r} ({type(module).__name__}) expects {expected} input "
                        f"{where}, but the batch has {given}")
            break
        return msg

    # ------------------------------------------------------------------------------ loss
    def _check_class_targets(self, pred, y) -> None:
        """Targets of a loss that takes class indices (``cross_entropy``, ``nll``): integer labels in range
        (or class probabilities for cross-entropy)."""
        labels, pred_shape = y.data, pred.data.shape
        if labels.dtype.kind not in "iu":
            if self.loss.name == "cross_entropy" and labels.dtype.kind == "f" and labels.shape == pred_shape:
                return  # class probabilities
            raise TypeError(f"Trainer: the loss {self.loss.name!r} needs integer class labels, got {y.dtype} "
                            f"targets of shape {y.shape} ({self._where()}); convert them, e.g. y.astype('int64')")
        if len(pred_shape) < 2 or labels.size == 0:
            return
        n_classes = int(pred_shape[1])
        data = self._loop_data
        known = None if data is None else data.label_range
        if known is not None and labels.ndim == 1:
            lo, hi = known  # found once for the whole label array
            if 0 <= lo and hi < n_classes:
                return
            lo, hi = int(labels.min()), int(labels.max())  # the bad label may be in another batch
        else:
            lo, hi = int(labels.min()), int(labels.max())
        if lo < 0:  # -100 is the losses' ignore_index: leave it out
            xp = backend.get_array_module(labels)
            valid = labels != -100
            lo, hi = int(xp.where(valid, labels, 0).min()), int(xp.where(valid, labels, 0).max())
        if lo < 0 or hi >= n_classes:
            bad = lo if lo < 0 else hi
            raise ValueError(f"Trainer: class label {bad} is out of range for the model's {n_classes} outputs "
                             f"(labels must be in 0..{n_classes - 1}; {self._where()}, outputs of shape {pred.shape})")

    def _class_weights_for(self, pred, y):
        """Per-sample weights from the class-weight vector for this batch's labels."""
        vec, from_dict = self._class_weight
        xp = backend.get_array_module(y.data)
        labels = y.data
        if self.loss.name == "bce_with_logits":
            if labels.size != labels.shape[0]:
                raise ValueError("Trainer.fit: class_weight with 'bce_with_logits' needs one 0/1 target per "
                                 f"sample, got targets of shape {y.shape}")
            labels = (labels.reshape(-1) > 0.5).astype(xp.int64)
            n_classes = 2
        else:
            if labels.dtype.kind == "f":
                labels = labels.argmax(axis=1)
            if labels.ndim != 1:
                raise ValueError(f"Trainer.fit: class_weight needs one class label per sample, got targets of shape "
                                 f"{y.shape}; use sample_weight for per-element weighting")
            n_classes = int(pred.shape[1]) if pred.ndim >= 2 else 2
        if not from_dict and vec.shape[0] != n_classes:
            raise ValueError(f"Trainer.fit: class_weight has {vec.shape[0]} weights but the model has {n_classes} "
                             "classes; give one weight per class (or a dict {class: weight})")
        if from_dict and vec.shape[0] < n_classes:
            vec = np.concatenate([vec, np.ones(n_classes - vec.shape[0], dtype=np.float32)])
        table = backend.to_device(vec, backend.device_of(labels))
        return table[xp.clip(labels, 0, table.shape[0] - 1)]

    def compute_loss(self, pred, y, sample_weight=None, class_weight: bool = False):
        """The (weighted) mean loss of a batch. ``class_weight=True`` applies fit's class weights."""
        if y is None:
            raise ValueError("Trainer: the batch has no targets, but the loss needs them; batches must be (x, y) "
                             "(override train_step to train without targets)")
        if self.loss.uses_class_indices:  # targets taken as they are: check the labels
            self._check_class_targets(pred, y)
        else:
            y = self.loss.prepare_target(pred, y)
        weight = None if sample_weight is None else sample_weight.data.reshape(-1)
        if class_weight and self._class_weight is not None:
            cw = self._class_weights_for(pred, y)
            weight = cw if weight is None else weight * cw.astype(weight.dtype)
        try:
            return self.loss(pred, y, weight)
        except (ValueError, TypeError, IndexError, RuntimeError) as exc:
            raise _rebuild(exc, f"Trainer: computing the loss {self.loss.name!r} for outputs of shape {pred.shape} "
                                f"and targets of shape {y.shape} ({y.dtype}) failed ({self._where()}): {exc}") from exc

    def update_metrics(self, pred, y, sample_weight=None) -> None:
        """Feed a batch to the metrics being tracked (training or validation ones)."""
        if not self._active_metrics or y is None:
            return
        y = self.loss.prepare_target(pred, y)
        pred = pred.detach() if isinstance(pred, Tensor) else pred
        for metric in self._active_metrics:
            metric.update(pred, y, sample_weight)

    # ------------------------------------------------------------------------------ optimisation
    def backward(self, loss) -> None:
        """``loss.backward()``, scaled for gradient accumulation; the loss is remembered for the
        ``on_before_optimizer_step`` checks (TerminateOnNaN)."""
        self.step_losses.append(Tensor._make(loss.data))  # detached
        (loss * self._loss_scale if self._loss_scale != 1.0 else loss).backward()

    def optimizer_step(self, optimizer=None) -> bool:
        """Apply the accumulated gradients with ``optimizer`` (default: the trainer's) when this batch
        ends an accumulation group: ``on_before_optimizer_step`` callbacks (they see the raw, unclipped
        gradients, and may cancel the step by setting ``stop_training``), clipping to
        ``grad_clip_norm``, ``step()``, ``zero_grad()`` and, with ``scheduler_interval="step"``, the
        scheduler. Returns whether the step was applied."""
        optimizer = self.optimizer if optimizer is None else optimizer
        if optimizer is None:
            raise ValueError("Trainer: no optimizer; pass one to Trainer(model, optimizer, ...)")
        if not self._is_boundary:
            return False
        if self.callbacks.callbacks:  # (a CallbackList with no callbacks has nothing to call)
            self.callbacks.on_before_optimizer_step(optimizer)
        if self.stop_training:
            self.step_losses = []
            return False
        if self._grad_clip_norm is not None:
            from deepwise.optim import clip_grad_norm_  # noqa: PLC0415

            params = [p for group in optimizer.param_groups for p in group["params"]]
            clip_grad_norm_(params, self._grad_clip_norm)
        optimizer.step()
        optimizer.zero_grad()
        if optimizer is self.optimizer and self.scheduler is not None and self.scheduler_interval == "step":
            self.scheduler.step()
        self.step_losses = []
        return True

    # ------------------------------------------------------------------------------ the steps
    def train_step(self, batch) -> dict:
        """One training batch: forward, (weighted) loss, backward, optimizer step, metrics. Returns the
        batch's logs, ``{"loss": loss}``; the Trainer averages every returned value over the epoch
        (weighted by batch size) and adds the metrics. Override for other training schemes."""
        x, y, w = self.unpack_batch(batch)
        pred = self.forward(x)
        loss = self.compute_loss(pred, y, w, class_weight=True)
        self.backward(loss)
        self.optimizer_step()
        self.update_metrics(pred, y)
        return {"loss": loss}

    def eval_step(self, batch) -> dict:
        """One validation / evaluation batch (eval mode, no graph): loss and metrics, no class weights."""
        x, y, w = self.unpack_batch(batch)
        pred = self.forward(x)
        loss = self.compute_loss(pred, y, w)
        self.update_metrics(pred, y)
        return {"loss": loss}

    def predict_step(self, batch):
        """The model's output for one batch (its x; targets in the batch are ignored)."""
        x, _, _ = self.unpack_batch(batch)
        return self.forward(x)
