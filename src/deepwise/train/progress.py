"""Progress display for ``Trainer.fit``: a live bar per epoch on a terminal, lines in a log file.

On a terminal, ``EpochBar`` draws one line that always fits the window (it asks the terminal for its
width at each redraw; ``$COLUMNS`` wins when set)::

    Epoch 3/10  45/120 [=========>..........] ETA 0:02  2,345 samples/s  loss 0.2345, acc 0.9100

The bar shrinks first (30 down to 10 characters), then the rate is shortened or left out, then the
running metrics that do not fit are left out of the live line. At the end of the epoch the final line
is drawn with every log of the epoch (validation metrics and the learning rate included); what does
not fit beside the bar goes on the lines below it, indented. It needs nothing beyond the standard
library; ``use_tqdm=True`` draws the live part with ``tqdm`` instead (the optional extra
``deepwise[progress]``, e.g. for notebook widgets).

When the output is not a terminal (a log file, CI), ``EpochLines`` prints one line per epoch
(``epoch_line``) and, within an epoch, a heartbeat line every ``heartbeat`` seconds (30 by default)
with the batches done, the time left and the running metrics, so a long epoch is never silent.

Redraws are limited to ten per second, so the display costs next to nothing per batch.
"""

from __future__ import annotations

import math
import os
import sys
import time

__all__ = ["HEARTBEAT_SECONDS", "EpochBar", "EpochLines", "epoch_line", "format_duration", "format_logs",
           "have_tqdm", "heartbeat_line", "terminal_columns"]

_REDRAW_SECONDS = 0.1
HEARTBEAT_SECONDS = 30.0
_BAR_MAX, _BAR_MIN = 30, 10
_SHORT_NAMES = {"accuracy": "acc", "binary_accuracy": "bin_acc", "perplexity": "ppl",
                "learning_rate": "lr", "reconstruction": "recon"}


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


def _scalars(logs: dict, skip=()):
    for name, value in logs.items():
        if name in skip or not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        yield name, value


def format_logs(logs: dict, skip=()) -> str:
    """``loss: 0.1234 - accuracy: 0.9800`` for the scalar entries of ``logs``."""
    return " - ".join(f"{name}: {format_number(value)}" for name, value in _scalars(logs, skip))


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


def heartbeat_line(epoch: int, epochs: int, step: int, total: int | None, seconds: float, samples: int,
                   logs: dict) -> str:
    """A line within an epoch, for log files: ``Epoch 2/6 - 1200/5000 steps (24%) - 1:02 elapsed,
    ETA 3:20 - 612 samples/s - loss: 1.8123 - accuracy: 0.4500``."""
    if total:
        eta = (total - step) * seconds / step if step else math.inf
        where = (f"{step}/{total} steps ({100.0 * step / total:.0f}%) - {format_duration(seconds)} elapsed, "
                 f"ETA {format_duration(eta)}")
    else:
        where = f"{step} steps - {format_duration(seconds)} elapsed"
    rate = samples / seconds if seconds > 0 else 0.0
    body = format_logs(logs)
    line = f"Epoch {epoch + 1}/{epochs} - {where} - {rate:,.0f} samples/s"
    return f"{line} - {body}" if body else line


# --------------------------------------------------------------------------------- the live terminal line
def terminal_columns(stream=None) -> int:
    """The width of the terminal ``stream`` writes to: ``$COLUMNS`` when set to a number, else what
    the terminal says, else 80."""
    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    stream = stream if stream is not None else sys.stdout
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):
        return 80
    return columns if columns > 0 else 80


def short_name(name: str) -> str:
    """``val_accuracy`` -> ``val_acc``: the names the terminal display uses to save room."""
    prefix = "val_" if name.startswith("val_") else ""
    base = name[len(prefix):]
    return prefix + _SHORT_NAMES.get(base, base)


def compact_number(value) -> str:
    """A number in at most about 8 characters: 0.2345, 24.15, 1,234, 3.00e-04."""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    value = float(value)
    if not math.isfinite(value):
        return str(value)
    size = abs(value)
    if value == 0:
        return "0"
    if size < 1e-3 or size >= 1e6:
        return f"{value:.2e}"
    if size < 10:
        return f"{value:.4f}"
    if size < 1000:
        return f"{value:.2f}"
    return f"{value:,.0f}"


def metric_items(logs: dict) -> list[str]:
    """``["loss 0.2345", "acc 0.9100", "val_loss 0.3012", "lr 0.0020"]``: the learning rate last."""
    items = [(name, value) for name, value in _scalars(logs)]
    items.sort(key=lambda kv: kv[0] == "lr")
    return [f"{short_name(name)} {compact_number(value)}" for name, value in items]


def wrap_items(items: list[str], width: int, indent: str = "  ") -> list[str]:
    """``items`` joined by ", " into lines of at most ``width`` characters, each starting with ``indent``."""
    lines, line = [], ""
    for item in items:
        piece = item if not line else ", " + item
        if line and len(indent) + len(line) + len(piece) > width:
            lines.append(indent + line + ",")
            line = item
        else:
            line += piece
    if line:
        lines.append(indent + line)
    return [ln[:width] for ln in lines]


class EpochBar:
    """The live bar of one epoch. ``update(step, samples, logs)`` after each batch (cheap: redraws at
    most every 0.1 s), ``close(logs)`` at the end of the epoch (the final state with every log, then a
    newline), ``end_line()`` to end the live line early (before a message, e.g. after Ctrl-C).

    ``total`` may be None when the number of batches is not known in advance. ``columns``: the width
    to fit; None asks the terminal at every redraw, so a resized window is followed.
    """

    def __init__(self, epoch: int, epochs: int, total: int | None, stream=None, use_tqdm: bool | None = False,
                 columns: int | None = None):
        self.stream = stream if stream is not None else sys.stdout
        self.epoch, self.epochs, self.total, self.columns = epoch, epochs, total, columns
        self.start = time.perf_counter()
        self.step = 0
        self.samples = 0
        self.logs: dict = {}
        self._last_draw = 0.0
        self._last_len = 0
        self._open = False
        self._bar_width = _BAR_MAX
        self._tqdm = None
        if use_tqdm:
            from tqdm.auto import tqdm  # noqa: PLC0415 - optional extra

            self._tqdm = tqdm(total=total, desc=f"Epoch {epoch + 1}/{epochs}", unit="batch", file=self.stream,
                              leave=True, dynamic_ncols=True, mininterval=_REDRAW_SECONDS)

    def _width(self) -> int:
        return self.columns if self.columns else terminal_columns(self.stream)

    def _rate(self, now: float) -> float:
        elapsed = now - self.start
        return self.samples / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, samples: int, logs: dict, force: bool = False) -> None:
        """``step`` batches and ``samples`` samples done so far in this epoch."""
        advanced = step - self.step
        self.step, self.samples, self.logs = step, samples, logs
        now = time.perf_counter()
        if not force and now - self._last_draw < _REDRAW_SECONDS:
            if self._tqdm is not None and advanced:
                self._tqdm.update(advanced)  # tqdm rate-limits its own redraws
            return
        self._last_draw = now
        if self._tqdm is not None:
            self._tqdm.set_postfix_str(", ".join(metric_items(logs)[:2]), refresh=False)
            self._tqdm.update(advanced)
            if force:
                self._tqdm.refresh()
            return
        line, _ = self.compose(self._width(), now, logs, bar_cap=self._bar_width)
        self._write_live(line)

    # ---- layout
    def _bar(self, width: int) -> str:
        done = min(self.step / self.total, 1.0) if self.total else 0.0
        inner = width - 2
        filled = int(inner * done)
        arrow = ">" if filled < inner else ""
        return "[" + "=" * filled + arrow + "." * (inner - filled - len(arrow)) + "]"

    def compose(self, columns: int, now: float, logs: dict, final: bool = False, all_or_none: bool = False,
                bar_cap: int = _BAR_MAX) -> tuple[str, list[str]]:
        """The line for a terminal ``columns`` wide (at most columns - 1 characters, so it never wraps)
        and the metric items that did not fit on it. ``all_or_none``: put every metric on the line or
        none. ``bar_cap``: the widest bar to draw (the live line keeps its bar from growing back and
        forth as the numbers beside it change length)."""
        avail = max(20, columns - 1)
        elapsed = now - self.start
        rate = self._rate(now)
        if self.total:
            counter = f"{self.step:>{len(str(self.total))}}/{self.total}"
            remaining = (self.total - self.step) * elapsed / self.step if self.step else math.inf
            timing = format_duration(elapsed) if final or self.step >= self.total else \
                f"ETA {format_duration(remaining)}"
        else:
            counter = f"{self.step} steps"
            timing = format_duration(elapsed)
        head = f"Epoch {self.epoch + 1}/{self.epochs}  {counter}"
        items = metric_items(logs)
        rates = [f"{rate:,.0f} samples/s", f"{rate:,.0f}/s", None]
        counts = [len(items)] if all_or_none else list(range(len(items), 0, -1))
        tries = [(r, n) for n in counts for r in rates] + [(rates[0], 0), (rates[1], 0), (None, 0)]

        def line(bar_width, rate_text, n):
            parts = [head + " " + self._bar(bar_width) if bar_width else head, timing]
            if rate_text:
                parts.append(rate_text)
            if n:
                parts.append(", ".join(items[:n]))
            return "  ".join(parts)

        bar_min = _BAR_MIN if self.total else 0
        for rate_text, n in tries:
            text = line(bar_min, rate_text, n)
            if len(text) <= avail:
                if self.total:
                    width = max(bar_min, min(bar_cap, _BAR_MAX, bar_min + avail - len(text)))
                    self._bar_width = width
                    text = line(width, rate_text, n)
                return text, items[n:]
        return line(0, None, 0)[:avail], items

    def _write_live(self, line: str) -> None:
        pad = max(0, self._last_len - len(line))
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()
        self._last_len = len(line)
        self._open = True

    def end_line(self) -> None:
        """End the live line now (drawn once more, since a ``^C`` may have been echoed into it), so
        whatever is printed next starts on a line of its own."""
        if self._tqdm is not None:
            self._tqdm.close()
            self._tqdm = None
            return
        if self._open:
            line, _ = self.compose(self._width(), time.perf_counter(), self.logs, bar_cap=self._bar_width)
            self._write_live(line)
            self.stream.write("\n")
            self.stream.flush()
            self._open = False

    def close(self, logs: dict, steps: int | None = None) -> None:
        """Show the epoch's final state with all its logs (validation metrics and lr included) and end
        the line; logs that do not fit beside the bar go on the lines below it."""
        now = time.perf_counter()
        width = self._width()
        if self._tqdm is not None:
            if self.total is not None and self._tqdm.n < self.total and self.step >= self.total:
                self._tqdm.update(self.total - self._tqdm.n)
            self._tqdm.close()
            self._tqdm = None
            lines = wrap_items(metric_items(logs), max(20, width - 1))
        else:
            first, rest = self.compose(width, now, logs, final=True, all_or_none=True)
            self._write_live(first)
            lines = wrap_items(rest, max(20, width - 1)) if rest else []
            self.stream.write("\n")
            self._open = False
        for text in lines:
            self.stream.write(text + "\n")
        self.stream.flush()


# ------------------------------------------------------------------------------------ lines for log files
class EpochLines:
    """Progress for output that is not a terminal: ``epoch_line`` at the end of each epoch and a
    ``heartbeat_line`` every ``heartbeat`` seconds within it (None: no heartbeat). Same interface as
    ``EpochBar``."""

    def __init__(self, epoch: int, epochs: int, total: int | None, stream=None,
                 heartbeat: float | None = HEARTBEAT_SECONDS):
        self.stream = stream if stream is not None else sys.stdout
        self.epoch, self.epochs, self.total, self.heartbeat = epoch, epochs, total, heartbeat
        self.start = self._last = time.perf_counter()
        self.step = 0
        self.samples = 0

    def update(self, step: int, samples: int, logs: dict, force: bool = False) -> None:
        self.step, self.samples = step, samples
        if self.heartbeat is None:
            return
        now = time.perf_counter()
        if force or now - self._last >= self.heartbeat:
            self._last = now
            self.stream.write(heartbeat_line(self.epoch, self.epochs, step, self.total, now - self.start, samples,
                                             logs) + "\n")
            self.stream.flush()

    def end_line(self) -> None:
        """Nothing to end: every line here is already complete."""

    def close(self, logs: dict, steps: int | None = None) -> None:
        seconds = time.perf_counter() - self.start
        self.stream.write(epoch_line(self.epoch, self.epochs, seconds, self.step if steps is None else steps,
                                     logs) + "\n")
        self.stream.flush()
