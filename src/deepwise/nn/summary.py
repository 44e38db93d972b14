"""``summary(model, input_shape)``: the table of layers, output shapes, parameter counts and memory.

    >>> print(dw.summary(model, (1, 8, 8)))
    Layer (type)          Output shape       Params   Trainable
    =============================================================
    0 (Conv2d)            (-1, 8, 8, 8)          80          80
    1 (ReLU)              (-1, 8, 8, 8)           0           0
    ...

The output shapes are not computed from formulas: one sample (a batch of 1, random normal values for
float inputs, zeros for integer ones) runs through the model in eval mode without building a graph,
and a forward hook on every module writes down what came out. Dimension 0 (the batch) is shown as -1,
as Keras and torchsummary do. The hooks are removed and every module's train/eval mode is restored
afterwards; the global random generator is not touched.

A row is a layer that computes something: a module with no children, or one that owns parameters
directly. Its parameter count is that of its *own* parameters, so the rows add up to the totals; a
module called twice (weight sharing) gets a row per call, its parameters counted on the first.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.nn.module import Module
from deepwise.tensor import Tensor

__all__ = ["Summary", "SummaryRow", "human_bytes", "summary"]


def human_bytes(n: int | float) -> str:
    """``1536 -> '1.5 KiB'`` (powers of 1024)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{int(n)} B" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover - the loop always returns


@dataclass
class SummaryRow:
    """One layer call: ``name`` (dotted path in the model), ``type`` (class name), ``output_shape``
    (a tuple with -1 for the batch; a list of them for several outputs; None when not called),
    ``params`` = ``trainable`` + ``frozen`` (its own parameters, first call only), ``output_bytes``
    (for the batch size asked for), ``depth`` (number of dots + 1) and ``repeat`` (called before)."""

    name: str
    type: str
    output_shape: object
    params: int = 0
    trainable: int = 0
    frozen: int = 0
    output_bytes: int = 0
    depth: int = 1
    repeat: bool = False


@dataclass
class Summary:
    """What ``summary()`` found; ``print(summary)`` shows the table."""

    model_name: str
    input_shapes: list
    input_dtypes: list
    batch_size: int
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0
    frozen_params: int = 0
    param_bytes: int = 0
    buffer_bytes: int = 0
    input_bytes: int = 0
    activation_bytes: int = 0

    @property
    def non_trainable_params(self) -> int:
        return self.frozen_params

    @property
    def training_bytes_estimate(self) -> int:
        """Input + parameters and their gradients + activations kept for backward and their
        gradients. Optimizer state (Adam keeps 2 more copies of the parameters) is not included."""
        return self.input_bytes + 2 * self.param_bytes + self.buffer_bytes + 2 * self.activation_bytes

    def to_dict(self) -> dict:
        """Plain numbers and strings (JSON-able), e.g. for a run's metrics.json."""
        return {
            "model": self.model_name,
            "input_shapes": [list(s) for s in self.input_shapes],
            "total_params": self.total_params,
            "trainable_params": self.trainable_params,
            "frozen_params": self.frozen_params,
            "param_bytes": self.param_bytes,
            "buffer_bytes": self.buffer_bytes,
            "input_bytes": self.input_bytes,
            "activation_bytes": self.activation_bytes,
            "layers": [
                {"name": r.name, "type": r.type, "output_shape": _jsonable(r.output_shape), "params": r.params,
                 "trainable": r.trainable, "frozen": r.frozen}
                for r in self.rows
            ],
        }

    def __str__(self) -> str:
        head = ("Layer (type)", "Output shape", "Params", "Trainable")
        body = []
        for r in self.rows:
            label = f"{r.name} ({r.type})"
            shape = "not called" if r.output_shape is None else _format_shape(r.output_shape)
            params = "(shared)" if r.repeat else f"{r.params:,}"
            trainable = "" if r.repeat else f"{r.trainable:,}"
            body.append((label, shape, params, trainable))
        widths = [max([len(head[i])] + [len(b[i]) for b in body]) for i in range(4)]
        total_width = sum(widths) + 3 * 3

        def line(cells):
            return (f"{cells[0]:<{widths[0]}}   {cells[1]:<{widths[1]}}   {cells[2]:>{widths[2]}}   "
                    f"{cells[3]:>{widths[3]}}").rstrip()

        inputs = ", ".join(f"{_format_shape(s)} {d}" for s, d in zip(self.input_shapes, self.input_dtypes))
        out = [f"Model: {self.model_name}    input: {inputs}", "-" * total_width, line(head), "=" * total_width]
        out += [line(b) for b in body]
        out += [
            "=" * total_width,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Frozen (non-trainable) params: {self.frozen_params:,}",
            "-" * total_width,
            f"Input size (batch of {self.batch_size}): {human_bytes(self.input_bytes)}",
            f"Activations (layer outputs, batch of {self.batch_size}): {human_bytes(self.activation_bytes)}",
            f"Parameters: {human_bytes(self.param_bytes)}",
            f"Buffers: {human_bytes(self.buffer_bytes)}",
            f"Training estimate (input + 2 x params + buffers + 2 x activations; optimizer state not "
            f"included): {human_bytes(self.training_bytes_estimate)}",
            "-" * total_width,
        ]
        return "\n".join(out)

    def __repr__(self) -> str:
        return self.__str__()


def _jsonable(shape):
    if shape is None:
        return None
    if isinstance(shape, list):
        return [_jsonable(s) for s in shape]
    return list(shape)


def _format_shape(shape) -> str:
    if isinstance(shape, list):
        return "[" + ", ".join(_format_shape(s) for s in shape) + "]"
    if len(shape) == 1:
        return f"({shape[0]},)"
    return "(" + ", ".join(str(d) for d in shape) + ")"


def _shape_of(out):
    """A module output's shape: a tuple, a list of them for several outputs, None for non-tensors."""
    if isinstance(out, Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        shapes = [sh for sh in (_shape_of(o) for o in out) if sh is not None]
        return shapes if shapes else None
    return None


def _nbytes(out) -> int:
    if isinstance(out, Tensor):
        return int(out.array.nbytes)
    if isinstance(out, (tuple, list)):
        return sum(_nbytes(o) for o in out)
    return 0


def _mark_batch(one, two):
    """-1 where the dimension grew from 1 (one sample) to 2 (two samples): the batch dimension."""
    if one is None:
        return None
    if isinstance(one, list):
        if not isinstance(two, list) or len(two) != len(one):
            return [_mark_batch(o, None) for o in one]
        return [_mark_batch(o, t) for o, t in zip(one, two)]
    if not isinstance(two, tuple) or len(two) != len(one):  # no second run to compare: dim 0
        return (-1, *one[1:]) if one and one[0] == 1 else one
    return tuple(-1 if (a > 0 and b == 2 * a) else a for a, b in zip(one, two))


def _make_inputs(input_shape, dtype, device, batch_dim):
    """One sample per input: random normal floats (a fixed local generator), zeros otherwise."""
    if isinstance(input_shape, int):
        input_shape = (input_shape,)
    if not isinstance(input_shape, (tuple, list)) or not input_shape:
        raise TypeError(f"summary: input_shape must be a tuple of ints without the batch dimension, e.g. (64,) or "
                        f"(1, 28, 28), or a list of such tuples for several inputs; got {input_shape!r}")
    shapes = list(input_shape) if all(isinstance(s, (tuple, list)) for s in input_shape) else [input_shape]
    for s in shapes:
        if not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d > 0 for d in s):
            raise ValueError(f"summary: every dimension of an input shape must be a positive int, got {tuple(s)} "
                             "(leave the batch dimension out)")
    dtypes = list(dtype) if isinstance(dtype, (tuple, list)) else [dtype] * len(shapes)
    if len(dtypes) != len(shapes):
        raise ValueError(f"summary: {len(shapes)} input shapes but {len(dtypes)} dtypes")
    local = np.random.default_rng(0)
    tensors = []
    for s, d in zip(shapes, dtypes):
        d = backend.to_dtype(d) or backend.DEFAULT_FLOAT
        if not -len(s) - 1 <= batch_dim <= len(s):
            raise ValueError(f"summary: batch_dim={batch_dim} is out of range for an input of shape {tuple(s)}")
        arr = local.standard_normal(tuple(s)).astype(d) if backend.is_floating(d) else np.zeros(tuple(s), dtype=d)
        arr = np.expand_dims(arr, batch_dim)
        t = Tensor(arr)
        if device is not None and t.device != device:
            t = t.to(device)
        tensors.append(t)
    return [backend.to_dtype(d) or backend.DEFAULT_FLOAT for d in dtypes], tensors


def _twice(t, batch_dim):
    xp = backend.get_array_module(t.array)
    return Tensor._make(xp.concatenate([t.array, t.array], axis=batch_dim))


def _run(model, named, shown, names, root_name, inputs):
    """[(module, output)] in the order the shown modules finished, for one forward pass in eval
    mode without a graph; hooks and train/eval modes are restored whatever happens."""
    calls = []

    def hook(module, args, out):
        calls.append((module, out))

    handles = [m.register_forward_hook(hook) for _, m in named if id(m) in shown]
    modes = [(m, m.training) for _, m in named]
    try:
        model.eval()
        with no_grad():
            model(*inputs)
    except Exception as exc:
        ran = (f"; the last layer that ran was {names[id(calls[-1][0])]!r} ({type(calls[-1][0]).__name__})"
               if calls else "; it failed in its first layer")
        raise RuntimeError(f"summary: running {root_name} on an input of shape "
                           f"{', '.join(str(tuple(t.shape)) for t in inputs)} failed{ran}: {exc}") from exc
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes:
            m.training = mode
    return calls


def summary(model, input_shape=None, dtype=backend.float32, batch_size: int = 1, input_data=None,
            batch_dim: int = 0) -> Summary:
    """Run one sample through ``model`` and tabulate its layers (see the module docstring).

    Args:
        model: a ``deepwise.nn.Module``.
        input_shape: the shape of ONE sample, without the batch dimension: ``(64,)``, ``(1, 28, 28)``;
            a list of shapes for a model that takes several inputs.
        dtype: the input dtype (one per input when a list); integer dtypes get zeros (valid indices
            for an ``Embedding``).
        batch_size: the batch size the memory figures are given for (the sample run is always 1).
        input_data: instead of ``input_shape``, the actual input(s) to run (a Tensor or a tuple of
            them, batch dimension included), for models that need particular values.
        batch_dim: where the batch dimension goes in the inputs (1 for a time-major RNN, whose
            inputs are (time, batch, features)).

    Output shapes show -1 at the batch dimension of every output: a second pass with two samples
    finds which dimension doubles (an LSTM's h_n is (layers, -1, hidden)).
    """
    if not isinstance(model, Module):
        raise TypeError(f"summary: model must be a deepwise nn.Module, got {type(model).__name__}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"summary: batch_size must be an int >= 1, got {batch_size!r}")
    device = next((p.device for p in model.parameters()), None)
    if input_data is not None:
        inputs = list(input_data) if isinstance(input_data, (tuple, list)) else [input_data]
        inputs = [t if isinstance(t, Tensor) else Tensor(np.asarray(t)) for t in inputs]
        dtypes = [t.dtype for t in inputs]
    elif input_shape is None:
        raise TypeError("summary: pass input_shape (one sample's shape, without the batch dimension) or input_data")
    else:
        dtypes, inputs = _make_inputs(input_shape, dtype, device, batch_dim)
    for t in inputs:
        if not -t.ndim <= batch_dim < t.ndim:
            raise ValueError(f"summary: batch_dim={batch_dim} is out of range for an input of shape {tuple(t.shape)}")
    shapes = [tuple(-1 if i == batch_dim % t.ndim else d for i, d in enumerate(t.shape)) for t in inputs]
    run_batch = int(inputs[0].shape[batch_dim])
    scale = batch_size / run_batch if run_batch else 1

    named = list(model.named_modules())
    root_name = type(model).__name__
    shown = {id(m) for _, m in named
             if next(m.children(), None) is None or next(m.parameters(recurse=False), None) is not None}
    names = {id(m): (name if name else root_name) for name, m in named}
    one = _run(model, named, shown, names, root_name, inputs)
    # a second run with two samples tells which dimension of each output is the batch
    two = _run(model, named, shown, names, root_name, [_twice(t, batch_dim) for t in inputs])
    same_path = len(one) == len(two) and all(a[0] is b[0] for a, b in zip(one, two))

    result = Summary(model_name=root_name, input_shapes=shapes, input_dtypes=[str(d) for d in dtypes],
                     batch_size=batch_size)
    counted, called = set(), set()

    def own_params(module):
        trainable = frozen = 0
        for p in module.parameters(recurse=False):
            if id(p) in counted:
                continue
            counted.add(id(p))
            if p.requires_grad:
                trainable += p.numel()
            else:
                frozen += p.numel()
        return trainable, frozen

    for i, (module, out) in enumerate(one):
        name = names[id(module)]
        repeat = id(module) in called
        called.add(id(module))
        trainable, frozen = (0, 0) if repeat else own_params(module)
        shape = _mark_batch(_shape_of(out), _shape_of(two[i][1]) if same_path else None)
        nbytes = _nbytes(out)
        result.rows.append(SummaryRow(name, type(module).__name__, shape, trainable + frozen, trainable, frozen,
                                      int(nbytes * scale), name.count(".") + 1 if name != root_name else 0, repeat))
    for name, module in named:  # layers the forward never called still own parameters
        if id(module) in shown and id(module) not in called:
            trainable, frozen = own_params(module)
            result.rows.append(SummaryRow(names[id(module)], type(module).__name__, None, trainable + frozen,
                                          trainable, frozen, 0, name.count(".") + 1 if name else 0))

    seen = set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        n = p.numel()
        result.total_params += n
        if p.requires_grad:
            result.trainable_params += n
        else:
            result.frozen_params += n
        result.param_bytes += p.array.nbytes
    result.buffer_bytes = sum(b.array.nbytes for b in model.buffers())
    result.input_bytes = int(sum(t.array.nbytes for t in inputs) * scale)
    result.activation_bytes = sum(r.output_bytes for r in result.rows)
    return result
