"""``Function``: one differentiable op.

A subclass writes two static methods on arrays (``xp`` = numpy or cupy)::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):             # arrays in, array (or tuple of arrays) out
            y = xp_of(x).exp(x)
            ctx.y = y                    # keep what backward needs on ctx
            return y

        @staticmethod
        def backward(ctx, grad):         # one grad per output; one result per positional input
            return grad * ctx.y

``Exp.apply(tensor)`` unwraps tensors, runs forward, and -- when some input requires grad and grad mode
is on -- links the output to a ``Context`` node holding its inputs: that link is the graph that
``loss.backward()`` walks. Non-tensor positional arguments are passed through (their gradient slot
is ``None``); keyword arguments are settings.

An op that must support higher-order gradients (``create_graph=True``) also writes
``backward_graph(ctx, *grad_tensors)`` with Tensor ops, so the backward pass is itself recorded.
"""

from __future__ import annotations

from deepwise.autograd import engine
from deepwise.backend import get_array_module


class Context:
    """A node of the graph: the op, its inputs, and whatever forward saved for backward."""

    __slots__ = ("fn", "inputs", "needs_input_grad", "n_outputs", "freed", "retained", "hooks",
                 "stack", "__dict__")

    def __init__(self, fn, inputs, needs_input_grad):
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        self.n_outputs = 1
        self.freed = False
        self.retained = None  # [(output index, weakref to tensor)] for retain_grad()
        self.hooks = None  # {output index: [hook, ...]} for register_hook() on non-leaves
        self.stack = None  # creation traceback, recorded in anomaly mode

    @property
    def name(self) -> str:
        return self.fn.__name__

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def release(self):
        """Drop saved buffers and input references (after a backward without retain_graph)."""
        self.__dict__.clear()
        self.inputs = None
        self.freed = True

    def __repr__(self):
        return f"<{self.name}Backward>"


class Function:
    """Base class of every differentiable op; see the module docstring."""

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        from deepwise.tensor import Tensor  # noqa: PLC0415 - tensor imports ops, ops import us

        arrays = []
        needs = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.data)
                needs.append(a.requires_grad)
                record = record or a.requires_grad
            else:
                arrays.append(a)
                needs.append(False)
        record = record and engine.is_grad_enabled()
        ctx = Context(cls, None, tuple(needs))
        out = cls.forward(ctx, *arrays, **kwargs)
        if engine.anomaly_enabled():
            engine.check_forward(ctx, out, args)
        if not record:
            if isinstance(out, tuple):
                return tuple(Tensor._make(o) for o in out)
            return Tensor._make(out)
        ctx.inputs = tuple(a if isinstance(a, Tensor) else None for a in args)
        if isinstance(out, tuple):
            ctx.n_outputs = len(out)
            ctx.out_meta = [(o.shape, o.dtype, get_array_module(o)) for o in out]
            return tuple(
                Tensor._make(o, o.dtype.kind in "fc", ctx, i) for i, o in enumerate(out)
            )
        return Tensor._make(out, out.dtype.kind in "fc", ctx, 0)
