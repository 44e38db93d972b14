"""``GradientMonitor``: is the signal getting through? Gradient and activation health during ``fit``.

    monitor = dw.callbacks.GradientMonitor(every=20)
    trainer.fit(x, y, epochs=10, callbacks=[monitor])
    monitor.diagnoses          # [Diagnosis(kind="vanishing", message=..., remedies=[...], step=0), ...]
    history.history["grad_norm/0.weight"]       # one float per epoch

Every ``every`` optimizer steps the monitor measures, per parameter tensor (named as in
``model.named_parameters()``, so grouped by module): the L2 norm of its gradient (before clipping),
the L2 norm of its weights, and the update/weight ratio ||w_after - w_before|| / ||w_before|| of the
step. Forward hooks on the ReLU, Sigmoid and Tanh modules measure, on the same batch, the share of
dead ReLU units (zero for every sample of the batch) and of saturated sigmoid/tanh outputs (within
0.01 of the bounds). Each measurement is a dict in ``monitor.records``; at the end of each epoch the
epoch's mean of each quantity goes into the epoch logs, and so into ``trainer.history`` as columns
``grad_norm/<param>``, ``weight_norm/<param>``, ``update_ratio/<param>``, ``grad_norm/total``,
``dead_relu/<module>`` and ``saturated/<module>``.

Four problems are recognised, each explained in plain words with remedies (``Diagnosis``), printed
the first time it is seen (``verbose=1``) and kept in ``monitor.diagnoses``:

- vanishing gradients: the gradient RMS of the first weight matrix is ``vanishing_ratio`` (1e-3) or
  less of the last one's — the early layers barely learn;
- exploding gradients: a non-finite gradient, a total norm above ``spike_factor`` times the median of
  the last ``window`` measurements *and* above every norm of the first ``window`` measurements (near
  convergence gradients shrink, and a batch whose norm jumps 20x but stays below the norms of early
  training is noise, not an explosion), or an update larger than ``max_update_ratio`` times the weights.
  The advice follows the fit's clipping (``trainer.state.grad_clip_norm``): a run that does not clip
  is told to; one that does is told what its clipping can and cannot do;
- dead ReLUs: a ReLU layer where ``dead_threshold`` (a quarter) or more of the units output 0 for
  every sample of the batch;
- saturated sigmoid/tanh: ``saturation_threshold`` (half) or more of a hidden layer's outputs within
  0.01 of the bounds (an activation producing the model's output is not checked).

All but non-finite gradients and spikes must hold on ``patience`` consecutive measurements. Hidden
activations computed with functions (``F.relu(x)`` in a forward) rather than modules are not seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from deepwise import backend, nn
from deepwise.train.callbacks import Callback

__all__ = ["DEAD_THRESHOLD", "SATURATION_THRESHOLD", "Diagnosis", "GradientMonitor", "dead_relu_remedies",
           "layer_series", "module_types", "unit_findings"]

# a quarter of a layer's units that never fire is capacity the model pays for and does not use
DEAD_THRESHOLD = 0.25
SATURATION_THRESHOLD = 0.5


@dataclass
class Diagnosis:
    """One problem found: ``kind`` ("vanishing", "exploding", "dead_relu", "saturated", "overfitting"),
    ``message`` (what happens and why, in plain words), ``remedies`` (what to change, with the deepwise
    argument that does it), ``step`` (the optimizer step, or for overfitting the epoch, where it was
    first seen), ``layers`` (the layers or parameters concerned) and ``epoch``."""

    kind: str
    message: str
    remedies: list = field(default_factory=list)
    step: int = 0
    layers: list = field(default_factory=list)
    epoch: int | None = None

    def __str__(self) -> str:
        text = self.message
        if self.remedies:
            text += " What helps: " + "; ".join(self.remedies) + "."
        return text

    def to_dict(self) -> dict:
        return {"kind": self.kind, "message": self.message, "remedies": list(self.remedies), "step": self.step,
                "layers": list(self.layers), "epoch": self.epoch}

    @classmethod
    def from_dict(cls, d: dict) -> Diagnosis:
        return cls(d["kind"], d["message"], list(d.get("remedies", [])), int(d.get("step", 0)),
                   list(d.get("layers", [])), d.get("epoch"))


def _norms(arrays) -> list[float]:
    """L2 norms of arrays (in float64, so huge values do not overflow), with one transfer to host."""
    if not arrays:
        return []
    xp = backend.get_array_module(arrays[0])
    vals = xp.stack([xp.sqrt(xp.sum(xp.square(a.astype(xp.float64).ravel()))) for a in arrays])
    host = vals.get() if hasattr(vals, "get") else vals
    return [float(v) for v in host]


SATURATED_REMEDIES = [
    "normalise the inputs (mean 0, variance 1: data.transforms.Normalize) and initialise with Xavier init "
    "(nn.init.xavier_uniform_(layer.weight))",
    "use ReLU-family activations in hidden layers (nn.ReLU(), nn.GELU()), or normalise before the activation "
    "(nn.BatchNorm1d, nn.LayerNorm)",
]


def dead_relu_remedies(trainer=None) -> list[str]:
    """The two cures for dead ReLUs: an activation that keeps a gradient, and a smaller step."""
    lr = None
    opt = getattr(trainer, "optimizer", None)
    if opt is not None and opt.param_groups:
        lr = opt.param_groups[0].get("lr")
    now = f" (it is {lr:g} now)" if isinstance(lr, (int, float)) else ""
    return ["use an activation with a slope for negative inputs: nn.LeakyReLU(0.01), nn.ELU() or nn.GELU()",
            f"lower the learning rate{now}, the usual cause of units pushed to negative inputs for good"]


def _columns(history) -> dict:
    return history.history if hasattr(history, "history") else dict(history)


def layer_series(history, quantity: str) -> dict:
    """``{layer: [value per epoch]}`` of the ``quantity/<layer>`` columns (NaN for epochs not measured)."""
    cols = _columns(history)
    prefix = quantity + "/"
    return {k[len(prefix):]: [float("nan") if v is None else float(v) for v in vals]
            for k, vals in cols.items() if k.startswith(prefix)}


def module_types(model) -> dict:
    """``{module name: class name}`` of a model's submodules (``{"0": "Conv2d", "1": "ReLU", ...}``)."""
    return {name: type(m).__name__ for name, m in model.named_modules() if name}


def _last(values):
    finite = [(i, v) for i, v in enumerate(values) if math.isfinite(v)]
    return finite[-1] if finite else (None, float("nan"))


def _label(name, layer_types):
    kind = (layer_types or {}).get(name)
    return f"{name} ({kind})" if kind else name


def _share_finding(kind, series, threshold, layer_types, what, remedies, explain):
    flagged, recovered = [], []
    for name, values in series.items():
        end_epoch, end = _last(values)
        if end_epoch is None:
            continue
        peak_epoch = max(range(len(values)), key=lambda i: values[i] if math.isfinite(values[i]) else -1.0)
        peak = values[peak_epoch]
        if end >= threshold:
            lo = min(v for v in values if math.isfinite(v))
            flagged.append((name, end, end_epoch, lo, peak))
        elif peak >= threshold:
            recovered.append((name, peak, peak_epoch, end))
    if not flagged:
        return None, recovered
    parts = [f"{_label(n, layer_types)}: {end:.0%} at the last epoch ({lo:.0%} to {peak:.0%} over the run)"
             for n, end, _, lo, peak in flagged]
    message = (f"{what}: " + "; ".join(parts) + f" (flagged from {threshold:.0%}). " + explain)
    if recovered:
        message += " Recovered: " + "; ".join(f"{_label(n, layer_types)} was at {p:.0%} in epoch {e + 1}, "
                                               f"{end:.0%} at the end" for n, p, e, end in recovered) + "."
    epoch = max(e for _, _, e, _, _ in flagged)
    return Diagnosis(kind, message, list(remedies), step=epoch, layers=[f[0] for f in flagged], epoch=epoch), recovered

def unit_findings(history, layer_types=None, dead_threshold: float = DEAD_THRESHOLD,
                  saturation_threshold: float = SATURATION_THRESHOLD, trainer=None):
    """Dead-ReLU and saturation verdicts from the ``dead_relu/<layer>`` and ``saturated/<layer>`` epoch
    series (a History, its columns, or ``GradientMonitor.epoch_series``: the numbers a report plots),
    judged at the last epoch. Returns (diagnoses, facts): facts are the measured numbers in words, for a
    summary when nothing is wrong."""
    cols = _columns(history)
    found, facts = [], []
    dead_series = layer_series(cols, "dead_relu")
    dead, recovered = _share_finding(
        "dead_relu", dead_series, dead_threshold, layer_types,
        "Dead ReLUs (units that output 0 for every sample of a batch)", dead_relu_remedies(trainer),
        "A ReLU passes no gradient where its input is negative, so such a unit's weights stop changing and it "
        "stays dead: capacity the model pays for and does not use.")
    if dead is not None:
        found.append(dead)
    sat, _ = _share_finding(
        "saturated", layer_series(cols, "saturated"), saturation_threshold, layer_types,
        "Saturated activations (sigmoid/tanh outputs within 0.01 of their bounds)", SATURATED_REMEDIES,
        "There the slope is nearly 0 and almost no gradient flows back through those units.")
    if sat is not None:
        found.append(sat)
    ends = {n: _last(v)[1] for n, v in dead_series.items()}
    ends = {n: v for n, v in ends.items() if math.isfinite(v)}
    if ends:
        worst = max(ends, key=ends.get)
        facts.append(f"the most dead ReLU layer, {_label(worst, layer_types)}, has {ends[worst]:.0%} of its units "
                     f"dead at the last epoch (flagged from {dead_threshold:.0%})")
        facts += [f"{_label(n, layer_types)} was {p:.0%} dead in epoch {e + 1} and recovered to {end:.0%}"
                  for n, p, e, end in recovered]
    sat_ends = {n: _last(v)[1] for n, v in layer_series(cols, "saturated").items()}
    sat_ends = {n: v for n, v in sat_ends.items() if math.isfinite(v)}
    if sat_ends:
        worst = max(sat_ends, key=sat_ends.get)
        facts.append(f"at most {sat_ends[worst]:.0%} of a sigmoid/tanh layer's outputs are saturated "
                     f"({_label(worst, layer_types)}, flagged from {saturation_threshold:.0%})")
    return found, facts


def _fmt(v: float) -> str:
    return f"{v:.2g}"


def _class_names(model) -> set:
    return {type(m).__name__ for m in model.modules()}


class GradientMonitor(Callback):
    """Measure gradient, weight, update and activation health every ``every`` steps during ``fit``
    (see the module docstring for what is measured, logged and diagnosed)."""

    def __init__(self, every: int = 10, verbose: int = 1, log_to_history: bool = True,
                 vanishing_ratio: float = 1e-3, spike_factor: float = 10.0, window: int = 20,
                 max_update_ratio: float = 1.0, dead_threshold: float = DEAD_THRESHOLD,
                 saturation_threshold: float = SATURATION_THRESHOLD,
                 saturation_margin: float = 0.01, patience: int = 2):
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"GradientMonitor: every must be an int >= 1 (measure every N steps), got {every!r}")
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"GradientMonitor: patience must be an int >= 1, got {patience!r}")
        for name, value in (("vanishing_ratio", vanishing_ratio), ("dead_threshold", dead_threshold),
                            ("saturation_threshold", saturation_threshold), ("saturation_margin", saturation_margin)):
            if not isinstance(value, (int, float)) or not 0 < value <= 1:
                raise ValueError(f"GradientMonitor: {name} must be in (0, 1], got {value!r}")
        if not isinstance(spike_factor, (int, float)) or spike_factor <= 1:
            raise ValueError(f"GradientMonitor: spike_factor must be a number > 1, got {spike_factor!r}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 3:
            raise ValueError(f"GradientMonitor: window must be an int >= 3, got {window!r}")
        self.every = every
        self.verbose = verbose
        self.log_to_history = bool(log_to_history)
        self.vanishing_ratio = float(vanishing_ratio)
        self.spike_factor = float(spike_factor)
        self.window = window
        self.max_update_ratio = float(max_update_ratio)
        self.dead_threshold = float(dead_threshold)
        self.saturation_threshold = float(saturation_threshold)
        self.saturation_margin = float(saturation_margin)
        self.patience = patience
        self.records: list[dict] = []
        self.diagnoses: list[Diagnosis] = []
        self._handles = []
        self._sparse = set()
        self._names, self._feeder = {}, {}
        self._layer_types: dict = {}
        self._reset()

    # ------------------------------------------------------------------------------ state
    def _reset(self):
        self.records = []
        self.diagnoses = []
        self._batches = 0
        self._opt_steps = 0
        self._want_acts = False
        self._want_grads = False
        self._acts: dict = {}
        self._final = None
        self._snapshot = None
        self._record = None
        self._totals: list[float] = []
        self._streak: dict = {}
        self._epoch_records: list[dict] = []
        self.epoch_series: dict[str, list] = {}

    def state_dict(self) -> dict:
        return {"batches": self._batches, "opt_steps": self._opt_steps, "totals": list(self._totals),
                "streak": {f"{k[0]}|{k[1]}": v for k, v in self._streak.items()},
                "epoch_series": {k: list(v) for k, v in self.epoch_series.items()},
                "diagnoses": [d.to_dict() for d in self.diagnoses]}

    def load_state_dict(self, state: dict) -> None:
        self._batches = int(state["batches"])
        self._opt_steps = int(state["opt_steps"])
        self._totals = [float(v) for v in state["totals"]]
        self._streak = {tuple(k.split("|", 1)): int(v) for k, v in state["streak"].items()}
        self.diagnoses = [Diagnosis.from_dict(d) for d in state["diagnoses"]]
        self.epoch_series = {k: list(v) for k, v in state.get("epoch_series", {}).items()}

    @property
    def kinds(self) -> list[str]:
        """The kinds of problem found so far, in the order they were first seen."""
        return [d.kind for d in self.diagnoses]

    def findings(self) -> list[Diagnosis]:
        """The verdict on the run so far: the vanishing / exploding events seen step by step, and the
        dead-ReLU / saturation state at the last epoch, judged on ``epoch_series`` (the epoch means the
        monitor logs into the History, which a report plots), so the words and the plots agree."""
        events = [d for d in self.diagnoses if d.kind in ("vanishing", "exploding")]
        units, _ = unit_findings(self.epoch_series, self._layer_types, self.dead_threshold,
                                 self.saturation_threshold, self.trainer)
        return events + units

    def diagnosis_text(self) -> list[str]:
        """One paragraph per finding (``findings``), or one that gives the measured numbers when there is
        none: what a run's metrics.json keeps under "diagnosis"."""
        found = self.findings()
        if found:
            return [str(d) for d in found]
        _, facts = unit_findings(self.epoch_series, self._layer_types, self.dead_threshold,
                                 self.saturation_threshold, self.trainer)
        return ["GradientMonitor found no problem: no vanishing or exploding gradients"
                + "".join("; " + f for f in facts) + "."]

    # ------------------------------------------------------------------------------ hooks on the model
    def attach(self, model) -> None:
        """Put forward hooks on ``model``'s ReLU / Sigmoid / Tanh modules (done by ``on_train_begin``)."""
        self.detach()
        self._model = model
        self._layer_types = module_types(model)
        relu_types = tuple(t for t in (getattr(nn, "ReLU", None), getattr(nn, "ReLU6", None)) if t is not None)
        squash = {getattr(nn, "Sigmoid", None): "sigmoid", getattr(nn, "Tanh", None): "tanh"}
        squash.pop(None, None)
        self._names = {}
        self._feeder = {}
        # lookup tables get sparse gradients (only the rows used): not evidence of vanishing
        self._sparse = {f"{name}.{pname}" if name else pname
                        for name, module in model.named_modules() if "Embedding" in type(module).__name__
                        for pname, _ in module.named_parameters(recurse=False)}
        last_with_params = None
        for name, module in model.named_modules():
            if next(module.parameters(recurse=False), None) is not None:
                last_with_params = (name, type(module).__name__)
            kind = "relu" if isinstance(module, relu_types) else squash.get(type(module))
            if kind is None:
                continue
            self._names[id(module)] = name or type(module).__name__
            self._feeder[id(module)] = last_with_params
            self._handles.append(module.register_forward_hook(self._activation_hook(kind)))
        self._handles.append(model.register_forward_hook(self._output_hook))

    def detach(self) -> None:
        """Remove the forward hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def _activation_hook(self, kind):
        def hook(module, args, out):
            if self._want_acts:
                self._acts[id(module)] = (kind, out)
        return hook

    def _output_hook(self, module, args, out):
        if self._want_acts:
            self._final = out

    # ------------------------------------------------------------------------------ callback hooks
    def on_train_begin(self, logs=None):
        self._reset()
        self.attach(self.model)

    def on_train_end(self, logs=None):
        self.detach()
        self._acts, self._final, self._snapshot = {}, None, None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_records = []

    def on_train_batch_begin(self, batch, logs=None):
        if self._batches % self.every == 0:
            self._want_acts = True
            self._want_grads = True

    def on_before_optimizer_step(self, optimizer):
        if not self._want_grads:
            self._opt_steps += 1
            return
        self._want_grads = False
        trainer = self.trainer
        names = {id(p): name for name, p in self.model.named_parameters()}
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        labels = [names.get(id(p)) or trainer.parameter_name(p) for p in params]
        grad_norms = _norms([p.grad.array for p in params])
        weight_norms = _norms([p.array for p in params])
        total = math.sqrt(sum(g * g for g in grad_norms)) if all(math.isfinite(g) for g in grad_norms) else math.inf
        record = {
            "step": self._opt_steps, "epoch": trainer.state.epoch, "batch": trainer.state.batch_index,
            "grad_norm": dict(zip(labels, grad_norms)), "weight_norm": dict(zip(labels, weight_norms)),
            "update_ratio": {}, "total_grad_norm": total, "dead_relu": {}, "saturated": {},
            "numel": {label: int(p.array.size) for label, p in zip(labels, params)},
            "shape": {label: tuple(p.shape) for label, p in zip(labels, params)},
        }
        self._snapshot = (params, labels, [p.array.copy() for p in params], weight_norms)
        self._record = record
        self._opt_steps += 1

    def on_train_batch_end(self, batch, logs=None):
        self._batches += 1
        record = self._record
        if self._want_acts:
            self._want_acts = False
            if record is None:  # an accumulation step: activations without gradients yet; keep them
                return
        if record is None:
            return
        self._record = None
        if self._snapshot is not None and not self.trainer.state.stop_training:
            params, labels, before, weight_norms = self._snapshot
            deltas = _norms([p.array - old for p, old in zip(params, before)])
            for label, d, w in zip(labels, deltas, weight_norms):
                record["update_ratio"][label] = d / w if w > 0 else (math.inf if d > 0 else 0.0)
        self._snapshot = None
        self._measure_activations(record)
        self.records.append(record)
        self._epoch_records.append(record)
        self._diagnose(record)

    def on_epoch_end(self, epoch, logs=None):
        if not self.log_to_history or logs is None or not self._epoch_records:
            return
        sums: dict = {}
        for rec in self._epoch_records:
            items = [("grad_norm/total", rec["total_grad_norm"])]
            for key in ("grad_norm", "weight_norm", "update_ratio", "dead_relu", "saturated"):
                items += [(f"{key}/{name}", v) for name, v in rec[key].items()]
            for k, v in items:
                s, n = sums.get(k, (0.0, 0))
                sums[k] = (s + v, n + 1)
        for k, (s, n) in sums.items():
            logs[k] = float(s / n)
            if k.startswith(("dead_relu/", "saturated/")):
                series = self.epoch_series.setdefault(k, [])
                series += [float("nan")] * (epoch - len(series)) + [logs[k]]

    # ------------------------------------------------------------------------------ measurements
    def _measure_activations(self, record):
        acts, final = self._acts, self._final
        self._acts, self._final = {}, None
        margin = self.saturation_margin
        for key, (kind, out) in acts.items():
            data = getattr(out, "array", None)
            if data is None or data.ndim < 2 or data.size == 0:
                continue
            name = self._names[key]
            xp = backend.get_array_module(data)
            if kind == "relu":
                axes = tuple(i for i in range(data.ndim) if i != 1)
                alive = (data > 0).any(axis=axes)
                record["dead_relu"][name] = 1.0 - float(alive.mean())
            elif out is not final:
                if kind == "sigmoid":
                    sat = (data < margin) | (data > 1 - margin)
                else:
                    sat = xp.abs(data) > 1 - margin
                record["saturated"][name] = float(sat.mean())

    # ------------------------------------------------------------------------------ diagnoses
    def _seen(self, kind) -> bool:
        return any(d.kind == kind for d in self.diagnoses)

    def _persist(self, kind, key, hit: bool) -> bool:
        """Count consecutive measurements where ``hit`` holds; True once there are ``patience``."""
        k = (kind, key)
        self._streak[k] = self._streak.get(k, 0) + 1 if hit else 0
        return self._streak[k] >= self.patience

    def _report(self, diagnosis: Diagnosis) -> None:
        if self._seen(diagnosis.kind):
            return
        self.diagnoses.append(diagnosis)
        if self.verbose:
            print(f"\nGradientMonitor [{diagnosis.kind}] at step {diagnosis.step} (epoch {diagnosis.epoch + 1}): "
                  f"{diagnosis}", flush=True)

    def _diagnose(self, rec) -> None:
        self._check_exploding(rec)
        self._check_vanishing(rec)
        self._check_dead(rec)
        self._check_saturated(rec)

    def _check_vanishing(self, rec):
        mats = [(name, g, rec["numel"][name]) for name, g in rec["grad_norm"].items()
                if len(rec["shape"][name]) >= 2 and name not in self._sparse]
        hit, detail = False, None
        if len(mats) >= 2:
            (first, g0, n0), (last, g1, n1) = mats[0], mats[-1]
            rms0, rms1 = g0 / math.sqrt(n0), g1 / math.sqrt(n1)
            if math.isfinite(rms0) and math.isfinite(rms1) and rms1 > 0:
                ratio = rms0 / rms1
                hit = ratio <= self.vanishing_ratio
                detail = (first, rms0, last, rms1, ratio, len(mats))
        if not self._persist("vanishing", "", hit) or self._seen("vanishing"):
            return
        first, rms0, last, rms1, ratio, depth = detail
        classes = _class_names(self.model)
        squash = sorted(classes & {"Sigmoid", "Tanh"})
        orders = -math.log10(ratio) if ratio > 0 else float("inf")
        why = ("Backpropagation multiplies the error signal, layer after layer, by each layer's weights and by the "
               "slope of its activation")
        if squash:
            why += (f"; this model uses {' and '.join(squash)}, whose slope is at most "
                    f"{'0.25' if 'Sigmoid' in squash else '1'} and nearly 0 once saturated, so over {depth} layers "
                    "the signal shrinks exponentially")
        else:
            why += f"; over {depth} layers factors below 1 compound exponentially"
        message = (f"Vanishing gradients: the gradients shrink by {orders:.1f} orders of magnitude from the last "
                   f"layer ({last}, RMS {_fmt(rms1)}) to the first ({first}, RMS {_fmt(rms0)}), so the first layers "
                   f"barely learn while the last ones do. {why}.")
        # the two cures that fit this model: the cause first (squashing activations, a plain RNN), then
        # what shortens or steadies the path back (normalisation; residual connections for deep stacks)
        remedies = []
        if classes & {"RNN", "RNNCell"}:
            remedies.append("use nn.LSTM or nn.GRU instead of nn.RNN: their gates keep gradients alive through time")
        if squash:
            remedies.append(f"use ReLU-family activations in the hidden layers (nn.ReLU(), nn.LeakyReLU(0.01), "
                            f"nn.GELU()) instead of {' / '.join('nn.' + s + '()' for s in squash)}")
        else:
            remedies.append("initialise for ReLU: He init (nn.init.kaiming_normal_(layer.weight, nonlinearity='relu'))")
        if not classes & {"BatchNorm1d", "BatchNorm2d", "LayerNorm"}:
            remedies.append("normalise between layers (nn.BatchNorm1d / nn.BatchNorm2d, or nn.LayerNorm)")
        else:
            remedies.append(f"add residual connections (out = x + block(x)) or use fewer layers ({depth} weight "
                            "layers now)")
        remedies = remedies[:2]
        self._report(Diagnosis("vanishing", message, remedies, rec["step"], [first, last], rec["epoch"]))

    def _check_exploding(self, rec):
        total = rec["total_grad_norm"]
        bad = [name for name, g in rec["grad_norm"].items() if not math.isfinite(g)]
        message = kind = None
        if bad:
            kind = "non-finite"
            message = (f"Exploding gradients: the gradient of {', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''} "
                       "is NaN or infinite, so the next update would destroy the weights.")
        else:
            history = self._totals[-self.window:]
            if len(history) >= 3:
                median = sorted(history)[len(history) // 2]
                early = self._totals[:self.window]
                floor = max(early) if len(early) == self.window else 0.0
                if median > 0 and total > self.spike_factor * median and total > floor:
                    kind = "spike"
                    message = (f"Exploding gradients: the total gradient norm jumped to {_fmt(total)}, "
                               f"{total / median:.0f} times its recent median ({_fmt(median)}).")
            big = {n: r for n, r in rec["update_ratio"].items() if r > self.max_update_ratio}
            if self._persist("exploding", "update", bool(big)) and message is None:
                name, r = max(big.items(), key=lambda kv: kv[1])
                kind = "update"
                message = (f"Exploding updates: one optimizer step changes {name} by {r:.3g} times its own size "
                           f"(healthy steps change weights by about 0.1% to 1%); the weights are being thrown around "
                           "rather than refined.")
            if math.isfinite(total):
                self._totals.append(total)
        if message is None or self._seen("exploding"):
            return
        lr = None
        opt = getattr(self.trainer, "optimizer", None)
        if opt is not None and opt.param_groups:
            lr = opt.param_groups[0].get("lr")
        message += (" Each step moves the weights by the learning rate times the gradient; when that step is too "
                    "large the loss overshoots, the gradients grow, and the next step is larger still"
                    + (f" (learning rate now {lr:g})" if isinstance(lr, (int, float)) else "") + ".")
        # this fit's setting: None when it does not clip (and for a monitor fed by hand, without a Trainer)
        clip = self.trainer.state.grad_clip_norm if self.trainer is not None else None
        remedies = []
        if clip is None:
            remedies.append("clip the gradient norm: fit(..., grad_clip_norm=1.0), or "
                            "nn.utils.clip_grad_norm_(model.parameters(), 1.0) in your own loop")
        elif kind == "non-finite":
            message += (f" This run already clips the gradient norm to {clip:g}, but clipping cannot repair a NaN "
                        "or infinite gradient.")
        elif kind == "spike":
            message += (f" This run already clips the gradient norm to {clip:g} (the norms here are measured before "
                        "clipping), which bounds each step but not the instability behind the jump.")
            remedies.append(f"clip harder (grad_clip_norm is {clip:g} now)")
        else:
            message += (f" This run already clips the gradient norm to {clip:g}: these are the steps after "
                        "clipping, so the step size itself is too large.")
        remedies.append("lower the learning rate (by 10x to start with), or warm it up (optim.lr_scheduler.LinearLR)")
        if len(remedies) < 2:
            remedies.append("normalise inputs and activations (data.transforms.Normalize, nn.BatchNorm1d/2d, "
                            "nn.LayerNorm)")
        self._report(Diagnosis("exploding", message, remedies[:2], rec["step"], bad, rec["epoch"]))

    def _check_dead(self, rec):
        hits = {}
        for name, share in rec["dead_relu"].items():
            if self._persist("dead_relu", name, share >= self.dead_threshold):
                hits[name] = share
        if not hits or self._seen("dead_relu"):
            return
        parts = []
        for name, share in hits.items():
            feeder = self._feeder.get(next(k for k, v in self._names.items() if v == name))
            fed = f", fed by {feeder[0]} ({feeder[1]})" if feeder else ""
            parts.append(f"{name}{fed}: {share:.0%}")
        message = ("Dead ReLUs: in " + "; ".join(parts) + " of the units output 0 for every sample of the batch. "
                   "A ReLU passes no gradient where its input is negative, so a unit whose input is negative for "
                   "every sample never gets a gradient, its weights never change, and it stays dead. It usually "
                   "follows a learning rate that is too high or a large negative bias.")
        self._report(Diagnosis("dead_relu", message, dead_relu_remedies(self.trainer), rec["step"], list(hits),
                               rec["epoch"]))

    def _check_saturated(self, rec):
        hits = {}
        for name, share in rec["saturated"].items():
            if self._persist("saturated", name, share >= self.saturation_threshold):
                hits[name] = share
        if not hits or self._seen("saturated"):
            return
        margin = self.saturation_margin
        message = ("Saturated activations: in " + "; ".join(f"{n}: {s:.0%}" for n, s in hits.items())
                   + f" of the sigmoid/tanh outputs are within {margin:g} of their bounds. There the curve is flat, "
                   "its slope is nearly 0, and almost no gradient flows back through those units: the layers "
                   "below stop learning. Inputs to the activation are too large, from unscaled data, weights "
                   "initialised too large, or a learning rate that pushed them there.")
        self._report(Diagnosis("saturated", message, SATURATED_REMEDIES, rec["step"], list(hits), rec["epoch"]))
