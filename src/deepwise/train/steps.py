"""The checks and conversions behind one batch, as plain functions with explicit arguments.

``Trainer.unpack_batch`` / ``forward`` / ``compute_loss`` (the building blocks of ``train_step``,
``eval_step`` and ``predict_step``) call these; ``where`` is the ``LoopState.where()`` text that
error messages name ("epoch 2, batch 3"), asked of the ``state`` passed in only when there is an
error to report.
"""

from __future__ import annotations

import math

import numpy as np

from deepwise import backend
from deepwise.tensor import Tensor

__all__ = [
    "batch_size_of", "check_class_targets", "check_finite", "class_weights_for", "forward_error_message",
    "move_to", "rebuild", "split_batch",
]


def rebuild(exc: BaseException, message: str) -> BaseException:
    """The same exception type with a fuller message; for a type that cannot be built from a message,
    its nearest built-in base class (so ``except ValueError`` still catches it)."""
    for cls in type(exc).__mro__:
        if not issubclass(cls, Exception):
            break
        if cls is not type(exc) and cls.__module__ != "builtins":
            continue
        try:
            return cls(message)
        except Exception:
            continue
    return RuntimeError(message)


def batch_size_of(batch) -> int:
    """Number of samples in a batch (the first dimension of its first tensor)."""
    if type(batch) is tuple and batch and type(batch[0]) is Tensor:  # what the DataLoader yields
        shape = batch[0].array.shape
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


def move_to(t, device):
    """``t`` (a Tensor or array; None stays None) as a Tensor on ``device``."""
    if t is None:
        return None
    if not isinstance(t, Tensor):
        t = Tensor(t)
    if device.type == "cpu" and isinstance(t.array, np.ndarray):
        return t  # the common case, without building a Device to compare
    return t if t.device == device else t.to(device)


def split_batch(batch) -> tuple:
    """The parts of a batch: ``x``, ``(x,)``, ``(x, y)`` or ``(x, y, sample_weight)``."""
    if isinstance(batch, (tuple, list)) and 1 <= len(batch) <= 3:
        return tuple(batch)
    if isinstance(batch, Tensor) or backend.is_array(batch):
        return (batch,)
    raise TypeError(f"Trainer: a batch must be x, (x,), (x, y) or (x, y, sample_weight), got "
                    f"{type(batch).__name__}" + (f" of length {len(batch)}" if isinstance(batch, (tuple, list))
                                                 else "") + "; override train_step for other layouts")


def check_finite(t: Tensor, what: str, state) -> None:
    """Raise if a float tensor holds NaN / inf, naming ``what`` ("inputs (x)"), where the loop is
    (``state``, the ``LoopState``) and the first bad sample. Skipped when ``state.data`` was checked
    whole."""
    if not backend.is_floating(t.dtype) or t.array.size == 0:
        return
    data = state.data
    if data is not None and data.inputs_finite:
        return  # checked once for the whole array
    xp = backend.get_array_module(t.array)
    if math.isfinite(float(t.array.sum())):  # a sum is finite only if every element is
        return
    bad = ~xp.isfinite(t.array.reshape(t.shape[0], -1) if t.ndim > 1 else t.array.reshape(-1, 1))
    rows = bad.any(axis=1)
    if not bool(rows.any()):  # the sum overflowed on huge but finite values
        return
    sample = int(rows.argmax())
    kind = "NaN" if bool(xp.isnan(t.array).any()) else "infinite values"
    raise ValueError(f"Trainer: the {what} of {state.where()} contain {kind} (first in sample {sample} of the "
                     f"batch, batch shape {t.shape}); clean the data (e.g. numpy.nan_to_num) or drop those "
                     "samples")


def forward_error_message(model, exc, x, where: str) -> str:
    """What ``Trainer.forward`` says when the model fails: the batch shape and, when the first layer's
    input size does not match, that layer's name and expected vs given size."""
    shape = tuple(getattr(x, "shape", ()))
    msg = f"Trainer: the model failed on an input batch of shape {shape} ({where}): {exc}"
    for name, module in model.named_modules():
        if hasattr(module, "in_features"):
            expected, given, dim = module.in_features, (shape[-1] if shape else None), "features (last dimension)"
        elif hasattr(module, "in_channels"):
            expected, given, dim = module.in_channels, (shape[1] if len(shape) > 1 else None), "channels (dim 1)"
        else:
            continue
        if given is not None and given != expected:
            label = name if name else "(the model itself)"
            msg += (f". The model's first layer {label!r} ({type(module).__name__}) expects {expected} input "
                    f"{dim}, but the batch has {given}")
        break
    return msg


def check_class_targets(loss_name: str, pred, y, state) -> None:
    """Targets of a loss that takes class indices (``cross_entropy``, ``nll``): integer labels in range
    (or class probabilities for cross-entropy). ``state``: the ``LoopState``, for where the loop is
    and the (min, max) of all the labels when known for the whole data (``FitData.label_range``)."""
    labels, pred_shape = y.array, pred.array.shape
    if labels.dtype.kind not in "iu":
        if loss_name == "cross_entropy" and backend.is_floating(labels.dtype) and labels.shape == pred_shape:
            return  # class probabilities
        raise TypeError(f"Trainer: the loss {loss_name!r} needs integer class labels, got {y.dtype} "
                        f"targets of shape {y.shape} ({state.where()}); convert them, e.g. y.astype('int64')")
    if len(pred_shape) < 2 or labels.size == 0:
        return
    n_classes = int(pred_shape[1])
    label_range = None if state.data is None else state.data.label_range
    if label_range is not None and labels.ndim == 1:
        lo, hi = label_range  # found once for the whole label array
        if 0 <= lo and hi < n_classes:
            return
    lo, hi = int(labels.min()), int(labels.max())  # (the bad label may be in another batch)
    if lo < 0:  # -100 is the losses' ignore_index: leave it out
        xp = backend.get_array_module(labels)
        valid = labels != -100
        lo, hi = int(xp.where(valid, labels, 0).min()), int(xp.where(valid, labels, 0).max())
    if lo < 0 or hi >= n_classes:
        bad = lo if lo < 0 else hi
        raise ValueError(f"Trainer: class label {bad} is out of range for the model's {n_classes} outputs "
                         f"(labels must be in 0..{n_classes - 1}; {state.where()}, outputs of shape {pred.shape})")


def class_weights_for(loss_name: str, class_weight: tuple, pred, y):
    """Per-sample weights for this batch's labels from ``class_weight`` = (vector, given as a dict)."""
    vec, from_dict = class_weight
    xp = backend.get_array_module(y.array)
    labels = y.array
    if loss_name == "bce_with_logits":
        if labels.size != labels.shape[0]:
            raise ValueError("Trainer.fit: class_weight with 'bce_with_logits' needs one 0/1 target per "
                             f"sample, got targets of shape {y.shape}")
        labels = (labels.reshape(-1) > 0.5).astype(xp.int64)
        n_classes = 2
    else:
        if backend.is_floating(labels.dtype):
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
