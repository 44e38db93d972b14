"""Grad mode: whether ops record the graph. The only global state of autograd besides anomaly mode.

``Function.apply`` records a node only while grad mode is on and some input requires grad; the
engine turns it off during a first-order backward (so the backward formulas run on plain arrays)
and leaves it on with ``create_graph=True`` (so they run on Tensors and are recorded in turn).
"""

from __future__ import annotations

import functools

_grad_enabled = True



def is_grad_enabled() -> bool:
    return _grad_enabled


class set_grad_enabled:
    """Set grad mode now: ``dw.set_grad_enabled(False)``; as a context manager
    (``with dw.set_grad_enabled(training):``) it restores the previous mode on exit."""

    def __init__(self, mode: bool):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = bool(mode)

    def __enter__(self):
        return None

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False


class _GradMode:
    """Context manager and decorator (``@dw.no_grad()`` or ``@dw.no_grad``) that sets grad mode
    and restores it on exit."""

    mode = True

    def __new__(cls, fn=None):
        self = super().__new__(cls)
        if fn is None:
            return self
        if not callable(fn):
            raise TypeError(f"{cls.__name__}() takes no arguments; use it as `with {cls.__name__}():` or a decorator")
        return self(fn)  # used bare: @dw.no_grad

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self.mode

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self.__class__():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_GradMode):
    """Operations inside build no graph: ``with dw.no_grad(): ...`` or ``@dw.no_grad()``."""

    mode = False


class enable_grad(_GradMode):
    """Turn graph building back on inside a ``no_grad`` block."""

    mode = True




class inference_mode:
    """``torch.inference_mode``: no graph is built inside (``with dw.inference_mode():`` or as a
    decorator, bare or called). deepwise has no separate inference tensors, so this is ``no_grad``
    with PyTorch's signature: ``inference_mode(mode=True)``; ``mode=False`` leaves grad mode as it is."""

    def __new__(cls, mode=True):
        if callable(mode):  # used bare: @dw.inference_mode
            return cls(True)(mode)
        return super().__new__(cls)

    def __init__(self, mode=True):
        self.mode = bool(mode)

    def __enter__(self):
        global _grad_enabled
        self._prev = _grad_enabled
        if self.mode:
            _grad_enabled = False

    def __exit__(self, *exc):
        global _grad_enabled
        _grad_enabled = self._prev
        return False

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with inference_mode(self.mode):
                return fn(*args, **kwargs)

        return wrapper

