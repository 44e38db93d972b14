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
    SATURATION_THRESHOLD,
    Diagnosis,
    layer_series,
    module_types,
    unit_findings,
)
from deepwise.diagnostics.overfitting import diagnose_overfitting, no_overfitting_fact

__all__ = ["layer_series", "module_types", "run_findings"]


def _columns(history) -> dict:
    return history.history if hasattr(history, "history") else dict(history)


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
    units, facts = unit_findings(cols, layer_types, dead_threshold, saturation_threshold, trainer)
    found += units
    val = [v for v in cols.get("val_loss", []) if v is not None and math.isfinite(v)]
    if "val_loss" in cols and "loss" in cols:
        over = diagnose_overfitting(cols, patience=overfitting_patience, model=model, trainer=trainer)
        if over is not None:
            found.append(over)
        elif len(val) >= 2:
            facts.append(no_overfitting_fact(val))
    if found:
        return found
    return [Diagnosis("healthy", "No problem found: no vanishing or exploding gradients"
                      + "".join("; " + f for f in facts) + ".")]
