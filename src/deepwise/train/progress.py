"""Progress display for ``Trainer.fit``: a live bar per epoch, or one line per epoch.

``EpochBar`` draws ``Epoch 3/10  45/120 [=======>......] ETA 0:02  2,345 samples/s  loss: 0.2345 -
accuracy: 0.9100``. It uses ``tqdm`` when that is installed (the optional extra ``deepwise[progress]``)
and falls back to a carriage-return bar of its own. Redraws are limited to a few per second so the
bar costs next to nothing per batch. ``epoch_line`` is the one-line summary printed for
``verbose=2`` and whenever the output is not a terminal (log files, CI).
"""

from __future__ import annotations

import math
import sys
import time

__all__ = ["EpochBar", "epoch_line", "format_duration", "format_logs", "have_tqdm"]

_REDRAW_SECONDS = 0.1


def have_tqdm() -> bool:
    try:
        import tqdm  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def format_number(value) -> str:
    if isinstance(value, float) and (math.isnan(value) or math.isinf(value)):
        return str(value)
    if isinstance(value, (int, float)):
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.4e}"
        return f"{value:.4f}"
    return str(value)


def format_logs(logs: dict, skip=()) -> str:
    """``loss: 0.1234 - accuracy: 0.9800`` for the scalar entries of ``logs``."""
    parts = []
    for name, value in logs.items():
        if name in skip or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        parts.append(f"{name}: {format_number(value)}")
    return " - ".join(parts)


def format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = max(0.0, seconds)
    if seconds < 1.0:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"


def epoch_line(epoch: int, epochs: int, seconds: float, steps: int, logs: dict) -> str:
    """One line summarising an epoch: ``Epoch 3/10 - 1.2s - 38 steps - loss: 0.1234 - val_loss: ...``."""
    head = f"Epoch {epoch + 1}/{epochs} - {format_duration(seconds)} - {steps} steps"
    body = format_logs(logs)
    return f"{head} - {body}" if body else head


class EpochBar:
    """The live bar of one epoch. ``update(step, samples, logs)`` after each batch (cheap: redraws at
    most every 0.1 s), ``close(logs)`` at the end of the epoch (prints the final state and a newline).

    ``total`` may be None when the number of batches is not known in advance.
    """

    def __init__(self, epoch: int, epochs: int, total: int | None, stream=None, use_tqdm: bool | None = None,
                 width: int = 30):
        self.stream = stream if stream is not None else sys.stdout
        self.epoch, self.epochs, self.total, self.width = epoch, epochs, total, width
        self.start = time.perf_counter()
        self.step = 0
        self.samples = 0
        self._last_draw = 0.0
        self._last_len = 0
        self._tqdm = None
        if use_tqdm is None:
            use_tqdm = have_tqdm()
        if use_tqdm:
            from tqdm.auto import tqdm  # noqa: PLC0415 - optional extra

            self._tqdm = tqdm(total=total, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", file=self.stream,
                              leave=True, dynamic_ncols=True, mininterval=_REDRAW_SECONDS)

    def _rate(self, now: float) -> float:
        elapsed = now - self.start
        return self.samples / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, samples: int, logs: dict, force: bool = False) -> None:
        """``step`` batches and ``samples`` samples done so far in this epoch."""
        advanced = step - self.step
        self.step, self.samples = step, samples
        now = time.perf_counter()
        if not force and now - self._last_draw < _REDRAW_SECONDS:
            if self._tqdm is not None and advanced:
                self._tqdm.update(advanced)  # tqdm rate-limits its own redraws
            return
        self._last_draw = now
        rate = self._rate(now)
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(f"{rate:,.0f} samples/s - {format_logs(logs)}", refresh=False)
            self._tqdm.update(advanced)
            if force:
                self._tqdm.refresh()
            return
        self._draw(now, rate, logs)

    def _draw(self, now: float, rate: float, logs: dict) -> None:
        elapsed = now - self.start
        if self.total:
            done = min(self.step / self.total, 1.0)
            filled = int(self.width * done)
            arrow = ">" if filled < self.width else ""
            bar = "[" + "=" * filled + arrow + "." * (self.width - filled - len(arrow)) + "]"
            remaining = (self.total - self.step) * elapsed / self.step if self.step else math.inf
            counter = f"{self.step:>{len(str(self.total))}}/{self.total} {bar}"
            timing = f"ETA {format_duration(remaining)}" if self.step < self.total else format_duration(elapsed)
        else:
            counter = f"{self.step} steps"
            timing = format_duration(elapsed)
        text = f"Epoch {self.epoch + 1}/{self.epochs} {counter} {timing} - {rate:,.0f} samples/s"
        body = format_logs(logs)
        if body:
            text += " - " + body
        pad = max(0, self._last_len - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._last_len = len(text)

    def close(self, logs: dict) -> None:
        """Show the epoch's final logs (validation included) and end the line."""
        now = time.perf_counter()
        rate = self._rate(now)
        if self._tqdm is not None:
            if self.total is not None and self._tqdm.n < self.total and self.step >= self.total:
                self._tqdm.update(self.total - self._tqdm.n)
            self._tqdm.set_postfix_str(f"{rate:,.0f} samples/s - {format_logs(logs)}", refresh=True)
            self._tqdm.close()
            return
        self._draw(now, rate, logs)
        self.stream.write("\n")
        self.stream.flush()
