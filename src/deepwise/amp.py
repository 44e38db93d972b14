"""Mixed precision: ``autocast`` chooses each op's precision, ``GradScaler`` keeps float16 gradients
from underflowing. PyTorch's ``torch.amp`` names and semantics::

    scaler = dw.amp.GradScaler("cuda")
    for x, y in loader:
        optimizer.zero_grad()
        with dw.autocast("cuda", dtype=dw.float16):
            loss = F.cross_entropy(model(x), y)   # matmuls and convs in float16, the loss in float32
        scaler.scale(loss).backward()             # gradients of loss * scale: no float16 underflow
        scaler.step(optimizer)                    # unscale; skip the step if any gradient is inf/NaN
        scaler.update()                           # halve the scale after an overflow, grow it slowly

Under ``autocast`` the parameters stay float32: an op on the low-precision list casts its inputs to
the low dtype on the way in (differentiably, so each parameter's gradient arrives in float32); the
ops on the float32 list (losses; on CUDA also softmax, norms, exp/log and reductions) cast low
precision inputs up; every other op runs in its inputs' dtype. The tables are in
``deepwise/ops/_autocast.py``; they are the same for both low dtypes, as in PyTorch.

The low dtype is ``dw.float16`` or ``dw.bfloat16``. As in PyTorch the default is float16 on
``"cuda"`` and bfloat16 on ``"cpu"``. bfloat16 is ml_dtypes' type (``pip install "deepwise[bf16]"``;
NumPy and CuPy >= 14 compute with it): it has float32's range, so its gradients do not underflow and
``GradScaler`` is not needed (it works unchanged). bfloat16 matmuls, convolutions and reductions
compute in float32 and round once, as PyTorch's CPU kernels do. Everything runs on the CPU too, so
it is tested without a GPU.
"""

from __future__ import annotations

import functools
import math

from deepwise import backend
from deepwise.autograd.mode import no_grad
from deepwise.backend import Device
from deepwise.tensor import Tensor


def _device_type(device_type):
    kind = Device(device_type).type
    return kind


_NO_BFLOAT16 = 'bfloat16 needs the ml_dtypes package (pip install "deepwise[bf16]")'


def _default_dtype(device_type, enabled=True):
    """PyTorch's defaults: float16 on CUDA, bfloat16 on the CPU (a disabled block names float16 when
    ml_dtypes is missing: it casts nothing)."""
    if device_type == "cuda":
        return backend.float16
    bf16 = backend.bfloat16_dtype()
    if bf16 is None and not enabled:
        return backend.float16
    if bf16 is None:
        raise TypeError(f'autocast("cpu"): the CPU default dtype, {_NO_BFLOAT16}; or pass dtype=dw.float16')
    return bf16


def _low_dtype(dtype):
    if "bfloat16" in str(dtype) and backend.bfloat16_dtype() is None:
        raise TypeError(f"autocast: {_NO_BFLOAT16}; or use dtype=dw.float16")
    try:
        dt = backend.to_dtype(dtype)
    except TypeError:
        raise TypeError(f"autocast: dtype must be dw.float16 or dw.bfloat16, got {dtype!r}") from None
    if dt != backend.float16 and not backend.is_bfloat16(dt):
        raise TypeError(f"autocast: dtype must be dw.float16 or dw.bfloat16 (the low precision ops run in), "
                        f"got {dt}")
    return dt


class autocast:
    """``with dw.autocast("cuda"):`` (or ``"cpu"``) runs the block's ops in mixed precision on that
    device type; tensors on other devices are untouched. ``dtype`` is ``dw.float16`` (the default on
    ``"cuda"``) or ``dw.bfloat16`` (the default on ``"cpu"``), as in PyTorch. ``enabled=False``
    turns autocast off inside the block, also when nested in an enabled one. Usable as a decorator.
    ``cache_enabled`` is accepted for PyTorch compatibility; casts are not cached."""

    def __init__(self, device_type="cuda", dtype=None, enabled=True, cache_enabled=None):
        self.device_type = _device_type(device_type)
        self.fast_dtype = _default_dtype(self.device_type, enabled) if dtype is None else _low_dtype(dtype)
        self.enabled = bool(enabled)
        self._previous = []

    def __enter__(self):
        self._previous.append(backend.set_autocast(self.device_type, self.fast_dtype if self.enabled else None))
        return self

    def __exit__(self, *exc):
        backend.set_autocast(self.device_type, self._previous.pop())
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with autocast(self.device_type, self.fast_dtype, self.enabled):
                return fn(*args, **kwargs)

        return run

    def __repr__(self):
        return f"autocast(device_type={self.device_type!r}, dtype={self.fast_dtype}, enabled={self.enabled})"


def is_autocast_enabled(device_type="cuda") -> bool:
    return backend.autocast_dtype(_device_type(device_type)) is not None


def get_autocast_dtype(device_type="cuda"):
    """The dtype autocast uses on ``device_type``; while it is off, the default (float16 on CUDA,
    bfloat16 on the CPU, as in PyTorch; float16 there too when ml_dtypes is not installed)."""
    kind = _device_type(device_type)
    current = backend.autocast_dtype(kind)
    if current is not None:
        return current
    return (kind == "cpu" and backend.bfloat16_dtype()) or backend.float16


# ------------------------------------------------------------------------------------- GradScaler
class GradScaler:
    """Dynamic loss scaling, as ``torch.amp.GradScaler``.

    ``scale(loss)`` multiplies by the current scale (``init_scale``, 65536 by default) so small
    float16 gradients do not flush to zero; ``step(optimizer)`` divides the gradients by it again
    (``unscale_``, which you may call yourself first, e.g. to clip) and runs the optimizer's step only
    if every gradient is finite; ``update()`` multiplies the scale by ``backoff_factor`` (0.5) after a
    skipped step, and by ``growth_factor`` (2) after ``growth_interval`` (2000) finite steps in a row.
    ``state_dict()`` / ``load_state_dict()`` carry the scale and the growth tracker in checkpoints.
    With ``enabled=False`` every method passes through (``scale`` returns the loss, ``step`` steps).
    """

    def __init__(self, device="cuda", init_scale=2.0**16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if growth_factor <= 1.0:
            raise ValueError(f"GradScaler: growth_factor must be > 1, got {growth_factor}")
        if not 0.0 < backoff_factor < 1.0:
            raise ValueError(f"GradScaler: backoff_factor must be in (0, 1), got {backoff_factor}")
        if int(growth_interval) <= 0:
            raise ValueError(f"GradScaler: growth_interval must be a positive int, got {growth_interval}")
        if not init_scale > 0:
            raise ValueError(f"GradScaler: init_scale must be positive, got {init_scale}")
        self.device = _device_type(device)
        self._enabled = bool(enabled)
        self._scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._growth_tracker = 0
        self._per_optimizer = {}  # id(optimizer) -> {"unscaled": bool, "found_inf": bool, "stepped": bool}

    # ----------------------------------------------------------------------------- the three calls
    def scale(self, outputs):
        """``outputs * scale`` (a tensor, or tensors in lists/tuples/dicts)."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, Tensor):  # float16 in, float32 out (65536 * a float16 loss would overflow)
            return (outputs.float() if outputs.dtype == backend.float16 else outputs) * self._scale
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, dict):
            return {k: self.scale(v) for k, v in outputs.items()}
        raise TypeError(f"GradScaler.scale: expected a Tensor (or a list/tuple/dict of them), got "
                        f"{type(outputs).__name__}")

    def unscale_(self, optimizer) -> None:
        """Divide ``optimizer``'s gradients by the scale in place and note whether any is inf/NaN.
        Once per optimizer between ``update()`` calls."""
        if not self._enabled:
            return
        state = self._state(optimizer)
        if state["unscaled"]:
            raise RuntimeError("GradScaler.unscale_() has already been called on this optimizer since the last "
                               "update()")
        if state["stepped"]:
            raise RuntimeError("GradScaler.unscale_() is being called after step(): call update() first")
        inv = 1.0 / self._scale
        finite = {}  # device -> a 0-d bool array: one host read per device, not one per gradient
        done = {}  # id(array) -> its unscaled copy: a gradient array two parameters share is divided once
        with no_grad():
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is None:
                        continue
                    g = p.grad.array
                    if id(g) not in done:  # a new array: the gradient may share its array with others
                        xp = backend.get_array_module(g)
                        done[id(g)] = (g, xp.multiply(g, g.dtype.type(inv)))
                        ok = xp.isfinite(done[id(g)][1]).all()
                        key = backend.device_of(g)
                        finite[key] = ok if key not in finite else finite[key] & ok
                    p.grad.array = done[id(g)][1]
        state["found_inf"] = not all(bool(ok) for ok in finite.values())
        state["unscaled"] = True

    def step(self, optimizer, *args, **kwargs):
        """Unscale (unless done already) and run ``optimizer.step(*args, **kwargs)`` if every gradient
        is finite; returns what the step returned, or None when it was skipped."""
        if not self._enabled:
            return optimizer.step(*args, **kwargs)
        if "closure" in kwargs:
            raise RuntimeError("GradScaler.step: closures are not supported (as in PyTorch)")
        state = self._state(optimizer)
        if state["stepped"]:
            raise RuntimeError("GradScaler.step() has already been called since the last update()")
        if not state["unscaled"]:
            self.unscale_(optimizer)
        state["stepped"] = True
        if state["found_inf"]:
            return None
        return optimizer.step(*args, **kwargs)

    def update(self, new_scale=None) -> None:
        """Adjust the scale for the next iteration (or set it to ``new_scale``)."""
        if not self._enabled:
            return
        if new_scale is not None:
            value = new_scale.item() if isinstance(new_scale, Tensor) else float(new_scale)
            if not value > 0 or not math.isfinite(value):
                raise ValueError(f"GradScaler.update: new_scale must be positive and finite, got {value}")
            self._scale = value
        else:
            states = list(self._per_optimizer.values())
            if not any(s["unscaled"] for s in states):
                raise RuntimeError("GradScaler.update: no inf checks were recorded: call scaler.step(optimizer) "
                                   "(or unscale_) before update()")
            if any(s["found_inf"] for s in states):
                self._scale *= self._backoff_factor
                self._growth_tracker = 0
            else:
                self._growth_tracker += 1
                if self._growth_tracker == self._growth_interval:
                    self._scale *= self._growth_factor
                    self._growth_tracker = 0
        self._per_optimizer = {}

    def _state(self, optimizer):
        return self._per_optimizer.setdefault(id(optimizer), {"unscaled": False, "found_inf": False,
                                                              "stepped": False})

    # --------------------------------------------------------------------------------- settings
    def get_scale(self) -> float:
        return self._scale if self._enabled else 1.0

    def get_growth_factor(self) -> float:
        return self._growth_factor

    def set_growth_factor(self, new_factor) -> None:
        self._growth_factor = float(new_factor)

    def get_backoff_factor(self) -> float:
        return self._backoff_factor

    def set_backoff_factor(self, new_factor) -> None:
        self._backoff_factor = float(new_factor)

    def get_growth_interval(self) -> int:
        return self._growth_interval

    def set_growth_interval(self, new_interval) -> None:
        self._growth_interval = int(new_interval)

    def is_enabled(self) -> bool:
        return self._enabled

    def state_dict(self) -> dict:
        """PyTorch's keys: scale, growth_factor, backoff_factor, growth_interval, _growth_tracker
        (empty when disabled)."""
        if not self._enabled:
            return {}
        return {"scale": self._scale, "growth_factor": self._growth_factor, "backoff_factor": self._backoff_factor,
                "growth_interval": self._growth_interval, "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state_dict) -> None:
        if not self._enabled:
            return
        if not state_dict:
            raise RuntimeError("GradScaler.load_state_dict: the state_dict is empty (saved from a disabled scaler?)")
        missing = {"scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker"} - set(state_dict)
        if missing:
            raise KeyError(f"GradScaler.load_state_dict: missing {sorted(missing)}")
        self._scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._growth_tracker = int(state_dict["_growth_tracker"])

    def __repr__(self):
        return (f"GradScaler(device={self.device!r}, scale={self._scale}, growth_factor={self._growth_factor}, "
                f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval}, "
                f"enabled={self._enabled})")


__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled"]
