"""``deepwise run SCRIPT [args...]``: an unmodified PyTorch program, with deepwise standing in for torch.

``import torch``, ``import torch.nn as nn``, ``from torch.utils.data import DataLoader``, ... resolve to
deepwise's modules of the same path (``torch.X`` is ``deepwise.X``), through an import hook that is
active for the run only. The script runs as ``__main__`` with ``sys.argv = [SCRIPT, *args]``.

When the script reaches for something deepwise does not have (a missing attribute or module of
the stand-in), the run ends with one line that names it, gives the script's line, and says that it
is a deepwise gap -- not an error in the script::

    train.py:42: deepwise has no torch.nn.PixelShuffle (a deepwise gap, not an error in the script): ...

Any other error is the script's own and shows its usual traceback.

``see_inside=True`` (``--see-inside``) watches every optimizer the script creates: at its first step
the model it trains is found (the outermost ``nn.Module`` holding its parameters), a
``GradientMonitor`` is put on it and fed at each ``optimizer.step()``, and an ``OverfittingAdvisor``
compares the training loss (the tensors ``backward()`` is called on, each counted for the optimizer
that steps next) with the validation loss (what
the loss functions return under ``no_grad`` or while the model is in ``eval()`` mode). An epoch is one
pass over a DataLoader: the next epoch starts when a DataLoader is iterated again with the model
in training mode and grad mode on (evaluation passes, under ``no_grad`` or ``eval()``, do not count);
100 steps make an epoch when the script trains without a DataLoader. At the end the
findings are printed and written with the per-epoch history into a run folder, with an HTML report
when matplotlib is installed.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import json
import math
import os
import runpy
import sys
import time
import traceback
import weakref

from deepwise import nn, optim
from deepwise.autograd import is_grad_enabled
from deepwise.data import DataLoader
from deepwise.diagnostics import GradientMonitor, OverfittingAdvisor, ReportError, build_report
from deepwise.io import atomic_write_bytes
from deepwise.nn import functional
from deepwise.tensor import Tensor

_STEPS_PER_PSEUDO_EPOCH = 100


# ------------------------------------------------------------------------------ the torch alias
class _TorchAlias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves ``torch`` and ``torch.X`` to ``deepwise`` and ``deepwise.X``."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "torch" and not fullname.startswith("torch."):
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        target = "deepwise" + spec.name[len("torch"):]
        try:
            return importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name is not None and exc.name.startswith("deepwise"):
                raise ModuleNotFoundError(f"No module named {spec.name!r} in deepwise ({target} does not exist)",
                                          name=target) from None
            raise

    def exec_module(self, module):
        pass  # the deepwise module is loaded already


@contextlib.contextmanager
def torch_alias():
    """``import torch...`` gives deepwise's modules inside the block (any real torch is set aside)."""
    saved = {name: mod for name, mod in sys.modules.items() if name == "torch" or name.startswith("torch.")}
    for name in saved:
        del sys.modules[name]
    finder = _TorchAlias()
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for name in [n for n in sys.modules if n == "torch" or n.startswith("torch.")]:
            del sys.modules[name]
        sys.modules.update(saved)


# ------------------------------------------------------------------------------ gaps
def _torch_name(module_name: str) -> str:
    return "torch" + module_name[len("deepwise"):] if module_name.startswith("deepwise") else module_name


def gap_of(exc: BaseException) -> str | None:
    """The torch name behind ``exc`` when it is something deepwise lacks, else None."""
    if isinstance(exc, ModuleNotFoundError):
        if exc.name and exc.name.startswith("deepwise"):
            return _torch_name(exc.name)
        return None
    if isinstance(exc, ImportError):  # from torch.x import Missing
        if exc.name and exc.name.startswith("deepwise") and "cannot import name" in str(exc):
            missing = str(exc).split("'")[1]
            return f"{_torch_name(exc.name)}.{missing}"
        return None
    if isinstance(exc, AttributeError):
        obj, name = getattr(exc, "obj", None), getattr(exc, "name", None)
        if obj is None or name is None:
            return None
        if isinstance(obj, type(sys)) and obj.__name__.startswith("deepwise"):
            return f"{_torch_name(obj.__name__)}.{name}"
        kind = obj if isinstance(obj, type) else type(obj)
        if kind.__module__.startswith("deepwise"):
            owner = "Tensor" if kind.__name__ == "Tensor" else kind.__name__
            return f"{owner}.{name}"
    return None


def _script_frame(tb, script):
    """(line number, source line) of the deepest frame of ``tb`` in ``script``."""
    found = None
    for frame in traceback.extract_tb(tb):
        if os.path.abspath(frame.filename) == script:
            found = (frame.lineno, (frame.line or "").strip())
    return found


# ------------------------------------------------------------------------------ seeing inside
class _State:
    def __init__(self):
        self.epoch = 0
        self.batch_index = 0
        self.stop_training = False
        self.grad_clip_norm = None
        self.log_names = None


class _Fit:
    """What the diagnostics read from a Trainer, for a loop the script writes itself."""

    def __init__(self, model, optimizer):
        self.model = model
        self.optimizer = optimizer
        self.state = _State()
        self._names = {id(p): n for n, p in model.named_parameters()}

    def parameter_name(self, param) -> str:
        if id(param) in self._names:
            return self._names[id(param)]
        for g, group in enumerate(self.optimizer.param_groups):
            for j, p in enumerate(group["params"]):
                if p is param:
                    return f"group{g}.param{j}"
        return "param"


class _Watch:
    """One optimizer, the model it trains, its monitor, advisor and per-epoch history."""

    def __init__(self, model, optimizer, label):
        self.label = label
        self.fit = _Fit(model, optimizer)
        self.monitor = GradientMonitor(every=5, verbose=0)
        self.advisor = OverfittingAdvisor(verbose=0)
        for cb in (self.monitor, self.advisor):
            cb.set_trainer(self.fit)
        self.monitor.on_train_begin()
        self.advisor.on_train_begin()
        self.steps = 0
        self.epoch_steps = 0
        self.train_losses: list[float] = []
        self.step_losses: list[float] = []  # every training loss seen, in order
        self.val_losses: list[float] = []
        self.rows: list[dict] = []
        self.loader = None  # the DataLoader the steps come from (its passes are the epochs)
        self.monitor.on_epoch_begin(0)
        self.monitor.on_train_batch_begin(0)

    def stepped(self):
        self.fit.state.batch_index = self.epoch_steps
        self.monitor.on_train_batch_end(self.epoch_steps)
        self.steps += 1
        self.epoch_steps += 1
        if self.loader is None and self.epoch_steps >= _STEPS_PER_PSEUDO_EPOCH:
            self.end_epoch()
        self.monitor.on_train_batch_begin(self.epoch_steps)

    def end_epoch(self):
        if self.epoch_steps == 0:
            return
        epoch = self.fit.state.epoch
        logs = {}
        if self.train_losses:
            logs["loss"] = sum(self.train_losses) / len(self.train_losses)
        if self.val_losses:
            logs["val_loss"] = sum(self.val_losses) / len(self.val_losses)
        self.monitor.on_epoch_end(epoch, logs)
        if "val_loss" in logs:
            self.advisor.on_epoch_end(epoch, logs)
        self.rows.append({"epoch": epoch, "steps": self.epoch_steps, **logs})
        self.train_losses, self.val_losses = [], []
        self.epoch_steps = 0
        self.fit.state.epoch = epoch + 1
        self.monitor.on_epoch_begin(epoch + 1)

    def findings(self) -> list[str]:
        return self.monitor.diagnosis_text() + self.advisor.diagnosis_text()


def _root_model(modules, params):
    """The outermost module holding most of ``params``."""
    ids = {id(p) for p in params}
    best, best_key = None, (0, 0)
    for m in list(modules):
        key = (sum(1 for p in m.parameters() if id(p) in ids), sum(1 for _ in m.modules()))
        if key[0] and key > best_key:  # most of the parameters; of those, the one that contains the others
            best, best_key = m, key
    return best


class SeeInside:
    """Patches deepwise for one run to watch what the script trains (see the module docstring)."""

    def __init__(self):
        self.modules = weakref.WeakSet()
        self.watches: list[_Watch] = []
        self._by_opt = {}
        self._undo = []
        self._pending = []  # training losses since the last optimizer step
        self._current_loader = None

    def _patch(self, owner, name, replacement):
        original = owner.__dict__[name] if name in owner.__dict__ else getattr(owner, name)
        setattr(owner, name, replacement(original))
        self._undo.append((owner, name, original))

    def __enter__(self):
        watcher = self

        def module_init(original):
            def __init__(self, *args, **kwargs):
                original(self, *args, **kwargs)
                watcher.modules.add(self)
            return __init__

        def optimizer_init(original):
            def __init__(self, *args, **kwargs):
                original(self, *args, **kwargs)
                if "step" not in self.__dict__:
                    step = self.step

                    def watched_step(*a, **kw):
                        return watcher._step(self, step, a, kw)

                    self.step = watched_step
            return __init__

        def backward(original):
            def backward(self, *args, **kwargs):
                if self.ndim == 0 or self.array.size == 1:
                    watcher._loss(float(self.array.reshape(())), training=True)
                return original(self, *args, **kwargs)
            return backward

        def loader_iter(original):
            def __iter__(self):
                watcher._loader_started(self)
                return original(self)
            return __iter__

        def loss_fn(original):
            def fn(*args, **kwargs):
                out = original(*args, **kwargs)
                watcher._maybe_val(out)
                return out
            return fn

        def loss_call(original):
            def __call__(self, *args, **kwargs):
                out = original(self, *args, **kwargs)
                if type(self).__name__.endswith("Loss"):
                    watcher._maybe_val(out)
                return out
            return __call__

        self._patch(nn.Module, "__init__", module_init)
        self._patch(nn.Module, "__call__", loss_call)
        self._patch(optim.Optimizer, "__init__", optimizer_init)
        self._patch(Tensor, "backward", backward)
        self._patch(DataLoader, "__iter__", loader_iter)
        for name in dir(functional):
            if name.endswith("_loss") or name in ("cross_entropy", "binary_cross_entropy",
                                                  "binary_cross_entropy_with_logits", "kl_div"):
                self._patch(functional, name, loss_fn)
        return self

    def __exit__(self, *exc):
        for owner, name, original in reversed(self._undo):
            setattr(owner, name, original)
        self._undo = []
        return False

    # ------------------------------------------------------------------ events
    def _step(self, opt, step, args, kwargs):
        watch = self._by_opt.get(id(opt))
        if watch is None:
            params = [p for g in opt.param_groups for p in g["params"]]
            model = _root_model(self.modules, params)
            if model is None:
                return step(*args, **kwargs)
            label = f"{type(model).__name__} + {type(opt).__name__}"
            if any(w.label == label for w in self.watches):
                label += f" #{len(self.watches) + 1}"
            watch = _Watch(model, opt, label)
            watch.loader = self._current_loader
            self._by_opt[id(opt)] = watch
            self.watches.append(watch)
        watch.monitor.on_before_optimizer_step(opt)
        out = step(*args, **kwargs)
        watch.train_losses += self._pending
        watch.step_losses += self._pending
        self._pending = []
        watch.stepped()
        return out

    def _loader_started(self, loader):
        self._current_loader = loader
        for w in self.watches:  # a pass over data in training mode after some steps: the next epoch
            if w.loader is not None and w.fit.model.training and is_grad_enabled():
                w.end_epoch()
                w.loader = loader

    def _loss(self, value, training):
        """A loss ``backward()`` is called on: it belongs to the optimizer that steps next (a GAN's
        discriminator loss to the discriminator's optimizer, its generator loss to the generator's)."""
        self._pending.append(value)

    def _maybe_val(self, out):
        if not self.watches or getattr(out, "ndim", 1) != 0:
            return
        evaluating = not is_grad_enabled() or any(not w.fit.model.training for w in self.watches)
        if evaluating:
            value = float(out.array.reshape(()))
            if math.isfinite(value):
                for w in self.watches:
                    w.val_losses.append(value)

    # ------------------------------------------------------------------ the end
    def finish(self, script, report_dir=None, out=sys.stdout) -> str | None:
        for w in self.watches:
            w.end_epoch()
            w.monitor.on_train_end()
        print("\n=== deepwise run --see-inside: what happened inside ===", file=out)
        if not self.watches:
            if not self._pending:
                print("The script never called optimizer.step(), so there was no training to watch.", file=out)
                return None
            return self._finish_by_hand(script, report_dir, out)
        diagnosis = []
        for w in self.watches:
            print(f"\n{w.label}: {w.steps} optimizer steps over {len(w.rows)} epoch(s)", file=out)
            for row in w.rows[-3:]:
                parts = [f"{k} {v:.4g}" for k, v in row.items() if k in ("loss", "val_loss")]
                print(f"  epoch {row['epoch'] + 1}: " + (", ".join(parts) or "no loss seen"), file=out)
            for text in w.findings():
                print(f"  - {text}", file=out)
                diagnosis.append(f"{w.label}: {text}")
        return self._write(script, report_dir, diagnosis, out)

    def _finish_by_hand(self, script, report_dir, out):
        """A script that updates its tensors itself (``w -= lr * w.grad``), with no optimizer: its
        training losses are the ones ``backward()`` was called on; there is no model and optimizer
        for the gradient monitor and the overfitting advisor to watch."""
        losses = self._pending
        k = max(1, len(losses) // 10)
        first, last = sum(losses[:k]) / k, sum(losses[-k:]) / k
        trend = "fell" if last < first else "did not fall"
        text = (f"trained by hand, without an optimizer: {len(losses)} backward() calls; the training loss "
                f"{trend} from {first:.4g} to {last:.4g} (first and last tenth of the calls). Gradient health "
                "and overfitting advice watch an optimizer and the model it trains, so they had nothing to "
                "watch here.")
        print(f"The script {text}", file=out)
        return self._write(script, report_dir, [text], out, {"backward() without an optimizer": losses})

    def _write(self, script, report_dir, diagnosis, out, by_hand=None):
        name = os.path.splitext(os.path.basename(script))[0]
        folder = report_dir or os.path.join("runs", f"run-{name}-{time.strftime('%Y%m%d-%H%M%S')}")
        os.makedirs(folder, exist_ok=True)
        columns = ["epoch"]
        rows = []
        many = len(self.watches) > 1
        for w in self.watches:
            for row in w.rows:
                rows.append({(f"{w.label}/{k}" if many and k not in ("epoch",) else k): v for k, v in row.items()})
        merged = {}
        for row in rows:
            merged.setdefault(row["epoch"], {}).update(row)
        for row in merged.values():
            columns += [k for k in row if k not in columns]
        lines = [",".join(columns)]
        for epoch in sorted(merged):
            lines.append(",".join("" if merged[epoch].get(c) is None else str(merged[epoch][c]) for c in columns))
        atomic_write_bytes(os.path.join(folder, "history.csv"), ("\n".join(lines) + "\n").encode())
        atomic_write_bytes(os.path.join(folder, "config.json"),
                           json.dumps({"recipe": f"run {os.path.basename(script)}", "script": script}).encode())
        metrics = {"diagnosis": diagnosis,
                   "watched": [{"model_and_optimizer": w.label, "steps": w.steps, "epochs": len(w.rows)}
                               for w in self.watches],
                   "training_losses": by_hand or {w.label: w.step_losses for w in self.watches}}
        atomic_write_bytes(os.path.join(folder, "metrics.json"), json.dumps(metrics, indent=2).encode())
        try:
            path = build_report(folder)
            print(f"\nReport: {path}", file=out)
        except ReportError as exc:
            print(f"\nFindings and history written to {folder} (no HTML report: {exc})", file=out)
        return folder


# ------------------------------------------------------------------------------ the run
def run(script: str, args=(), see_inside: bool = False, report_dir: str | None = None, out=sys.stdout,
        err=sys.stderr) -> int:
    """Run ``script`` under the alias; the exit code (0, the script's own, or 1 on error)."""
    script = os.path.abspath(script)
    if not os.path.isfile(script):
        print(f"deepwise run: no such script: {script}", file=err)
        return 2
    argv, path0 = sys.argv, sys.path[0] if sys.path else None
    sys.argv = [script, *args]
    sys.path.insert(0, os.path.dirname(script))
    watcher = SeeInside() if see_inside else None
    code = 0
    try:
        with torch_alias(), (watcher if watcher is not None else contextlib.nullcontext()):
            try:
                runpy.run_path(script, run_name="__main__")
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            except Exception as exc:
                code = _report_error(exc, script, err)
            if watcher is not None:
                watcher.finish(script, report_dir, out)
    finally:
        sys.argv = argv
        if sys.path and sys.path[0] == os.path.dirname(script) and path0 != sys.path[0]:
            sys.path.pop(0)
    return code


def _report_error(exc, script, err) -> int:
    name = gap_of(exc)
    where = _script_frame(exc.__traceback__, script)
    if name is not None:
        place = f"{os.path.basename(script)}:{where[0]}" if where else os.path.basename(script)
        line = f": {where[1]}" if where and where[1] else ""
        print(f"{place}: deepwise has no {name} (a deepwise gap, not an error in the script){line}", file=err)
        return 1
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=err)
    return 1


__all__ = ["SeeInside", "gap_of", "run", "torch_alias"]
