"""``Function``: one differentiable op, with ONE derivative that serves every order.

A subclass writes ``forward`` on arrays (``xp`` = numpy or cupy) and ``backward`` once::

    class Exp(Function):
        @staticmethod
        def forward(ctx, x):             # arrays in, array (or tuple of arrays) out
            y = xp_of(x).exp(x)
            ctx.save_for_backward(y)     # the arrays backward needs
            return y

        @staticmethod
        def backward(ctx, g):            # one grad per output; one result per positional input
            (y,) = ctx.saved
            return g * y

``Exp.apply(tensor)`` unwraps tensors, runs forward, and -- when some input requires grad and grad
mode is on -- links the output to a ``Context`` node holding its inputs: that link is the graph
that ``loss.backward()`` walks. Non-tensor positional arguments are passed through (their gradient
slot is ``None``); keyword arguments are settings.

How one ``backward`` serves first and higher orders: it is written with Python operators and the
functions of ``deepwise.ops.dual``, which take arrays or Tensors and answer in kind. In a plain
``loss.backward()`` grad mode is off, ``g`` is an array and ``ctx.saved`` gives the saved arrays, so
the formula runs at NumPy speed. With ``create_graph=True`` grad mode is on, ``g`` is a Tensor and
``ctx.saved`` gives Tensors: a saved input comes back as that input tensor, a saved output as that
output (linked to this node), anything else as a constant -- so save masks, indices and the like
freely, but an intermediate that depends on the inputs must be recomputed from saved inputs or
outputs, or its second derivative is lost. Settings (shapes, dims, flags) are plain ``ctx``
attributes.

PyTorch's style works too, for custom Functions written as in PyTorch: ``forward(ctx, *tensors)``
receives Tensors (history-free views of the inputs, run without building a graph) and returns
Tensors; ``ctx.save_for_backward(*tensors)``, ``ctx.saved_tensors``, ``ctx.needs_input_grad`` and
``ctx.mark_non_differentiable(*outputs)`` mean what they mean there; ``backward(ctx, *grads)``
receives and returns Tensors; PyTorch 2's ``forward(*args)`` with a separate
``setup_context(ctx, inputs, output)`` is accepted as well. Which style a subclass uses is its
``array_style`` attribute: True for arrays, False for Tensors; left at None it is arrays for the ops
inside deepwise (and for ``array_backward`` ops) and Tensors for a subclass defined anywhere else, so
a PyTorch program's Functions run unchanged. Tensor style costs a wrapper per call; the saved
values are kept as arrays either way, so create_graph differentiates through saved inputs and
outputs in both.

A fused kernel whose backward needs raw arrays for speed (conv, norms, losses, recurrent layers)
sets ``array_backward = True``. Its higher orders then come from ``composite``: the same function
written with other deepwise ops, which ``create_graph`` differentiates instead (the forward is
recomputed; first-order training never pays for it). Without a composite, ``create_graph=True``
through the op raises an error naming it.
"""

from __future__ import annotations

import contextlib

import numpy as np

from deepwise.autograd import anomaly, engine, mode
from deepwise.backend import get_array_module, is_array, is_floating
from deepwise.tensor import Tensor

_KEEP_CALLS = [0, None]  # depth of ``keep_calls()``, and the list of tensors it collects


@contextlib.contextmanager
def keep_calls():
    """While active, every op applied to a tensor is recorded (integer ones too) and its node keeps the
    arguments it was applied with (``ctx.call = (args, kwargs)``), settings and constants included, so
    that a reader of the graph (the ONNX exporter) sees each op exactly as it was called. Yields a list
    that collects every output tensor made meanwhile, in order (ops that pass another op's raw array
    on can then be traced back to it)."""
    outer = _KEEP_CALLS[1]
    made = []
    _KEEP_CALLS[0] += 1
    _KEEP_CALLS[1] = made
    try:
        yield made
    finally:
        _KEEP_CALLS[0] -= 1
        _KEEP_CALLS[1] = outer


_WATCH = [None]  # a function applied to every op's arguments first (see ``watch_inputs``), or None


@contextlib.contextmanager
def watch_inputs(fn):
    """While active, every ``Function.apply`` passes its positional arguments through ``fn(args)``
    and runs on what it returns (the same tuple to just look). ``deepwise.utils.checkpoint`` finds
    the tensors a block reads this way, and in backward swaps them for detached stand-ins. The
    innermost watcher sees the arguments as the program passed them; outer ones see what it returns
    (a checkpoint inside a checkpoint notes the real tensors, and the outer one swaps them)."""
    outer = _WATCH[0]
    _WATCH[0] = fn if outer is None else (lambda args: outer(fn(args)))
    try:
        yield
    finally:
        _WATCH[0] = outer


def is_keeping_calls() -> bool:
    """Whether ``keep_calls()`` is active (ops with a shortcut for tensors without grad skip it then)."""
    return _KEEP_CALLS[0] > 0


def _keep_node(t, ctx, index):
    """Inside ``keep_calls()`` an output that cannot require grad (integers, booleans) still points at
    the node that made it, so an exporter sees the whole graph; elsewhere ``t`` is returned untouched."""
    if _KEEP_CALLS[0]:
        if t._ctx is None:
            t._ctx, t._out_index = ctx, index
        _KEEP_CALLS[1].append(t)
    return t


class Edge:
    """What a node keeps of an input made by another op: that op's node and which of its outputs
    the input is (the graph), with the input's shape and dtype (gradients are checked against
    them) -- not the Tensor, so the input's values are freed once the program drops it and no
    backward saved them. Leaf inputs (parameters, data) are kept as themselves."""

    __slots__ = ("_ctx", "_out_index", "shape", "dtype")
    requires_grad = True
    grad = None

    def __init__(self, ctx, index, shape, dtype):
        self._ctx, self._out_index, self.shape, self.dtype = ctx, index, shape, dtype

    @property
    def array(self):
        """The input's values if its node saved them for backward (as its output), else None."""
        node = self._ctx
        if node._saved and node.out_ids:
            want = node.out_ids[self._out_index]
            for a in node._saved:
                if id(a) == want:
                    return a
        return None

    def __repr__(self):
        return f"<edge from {self._ctx.name} output {self._out_index}: {self.dtype}{list(self.shape)}>"


class Context:
    """A node of the graph: the op, its inputs, and whatever forward saved for backward."""

    __slots__ = ("fn", "inputs", "needs_input_grad", "n_outputs", "freed", "retained", "hooks",
                 "stack", "_saved", "out_ids", "in_ids", "call", "__dict__")

    _non_differentiable = ()  # ids of outputs marked by mark_non_differentiable (set per node when used)
    materialize_grads = True  # an output nobody used gets zeros in backward (False: None), as in PyTorch

    def __init__(self, fn, inputs, needs_input_grad):
        self.fn = fn
        self.inputs = inputs
        self.needs_input_grad = needs_input_grad
        self.n_outputs = 1
        self.freed = False
        self.retained = None  # [(output index, weakref to tensor)] for retain_grad()
        self.hooks = None  # {output index: [hook, ...]} for register_hook() on non-leaves
        self.stack = None  # creation traceback, recorded in anomaly mode
        self._saved = ()
        self.out_ids = ()  # ids of the output arrays, to recognise a saved output (see ``saved``)
        self.in_ids = ()  # ids of the input arrays, to recognise a saved input (set when something is saved)
        self.call = None  # (args, kwargs) of apply, kept for ops that have a ``composite``

    @property
    def name(self) -> str:
        return self.fn.__name__

    def save_for_backward(self, *arrays):
        """Keep ``arrays`` or Tensors (inputs, outputs, masks, ...) for ``backward``; read them as
        ``ctx.saved`` (arrays in a first-order backward) or ``ctx.saved_tensors`` (Tensors)."""
        self._saved = tuple([a.array if isinstance(a, Tensor) else a for a in arrays])

    @property
    def saved_tensors(self) -> tuple:
        """PyTorch's name: what forward saved, as Tensors (see ``saved`` for which ones)."""
        return tuple(Tensor._make(a) if is_array(a) or isinstance(a, np.generic) else a for a in self.saved)

    def mark_non_differentiable(self, *outputs):
        """Outputs (of this forward) that get no gradient: they come back with requires_grad=False
        and their gradient slot in backward is zeros."""
        if not self._non_differentiable:
            self._non_differentiable = set()
        self._non_differentiable.update(id(o.array if isinstance(o, Tensor) else o) for o in outputs)

    def set_materialize_grads(self, value: bool) -> None:
        """PyTorch's switch: with ``False``, backward receives None (not zeros) for an output whose
        gradient nobody computed, so it can skip work on it."""
        self.materialize_grads = bool(value)

    def mark_dirty(self, *tensors):
        """Accepted for PyTorch's custom Functions that modify inputs in place; deepwise keeps no
        version counters, so there is nothing to record."""

    @property
    def saved(self) -> tuple:
        """What forward saved: the arrays in a first-order backward (grad mode off); under
        ``create_graph`` (grad mode on) Tensors -- the input or output tensor a saved array is, so
        the backward formula is differentiated through it, or a constant."""
        if not mode.is_grad_enabled():
            return self._saved
        return tuple(self._as_tensor(a) for a in self._saved)

    def _as_tensor(self, a):
        if not is_array(a) and not isinstance(a, np.generic):  # 0-d results are NumPy scalars
            return a  # None, or a setting saved alongside
        for t, i in zip(self.inputs or (), self.in_ids):
            if t is not None and i == id(a):  # a saved input: the input itself, or a tensor on its edge
                return t if isinstance(t, Tensor) else Tensor._make(a, True, t._ctx, t._out_index)
        if id(a) in self.out_ids:
            return Tensor._make(a, True, self, self.out_ids.index(id(a)))
        return Tensor._make(a)

    def release(self):
        """Drop saved buffers and input references (after a backward without retain_graph)."""
        self.__dict__.clear()
        self._saved = ()
        self.call = None
        self.inputs = None
        self.freed = True

    def __repr__(self):
        return f"<{self.name}Backward>"


def _to_tensor(a):
    return Tensor._make(a) if is_array(a) or isinstance(a, np.generic) else a


def _to_array(t):
    if isinstance(t, Tensor):
        return t.array
    if t is None or is_array(t):
        return t
    return np.asarray(t)


class Function:
    """Base class of every differentiable op; see the module docstring."""

    array_backward = False  # True: backward works on arrays only; higher orders use ``composite``
    composite = None  # staticmethod(*apply args, **settings) -> the same outputs, in other ops
    array_style = None  # True: forward/backward on arrays; False: on Tensors (PyTorch's); None: decide
    _tensor_style = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        style = cls.array_style
        if style is None:
            style = cls.array_backward or cls.__module__.startswith("deepwise.")
        cls._tensor_style = not style
        if cls._tensor_style and "backward" in cls.__dict__:
            user_backward = cls.__dict__["backward"]
            user_backward = getattr(user_backward, "__func__", user_backward)

            def backward(ctx, *grads):
                if mode.is_grad_enabled():  # create_graph: grads are Tensors in a graph already
                    return user_backward(ctx, *grads)
                out = user_backward(ctx, *(_to_tensor(g) for g in grads))
                if isinstance(out, (tuple, list)):
                    return tuple(_to_array(o) for o in out)
                return _to_array(out)

            backward.__wrapped__ = user_backward
            cls.backward = staticmethod(backward)

    @classmethod
    def _forward_tensors(cls, ctx, args, kwargs):
        """PyTorch's style: forward on history-free Tensors, without a graph; outputs as arrays."""
        views = tuple(Tensor._make(a.array) if isinstance(a, Tensor) else a for a in args)
        with mode.no_grad():
            if "setup_context" in _defined(cls):
                out = cls.forward(*views, **kwargs)
                cls.setup_context(ctx, views, out)
            else:
                out = cls.forward(ctx, *views, **kwargs)
        if isinstance(out, (tuple, list)):
            return tuple(_to_array(o) for o in out)
        return _to_array(out)

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError

    @staticmethod
    def backward(ctx, *grads):
        raise NotImplementedError

    @classmethod
    def apply(cls, *args, **kwargs):
        # the hot path of every op: plain loops, no generators, one pass over the arguments
        if _WATCH[0] is not None:
            args = _WATCH[0](args)
        arrays = []
        needs = []
        record = False
        for a in args:
            if isinstance(a, Tensor):
                arrays.append(a.array)
                if a.requires_grad:
                    needs.append(True)
                    record = True
                else:
                    needs.append(False)
            else:
                arrays.append(a)
                needs.append(False)
        keeping = _KEEP_CALLS[0]
        if keeping:  # an exporter reads every op on tensors, integer ones (token ids) too
            record = any(isinstance(a, Tensor) for a in args)
        if record and not mode.is_grad_enabled():
            record = False
        ctx = Context(cls, None, tuple(needs))
        if cls._tensor_style:
            out = cls._forward_tensors(ctx, args, kwargs)
        else:
            out = cls.forward(ctx, *arrays, **kwargs)
        checking = anomaly.anomaly_enabled()
        if checking:
            anomaly.check_forward(ctx, out, args)
        if not record:
            if isinstance(out, tuple):
                return tuple([Tensor._make(o) for o in out])
            return Tensor._make(out)
        inputs = []
        if keeping or checking:  # readers of the graph (exporters, anomaly reports) see the inputs' values
            for a in args:
                inputs.append(a if isinstance(a, Tensor) else None)
        else:
            for a in args:
                if not isinstance(a, Tensor):
                    inputs.append(None)
                elif a._ctx is None:
                    inputs.append(a)
                else:
                    arr = a.array
                    inputs.append(Edge(a._ctx, a._out_index, arr.shape, arr.dtype))
        ctx.inputs = tuple(inputs)
        if cls.composite is not None or keeping:
            ctx.call = (args, kwargs)
        saved = ctx._saved
        if saved:
            ctx.in_ids = tuple([id(a) for a in arrays])
        frozen = ctx._non_differentiable
        if isinstance(out, tuple):
            ctx.n_outputs = len(out)
            ctx.out_meta = [(o.shape, o.dtype, get_array_module(o)) for o in out]
            if saved:
                ctx.out_ids = tuple([id(o) for o in out])
            return tuple([
                _keep_node(Tensor._make(o) if id(o) in frozen else
                           Tensor._make(o, o.dtype.kind in "fc" or is_floating(o.dtype), ctx, i), ctx, i)
                for i, o in enumerate(out)
            ])
        if saved:
            ctx.out_ids = (id(out),)
        if frozen and id(out) in frozen:
            return _keep_node(Tensor._make(out), ctx, 0)
        t = Tensor._make(out, out.dtype.kind in "fc" or is_floating(out.dtype), ctx, 0)
        return _keep_node(t, ctx, 0) if keeping else t

    @classmethod
    def differentiable_backward(cls, ctx, grads):
        """The gradients of an ``array_backward`` op as Tensors in a graph (for ``create_graph``):
        its ``composite`` is run again on the same inputs and differentiated."""
        if cls.composite is None:
            raise RuntimeError(
                f"{cls.__name__} does not support create_graph=True (double backward): its backward "
                "is written on arrays only. Compute the first derivative without create_graph, or "
                "build this step from ops that support it"
            )
        args, kwargs = ctx.call
        with mode.enable_grad():
            outs = cls.composite(*args, **kwargs)
        outs = outs if isinstance(outs, tuple) else (outs,)
        pairs = [(o, g) for o, g in zip(outs, grads) if o.requires_grad and g is not None]
        wrt = [i for i, need in enumerate(ctx.needs_input_grad) if need]
        if not pairs or not wrt:
            return (None,) * len(ctx.needs_input_grad)
        got = engine.grad([o for o, _ in pairs], [args[i] for i in wrt], [g for _, g in pairs],
                          create_graph=True, allow_unused=True)
        result = [None] * len(ctx.needs_input_grad)
        for i, g in zip(wrt, got):
            result[i] = g
        return tuple(result)


def _defined(cls):
    """The attribute names the classes between ``cls`` and ``Function`` define."""
    names = set()
    for klass in cls.__mro__:
        if klass is Function:
            break
        names.update(klass.__dict__)
    return names


def Variable(data, requires_grad=False, volatile=False):
    """``torch.autograd.Variable``: since PyTorch 0.4 a Variable is a Tensor, so this returns
    ``data`` itself (marked to require grad when asked); ``volatile`` is accepted and ignored."""
    if not isinstance(data, Tensor):
        data = Tensor(data)
    if requires_grad:
        data.requires_grad_(True)
    return data

