"""Evaluation for ``Trainer``: the running sums of an epoch, the eval loop, ``evaluate`` and ``predict``."""

from __future__ import annotations

import time

import numpy as np

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.backend import Device
from deepwise.tensor import Tensor
from deepwise.train.callback_base import CallbackList
from deepwise.train.data import make_data
from deepwise.train.progress import format_duration, format_logs

__all__ = ["EvaluationMixin", "Tracker"]


class Tracker:
    """Running sums of one epoch (or one evaluation): every value a step returns, weighted by batch
    size, plus the metrics' own running state."""

    def __init__(self, metrics):
        self.metrics = metrics
        self.reset()

    def reset(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.count = 0
        self.steps = 0
        for m in self.metrics:
            m.reset()

    def add(self, step_logs: dict, n: int) -> None:
        if not isinstance(step_logs, dict):
            raise TypeError("Trainer: train_step / eval_step must return a dict of logs, got "
                            f"{type(step_logs).__name__}")
        sums, counts = self.sums, self.counts
        for key, value in step_logs.items():
            if isinstance(value, Tensor):
                data = value.data
                if data.size != 1:
                    continue  # not a loggable number
                value = data.item()  # the one host sync of a step
            elif hasattr(value, "item") and getattr(value, "size", 0) == 1:
                value = value.item()
            if type(value) is not float and (isinstance(value, bool) or not isinstance(value, (int, float))):
                continue
            sums[key] = sums.get(key, 0.0) + float(value) * n
            counts[key] = counts.get(key, 0) + n
        self.count += n
        self.steps += 1

    def logs(self, prefix: str = "", scalar_only: bool = True) -> dict:
        out = {prefix + k: self.sums[k] / self.counts[k] for k in self.sums}
        for m in self.metrics:
            if m.scalar or not scalar_only:
                out[prefix + m.name] = m.result()
        return out

    def state_dict(self) -> dict:
        return {"sums": dict(self.sums), "counts": dict(self.counts), "count": self.count, "steps": self.steps,
                "metrics": {m.name: m.state_dict() for m in self.metrics}}

    def load_state_dict(self, state: dict) -> None:
        self.sums = {k: float(v) for k, v in state["sums"].items()}
        self.counts = {k: int(v) for k, v in state["counts"].items()}
        self.count = int(state["count"])
        self.steps = int(state["steps"])
        for m in self.metrics:
            if m.name in state["metrics"]:
                m.load_state_dict(state["metrics"][m.name])


class EvaluationMixin:
    """``evaluate`` / ``predict`` and the loop validation shares with them."""

    def _evaluate_loader(self, data, metrics, callbacks, phase, prefix="", scalar_only=True) -> dict:
        was_training = bool(getattr(self.model, "training", True))
        previous = self._active_metrics, self._phase, self._loop_data
        self._active_metrics, self._phase, self._loop_data = metrics, phase, data
        loader = data.loader
        tracker = Tracker(metrics)
        self.model.eval()
        callbacks.on_test_begin({})
        batch_begin = callbacks.implements("on_test_batch_begin")  # per-batch hooks only when used
        batch_end = callbacks.implements("on_test_batch_end")
        try:
            with no_grad():
                for b, batch in enumerate(loader):
                    self._phase_batch = b
                    if batch_begin:
                        callbacks.on_test_batch_begin(b, {"batch": b})
                    step_logs = self.eval_step(batch)
                    tracker.add(step_logs, self.batch_size_of(batch))
                    if batch_end:
                        callbacks.on_test_batch_end(b, tracker.logs(scalar_only=scalar_only))
        finally:
            self.model.train(was_training)
            self._active_metrics, self._phase, self._loop_data = previous
        if tracker.steps == 0:
            raise ValueError(f"Trainer: the {phase} data yielded no batches")
        logs = tracker.logs(scalar_only=scalar_only)
        callbacks.on_test_end(logs)
        return {prefix + k: v for k, v in logs.items()}

    def evaluate(self, x, y=None, batch_size: int | None = None, verbose: int = 0, sample_weight=None,
                 callbacks=None) -> dict:
        """Loss and metrics over ``x`` (arrays with ``y``, a Dataset or a DataLoader), in eval mode and
        without building a graph; the model's previous mode is restored. Returns ``{"loss": ...,
        <metric name>: ...}`` — exact means over all samples, whatever the batch sizes. A
        ``ConfusionMatrix`` metric gives its matrix here."""
        what = "Trainer.evaluate"
        if verbose not in (0, 1, 2):
            raise ValueError(f"{what}: verbose must be 0, 1 or 2, got {verbose!r}")
        data = make_data(x, y, sample_weight, what=what, batch_size=batch_size, loss=self.loss)
        cbs = CallbackList(callbacks or [], trainer=self)
        metrics = [self._fresh(m) for m in self.metrics]
        start = time.perf_counter()
        previous_device, self._run_device = self._run_device, self.device
        try:
            logs = self._evaluate_loader(data, metrics, cbs, "evaluate", scalar_only=False)
        finally:
            self._run_device = previous_device
        if verbose:
            print(f"evaluate - {format_duration(time.perf_counter() - start)} - {data.steps} steps - "
                  f"{format_logs(logs)}", flush=True)
        return logs

    def predict(self, x, batch_size: int | None = None):
        """The model's outputs for ``x`` (arrays, a Dataset or a DataLoader; targets in the batches are
        ignored) as a NumPy array — a tuple of arrays for a model with several outputs. Runs in eval
        mode under ``no_grad`` and restores the model's previous mode."""
        data = make_data(x, what="Trainer.predict", batch_size=batch_size, require_y=False)
        was_training = bool(getattr(self.model, "training", True))
        previous_phase, previous_device, previous_data = self._phase, self._run_device, self._loop_data
        self._phase, self._run_device, self._loop_data = "predict", self.device, data
        outputs = []
        self.model.eval()
        try:
            with no_grad():
                for b, batch in enumerate(data.loader):
                    self._phase_batch = b
                    out = self.predict_step(batch)
                    outputs.append(out)
        finally:
            self.model.train(was_training)
            self._phase, self._run_device, self._loop_data = previous_phase, previous_device, previous_data

        def host(t):
            arr = t.data if isinstance(t, Tensor) else t
            return backend.to_device(arr, Device("cpu")) if backend.is_array(arr) else np.asarray(arr)

        if not outputs:
            raise ValueError("Trainer.predict: the data yielded no batches")
        if isinstance(outputs[0], (tuple, list)):
            return tuple(np.concatenate([host(o[i]) for o in outputs]) for i in range(len(outputs[0])))
        return np.concatenate([host(o) for o in outputs])
