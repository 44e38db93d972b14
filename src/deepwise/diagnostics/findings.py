"""What a finished run's diagnostics found, computed from the epoch series a report plots.

    findings = run_findings(history, monitor=monitor, model=model, trainer=trainer)
    [str(f) for f in findings]       # the paragraphs under "What the diagnostics noticed"

One computation feeds both the words and the plots: the dead-ReLU and saturation verdicts read the
``dead_relu/<layer>`` and ``saturated/<layer>`` columns of the History (epoch means of
``GradientMonitor``'s measurements, the very numbers the report draws, with the threshold drawn as a
line), and judge the state at the last epoch, so a layer that recovered is not flagged and one that
stayed dead is; the overfitting verdict is ``diagnose_overfitting`` on the ``val_loss`` and ``loss``
columns (a rise must beat the curve's own noise). Events only a step-by-step view can see (vanishing
and exploding gradients) come from the monitor's own diagnoses. When nothing is wrong, the summary
still gives the measured numbers, so it can be checked against the plots.
"""

from __future__ import annotations

import math

from deepwise.diagnostics.gradients import (
    DEAD_THRESHOLD,
    SATURATED_REMEDIES,
    SATURATION_THRESHOLD,
    Diagnosis,
    dead_relu_remedies,
)
from deepwise.diagnostics.overfitting import diagnose_overfitting, epoch_noise

__all__ = ["layer_series", "module_types", "run_findings"]


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


def run_findings(history, monitor=None, model=None, trainer=None, layer_types=None,
                 dead_threshold: float | None = None, saturation_threshold: float | None = None,
                 overfitting_patience: int = 3) -> list[Diagnosis]:
    """The findings of a finished run (see the module docstring); a single ``"healthy"`` Diagnosis
    with the measured numbers when nothing is wrong.

    Args:
        history: a ``History`` (or its ``.history`` dict of columns), as plotted by the report.
        monitor: the run's ``GradientMonitor``: its vanishing / exploding diagnoses and thresholds.
        model, trainer: for advice that fits this model and run (overfitting cures).
        layer_types: ``{module name: class name}``, so findings say ``8 (ReLU)``, not ``8``.
    """
    cols = _columns(history)
    if layer_types is None and model is not None:
        layer_types = module_types(model)
    dead_threshold = dead_threshold if dead_threshold is not None else getattr(monitor, "dead_threshold",
                                                                               DEAD_THRESHOLD)
    saturation_threshold = (saturation_threshold if saturation_threshold is not None
                            else getattr(monitor, "saturation_threshold", SATURATION_THRESHOLD))
    found = [d for d in (monitor.diagnoses if monitor is not None else ()) if d.kind in ("vanishing", "exploding")]
    dead, dead_recovered = _share_finding(
        "dead_relu", layer_series(cols, "dead_relu"), dead_threshold, layer_types,
        "Dead ReLUs (units that output 0 for every sample of a batch)",
        dead_relu_remedies(trainer),
        "A ReLU passes no gradient where its input is negative, so such a unit's weights stop changing and it "
        "stays dead: capacity the model pays for and does not use.")
    if dead is not None:
        found.append(dead)
    sat, _ = _share_finding(
        "saturated", layer_series(cols, "saturated"), saturation_threshold, layer_types,
        "Saturated activations (sigmoid/tanh outputs within 0.01 of their bounds)",
        SATURATED_REMEDIES,
        "There the slope is nearly 0 and almost no gradient flows back through those units.")
    if sat is not None:
        found.append(sat)
    if "val_loss" in cols and "loss" in cols:
        over = diagnose_overfitting(cols, patience=overfitting_patience, model=model, trainer=trainer)
        if over is not None:
            found.append(over)
    if found:
        return found
    return [Diagnosis("healthy", _healthy_summary(cols, layer_types, dead_threshold, dead_recovered))]


def _healthy_summary(cols, layer_types, dead_threshold, dead_recovered) -> str:
    facts = []
    dead = {n: _last(v)[1] for n, v in layer_series(cols, "dead_relu").items()}
    dead = {n: v for n, v in dead.items() if math.isfinite(v)}
    if dead:
        worst = max(dead, key=dead.get)
        facts.append(f"the most dead ReLU layer, {_label(worst, layer_types)}, has {dead[worst]:.0%} of its units dead "
                     f"at the last epoch (flagged from {dead_threshold:.0%})")
        for n, peak, e, end in dead_recovered:
            facts.append(f"{_label(n, layer_types)} was {peak:.0%} dead in epoch {e + 1} and recovered to {end:.0%}")
    sat = {n: _last(v)[1] for n, v in layer_series(cols, "saturated").items()}
    sat = {n: v for n, v in sat.items() if math.isfinite(v)}
    if sat:
        worst = max(sat, key=sat.get)
        facts.append(f"at most {sat[worst]:.0%} of a sigmoid/tanh layer's outputs are saturated "
                     f"({_label(worst, layer_types)})")
    val = [v for v in cols.get("val_loss", []) if v is not None and math.isfinite(v)]
    if len(val) >= 2:
        best = min(range(len(val)), key=val.__getitem__)
        noise = epoch_noise(val)
        facts.append(f"val_loss was best at epoch {best + 1} of {len(val)} ({val[best]:.4g}) and ended at "
                     f"{val[-1]:.4g}: no overfitting (that needs a rise beyond 3x its epoch-to-epoch noise, "
                     f"+-{noise:.2g}, while the training loss improves)")
    text = "No problem found: no vanishing or exploding gradients"
    if facts:
        text += "; " + "; ".join(facts)
    return text + "."
