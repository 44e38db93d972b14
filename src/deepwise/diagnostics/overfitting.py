"""``OverfittingAdvisor``: says when a model starts to memorise its training data, and what to do.

    advisor = dw.callbacks.OverfittingAdvisor(patience=3)
    trainer.fit(x, y, epochs=60, validation_split=0.2, callbacks=[advisor])
    advisor.onset_epoch      # the epoch with the best validation loss, after which it rose (0-based)
    advisor.diagnoses        # [Diagnosis(kind="overfitting", message=..., remedies=[...], step=onset)]

Overfitting shows in the two loss curves: the training loss keeps falling while the validation loss,
after reaching its lowest point, rises. From then on the model learns details of the training
samples that do not carry over to new data. The advisor watches ``monitor`` (``val_loss``) and its
training counterpart (``loss``); when ``monitor`` has not improved for ``patience`` epochs while the
training value kept improving, and the rise is larger than the curve's own epoch-to-epoch noise
(``noise_factor`` times ``epoch_noise``: a flat, jittery validation loss is not overfitting), it
reports the epoch where ``monitor`` was best (the onset), how the gap between training and
validation grew since, and the one or two cures that fit *this* run best: it looks at how the run
keeps its best weights (EarlyStopping, ModelCheckpoint), the model's Dropout layers, the
optimizer's weight decay, convolutions (data augmentation) and the parameters per training sample.

If ``monitor`` later improves again, the onset moves: ``onset_epoch`` is always the epoch of the best
value before the latest rise. ``diagnose_overfitting(history)`` runs the same analysis on a finished
History (for a report), without the model-specific advice unless you pass the model and trainer.
"""

from __future__ import annotations

import math

from deepwise.diagnostics.gradients import Diagnosis
from deepwise.train.callbacks import Callback

__all__ = ["OverfittingAdvisor", "diagnose_overfitting", "epoch_noise", "no_overfitting_fact"]

_MIN_EPOCHS = 6
_MAX_HINTS = ("acc", "precision", "recall", "f1", "r2", "auc")


def _mode(monitor: str, mode: str) -> str:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"OverfittingAdvisor: mode must be 'auto', 'min' or 'max', got {mode!r}")
    if mode != "auto":
        return mode
    return "max" if any(h in monitor.lower() for h in _MAX_HINTS) else "min"


def epoch_noise(values) -> float:
    """The epoch-to-epoch noise of a curve: the standard deviation of one value around the local trend,
    estimated from the second differences v[t+1] - 2 v[t] + v[t-1] (a straight stretch of the curve
    gives 0, a bend gives one large value), with the largest 20% left out so that the bends of the first
    steep epochs and of a turn do not count as noise; 0.0 for fewer than 4 values."""
    finite = [float(v) for v in values if v is not None and math.isfinite(v)]
    if len(finite) < 4:
        return 0.0
    second = sorted(abs(a - 2 * b + c) for a, b, c in zip(finite, finite[1:], finite[2:]))
    kept = second[:max(2, math.ceil(0.8 * len(second)))]
    # 0.6616: the RMS of the central 80% of a standard normal; sqrt 6: a second difference has the
    # variance of six values' noise (1 + 4 + 1)
    return math.sqrt(sum(d * d for d in kept) / len(kept)) / 0.6616 / math.sqrt(6.0)


class _Watch:
    """The incremental analysis of one pair of curves (validation ``monitor`` and its training twin).

    Overfitting is declared when ``monitor`` has not improved for ``patience`` epochs, the training
    value is better than at the best epoch, and each of the last ``patience`` validation values is
    worse than the best mean of any earlier ``patience`` epochs by more than ``noise_factor`` times the
    curve's own epoch-to-epoch noise (``epoch_noise``), and by more than ``min_delta`` and 0.1% of the
    best value: a rise a run's ordinary jitter could produce is no alarm. Fewer than 6 epochs never
    make an alarm: the noise cannot be told from a rise yet."""

    def __init__(self, monitor, train_monitor, mode, patience, min_delta, noise_factor=3.0):
        self.monitor, self.train_monitor, self.mode = monitor, train_monitor, mode
        self.patience, self.min_delta, self.noise_factor = patience, min_delta, noise_factor
        self.best = None
        self.best_epoch = None
        self.train_at_best = None
        self.onset_epoch = None  # set while overfitting
        self.values = []  # (epoch, val, train)
        self.rise = None  # (smoothed best, smoothed now, noise) when the onset was declared

    def _better(self, a, b) -> bool:
        if b is None:
            return True
        return a < b - self.min_delta if self.mode == "min" else a > b + self.min_delta

    def _rise(self):
        """(best ``patience``-epoch mean, best of the last ``patience`` values, noise, threshold), all as
        loss-like numbers (score-like curves are negated)."""
        sign = 1.0 if self.mode == "min" else -1.0
        s = [sign * v for _, v, _ in self.values]
        p = self.patience
        recent = min(s[-p:])
        best = min(sum(s[i:i + p]) / p for i in range(0, len(s) - p))
        noise = epoch_noise(s)
        threshold = self.noise_factor * noise + max(self.min_delta, 1e-3 * abs(self.best))
        return best, recent, noise, threshold

    def update(self, epoch, val, train) -> str | None:
        """Feed one epoch; returns "onset" when overfitting is first seen, "recovered" when the
        monitored value beats its old best after an onset, else None."""
        if val is None or math.isnan(val):
            return None
        self.values.append((epoch, val, train))
        if self._better(val, self.best):
            recovered = self.onset_epoch is not None
            self.best, self.best_epoch, self.train_at_best = val, epoch, train
            self.onset_epoch = None
            return "recovered" if recovered else None
        if self.onset_epoch is not None or epoch - self.best_epoch < self.patience:
            return None
        if train is None or self.train_at_best is None or math.isnan(train):
            return None
        if len(self.values) < _MIN_EPOCHS:  # too few epochs to tell a rise from the curve's noise
            return None
        train_improving = train < self.train_at_best if self.mode == "min" else train > self.train_at_best
        if not train_improving:
            return None
        best, recent, noise, threshold = self._rise()
        if recent - best <= threshold:
            return None
        self.onset_epoch = self.best_epoch
        self.rise = (best, recent, noise)
        return "onset"

    def gap(self, epoch_index=-1):
        """Validation minus training (loss-like) or training minus validation (score-like)."""
        _, val, train = self.values[epoch_index]
        return (val - train) if self.mode == "min" else (train - val)


def _describe(watch: _Watch) -> str:
    epoch, val, train = watch.values[-1]
    onset = watch.onset_epoch
    at = next(v for v in watch.values if v[0] == onset)
    gap_then = (at[1] - at[2]) if watch.mode == "min" else (at[2] - at[1])
    gap_now = watch.gap()
    direction = "risen" if watch.mode == "min" else "fallen"
    best, recent, noise = watch.rise
    p = watch.patience
    beyond = (f"{(recent - best) / noise:.0f} times its epoch-to-epoch noise (+-{noise:.2g})" if noise > 0
              else "a steady change, not noise")
    return (
        f"Overfitting: {watch.monitor} was best at epoch {onset + 1} ({at[1]:.4g}) and has {direction} since, to "
        f"{val:.4g} at epoch {epoch + 1} (each of the last {p} epochs beyond {abs(recent):.4g}, against the best "
        f"{p}-epoch mean {abs(best):.4g}: {beyond}), while the training {watch.train_monitor} kept improving "
        f"({at[2]:.4g} -> {train:.4g}). The gap between training and validation grew from {gap_then:.3g} to "
        f"{gap_now:.3g}: the model is learning details of its training samples that do not carry over to new "
        f"data, and the weights of epoch {onset + 1} generalise best."
    )


def no_overfitting_fact(values, monitor: str = "val_loss", mode: str = "min", patience: int = 3,
                        noise_factor: float = 3.0) -> str:
    """The measured numbers behind a "no overfitting" verdict on ``values`` (the monitored curve)."""
    pick = min if mode == "min" else max
    best = pick(range(len(values)), key=values.__getitem__)
    noise = epoch_noise(values)
    where = (f"{monitor} was best at epoch {best + 1} of {len(values)} ({values[best]:.4g}) and ended at "
             f"{values[-1]:.4g}")
    if len(values) < _MIN_EPOCHS:
        return f"{where}; {len(values)} epochs are too few to tell a rise from noise (it takes {_MIN_EPOCHS})"
    return (f"{where}; an alarm needs {patience} epochs each beyond {noise_factor:g}x its epoch-to-epoch "
            f"noise (+-{noise:.2g}) while the training value improves")


def _dropout_layers(model):
    out = []
    for name, m in model.named_modules():
        if "Dropout" in type(m).__name__:
            out.append((name, type(m).__name__, getattr(m, "p", None)))
    return out


def _keeps_best_weights(trainer) -> bool | None:
    """True when the run keeps the weights of its best epoch (EarlyStopping with restore_best_weights, or
    a ModelCheckpoint that saves only the best), False when it has an EarlyStopping without restoring,
    None when it has neither."""
    callbacks = list(getattr(trainer, "callbacks", ()))
    names = [type(cb).__name__ for cb in callbacks]
    if any(type(cb).__name__ == "EarlyStopping" and getattr(cb, "restore_best_weights", False) for cb in callbacks):
        return True
    if any(type(cb).__name__ == "ModelCheckpoint" and getattr(cb, "save_best_only", False) for cb in callbacks):
        return True
    return False if "EarlyStopping" in names else None


def _cures(model=None, trainer=None, onset_epoch=None, limit: int = 2) -> list[str]:
    """The one or two remedies that fit this model and run best, each naming the deepwise argument:
    keep the best epoch's weights if the run does not, then the regulariser this model lacks most
    (dropout, weight decay, augmentation, a smaller model, more data), in that order."""
    cures = []
    if trainer is not None:
        keeps = _keeps_best_weights(trainer)
        if keeps is None:
            where = "" if onset_epoch is None else f" (here: the weights of epoch {onset_epoch + 1})"
            cures.append("stop at the best epoch: callbacks.EarlyStopping(monitor='val_loss', patience=5, "
                         f"restore_best_weights=True){where}")
        elif keeps is False:
            cures.append("your EarlyStopping keeps the last weights: pass restore_best_weights=True to get those "
                         "of the best epoch back")
    if model is not None:
        drops = _dropout_layers(model)
        ps = sorted({p for _, _, p in drops if p is not None})
        if not drops:
            cures.append("add dropout between the hidden layers: nn.Dropout(p=0.2 to 0.5) after each activation "
                         "(nn.Dropout2d for convolution feature maps)")
        elif ps and max(ps) < 0.5:
            cures.append(f"raise the dropout rate (the model's Dropout layers use p={', '.join(f'{p:g}' for p in ps)})")
    if trainer is not None and getattr(trainer, "optimizer", None) is not None:
        opt = trainer.optimizer
        decays = [g.get("weight_decay", 0.0) or 0.0 for g in opt.param_groups]
        name = type(opt).__name__
        if all(d == 0 for d in decays):
            cures.append(f"add weight decay: optim.AdamW(model.parameters(), lr=..., weight_decay=1e-2) "
                         f"(or {name}(..., weight_decay=5e-4)); it is 0 in this {name}")
        elif name == "Adam":
            cures.append(f"Adam's weight_decay ({max(decays):g}) is an L2 term scaled away by Adam's step sizes: "
                         "optim.AdamW applies the decay directly and regularises better")
        else:
            cures.append(f"raise the weight decay (weight_decay={max(decays):g} now)")
    if model is not None:
        kinds = {type(m).__name__ for m in model.modules()}
        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        history = getattr(trainer, "history", None) if trainer is not None else None
        samples = history.params.get("samples") if history is not None else None
        if samples and n_params / samples >= 10:
            cures.append(f"use a smaller model: {n_params:,} trainable parameters for {samples:,} training samples "
                         f"({n_params / samples:,.0f} per sample) is room to memorise each one")
        if any(k.startswith("Conv") for k in kinds):
            cures.append("augment the training images so no two epochs see the same pixels: "
                         "TensorDataset(x, y, transform=data.transforms.Compose([data.transforms.RandomShift(2), "
                         "data.transforms.GaussianNoise(0.05)]))")
        elif samples:
            cures.append(f"collect more training data ({samples:,} samples now), or augment the inputs with noise "
                         "(TensorDataset(x, y, transform=data.transforms.GaussianNoise(0.05)))")
    if not cures:
        cures = ["stop at the best epoch: callbacks.EarlyStopping(monitor='val_loss', restore_best_weights=True)",
                 "regularise: nn.Dropout(p) between hidden layers, or optim.AdamW(..., weight_decay=1e-2)"]
    return cures[:limit]


class OverfittingAdvisor(Callback):
    """Watch the training and validation curves and explain when and why the model overfits
    (see the module docstring).

    Args:
        monitor: the validation quantity (``"val_loss"``, ``"val_accuracy"``...).
        patience: epochs without improvement of ``monitor`` (while the training value improves)
            before overfitting is declared.
        min_delta: smallest change that counts as an improvement.
        mode: ``"min"``, ``"max"`` or ``"auto"`` (max for accuracy-like names).
        train_monitor: the training twin of ``monitor`` (default: ``monitor`` without ``val_``).
        noise_factor: how many times the curve's epoch-to-epoch noise the rise must exceed.
        verbose: print the diagnosis when first found.
    """

    def __init__(self, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0, mode: str = "auto",
                 train_monitor: str | None = None, verbose: int = 1, noise_factor: float = 3.0):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"OverfittingAdvisor: patience must be an int >= 1, got {patience!r}")
        if not monitor.startswith("val_") and train_monitor is None:
            raise ValueError(f"OverfittingAdvisor: monitor {monitor!r} is not a validation quantity (val_...); "
                             "overfitting shows as a gap between training and validation, so watch e.g. 'val_loss' "
                             "(and pass validation_data= or validation_split= to fit)")
        self.monitor = monitor
        self.train_monitor = train_monitor or monitor[len("val_"):]
        self.mode = _mode(monitor, mode)
        self.patience = patience
        self.min_delta = abs(float(min_delta))
        if isinstance(noise_factor, bool) or not isinstance(noise_factor, (int, float)) or noise_factor < 0:
            raise ValueError(f"OverfittingAdvisor: noise_factor must be a number >= 0, got {noise_factor!r}")
        self.noise_factor = float(noise_factor)
        self.verbose = verbose
        self.diagnoses: list[Diagnosis] = []
        self._watch = _Watch(self.monitor, self.train_monitor, self.mode, patience, self.min_delta, self.noise_factor)

    @property
    def onset_epoch(self) -> int | None:
        """The epoch (0-based, as in History.epoch) with the best ``monitor`` before the current rise;
        None while the model is not overfitting."""
        return self._watch.onset_epoch

    @property
    def best_epoch(self) -> int | None:
        return self._watch.best_epoch

    @property
    def overfitting(self) -> bool:
        return self._watch.onset_epoch is not None

    @property
    def gap(self) -> float | None:
        """The current gap between training and validation (validation minus training for a loss)."""
        return self._watch.gap() if self._watch.values else None

    @property
    def diagnosis(self) -> Diagnosis | None:
        """The current diagnosis (None when not overfitting)."""
        return self.diagnoses[-1] if self.diagnoses and self.overfitting else None

    def diagnosis_text(self) -> list[str]:
        """The diagnosis, or one line with the measured numbers when the model is not overfitting."""
        if self.diagnosis is not None:
            return [str(self.diagnosis)]
        values = [v for _, v, _ in self._watch.values]
        if len(values) < 2:
            return []
        fact = no_overfitting_fact(values, self.monitor, self.mode, self.patience, self.noise_factor)
        return [f"OverfittingAdvisor found no overfitting: {fact}."]

    def on_train_begin(self, logs=None):
        planned = self.trainer.state.log_names if self.trainer is not None else None
        if planned and self.monitor not in planned:
            raise ValueError(f"OverfittingAdvisor monitors {self.monitor!r}, but this fit logs only {list(planned)}: "
                             "pass validation_data= or validation_split= to fit")
        self.diagnoses = []
        self._watch = _Watch(self.monitor, self.train_monitor, self.mode, self.patience, self.min_delta,
                             self.noise_factor)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise KeyError(f"OverfittingAdvisor: the epoch logs have no {self.monitor!r}; they hold {list(logs)}")
        val = float(logs[self.monitor])
        train = float(logs[self.train_monitor]) if self.train_monitor in logs else None
        event = self._watch.update(epoch, val, train)
        if event == "onset":
            onset = self._watch.onset_epoch
            d = Diagnosis("overfitting", _describe(self._watch), _cures(self.model, self.trainer, onset),
                          step=onset, layers=[], epoch=epoch)
            self.diagnoses.append(d)
            if self.verbose:
                print(f"\nOverfittingAdvisor (epoch {epoch + 1}): {d}", flush=True)
        elif event == "recovered" and self.verbose:
            print(f"\nOverfittingAdvisor (epoch {epoch + 1}): {self.monitor} improved again ({val:.4g}); "
                  "the earlier overfitting warning is withdrawn for now", flush=True)

    def state_dict(self) -> dict:
        w = self._watch
        return {"best": w.best, "best_epoch": w.best_epoch, "train_at_best": w.train_at_best,
                "onset_epoch": w.onset_epoch, "values": [list(v) for v in w.values],
                "rise": None if w.rise is None else list(w.rise),
                "diagnoses": [d.to_dict() for d in self.diagnoses]}

    def load_state_dict(self, state: dict) -> None:
        w = self._watch
        w.best, w.best_epoch, w.train_at_best = state["best"], state["best_epoch"], state["train_at_best"]
        w.onset_epoch = state["onset_epoch"]
        w.values = [tuple(v) for v in state["values"]]
        w.rise = tuple(state["rise"]) if state.get("rise") is not None else None
        self.diagnoses = [Diagnosis.from_dict(d) for d in state["diagnoses"]]


def diagnose_overfitting(history, monitor: str = "val_loss", patience: int = 3, min_delta: float = 0.0,
                         mode: str = "auto", train_monitor: str | None = None, model=None,
                         trainer=None, noise_factor: float = 3.0) -> Diagnosis | None:
    """The overfitting diagnosis of a finished run (a ``History`` or its ``.history`` dict), or None.
    Pass ``model`` / ``trainer`` for advice about this model; without them the advice is generic."""
    columns = history.history if hasattr(history, "history") else history
    epochs = list(getattr(history, "epoch", None) or range(len(columns.get(monitor, []))))
    if monitor not in columns:
        raise KeyError(f"diagnose_overfitting: the history has no {monitor!r}; it holds {list(columns)}")
    train_monitor = train_monitor or (monitor[len("val_"):] if monitor.startswith("val_") else None)
    watch = _Watch(monitor, train_monitor, _mode(monitor, mode), patience, abs(float(min_delta)), float(noise_factor))
    train_values = columns.get(train_monitor, [None] * len(epochs)) if train_monitor else [None] * len(epochs)
    for epoch, val, train in zip(epochs, columns[monitor], train_values):
        watch.update(epoch, val, train)
    if watch.onset_epoch is None:
        return None
    return Diagnosis("overfitting", _describe(watch), _cures(model, trainer, watch.onset_epoch),
                     step=watch.onset_epoch, epoch=watch.values[-1][0])
