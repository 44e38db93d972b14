"""``Tensor``: an array (``numpy.ndarray`` or ``cupy.ndarray``) plus what autograd needs.

``data`` holds the values; ``grad`` the accumulated gradient (a Tensor, or None); ``requires_grad``
marks tensors whose gradient we want; ``_ctx`` links a tensor made by an op to the graph node that
made it (None for leaves). Every operator below just calls the op function in ``deepwise.ops`` that
implements it: the graph is built there, in ``Function.apply``.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend
from deepwise.autograd import engine
from deepwise.backend import Device, get_array_module


def as_array(data, dtype=None, device=None, copy=False):
    """Array-like -> array under deepwise's dtype policy: floating data becomes float32 unless a
    dtype is given, Python ints become int64, bools stay bool."""
    dtype = backend.to_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.data
    if backend.is_array(data):
        arr = data
        if dtype is None and arr.dtype == np.float64:
            dtype = backend.DEFAULT_FLOAT
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        elif copy:
            arr = arr.copy()
    else:
        if isinstance(data, (list, tuple)) and any(isinstance(d, Tensor) for d in _flat(data)):
            data = _nested_tensors_to_arrays(data)
        try:
            arr = np.asarray(data)
        except ValueError:  # NumPy >= 1.24 refuses ragged nested sequences
            raise ValueError(
                f"cannot make a tensor from this {type(data).__name__}: its nested sequences are ragged "
                "(every row at a given depth must have the same length)"
            ) from None
        if arr.dtype == object:
            raise TypeError(f"cannot make a tensor from {type(data).__name__}: ragged or non-numeric data")
        if dtype is None:
            if arr.dtype.kind == "f":
                dtype = backend.DEFAULT_FLOAT
            elif arr.dtype.kind in "iu" and arr.dtype != np.uint8:
                dtype = backend.int64
        if dtype is not None and arr.dtype != dtype:
            arr = arr.astype(dtype)
        elif copy and arr is data:
            arr = arr.copy()
    if device is not None:
        arr = backend.to_device(arr, Device(device))
    return arr


def _flat(seq):
    for item in seq:
        if isinstance(item, (list, tuple)):
            yield from _flat(item)
        else:
            yield item


def _nested_tensors_to_arrays(seq):
    return [
        _nested_tensors_to_arrays(s) if isinstance(s, (list, tuple))
        else (backend.to_device(s.data, Device("cpu")) if isinstance(s, Tensor) else s)
        for s in seq
    ]


class Tensor:
    """A multi-dimensional array that can record the operations applied to it."""

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_out_index", "_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy_array + tensor -> Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        self.data = as_array(data, dtype, device)
        self.grad = None
        self._ctx = None
        self._out_index = 0
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    @classmethod
    def _make(cls, data, requires_grad=False, ctx=None, index=0):
        """Wrap an array without checks or copies (used by ops)."""
        t = object.__new__(Tensor)
        if isinstance(data, np.generic):  # numpy reductions return scalars; keep 0-d arrays
            data = np.asarray(data)
        t.data = data
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = ctx if requires_grad else None
        t._out_index = index
        t._hooks = None
        return t

    # ------------------------------------------------------------------------------ attributes
    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> Device:
        return backend.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    @property
    def mT(self):
        return self.transpose(-2, -1)

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.data.ndim

    def numel(self) -> int:
        return int(self.data.size)

    def element_size(self) -> int:
        return self.data.itemsize

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, this one has shape {self.shape}")
        return self.data.reshape(()).item()

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("numpy() of a tensor that requires grad: call tensor.detach().numpy()")
        return backend.to_device(self.data, Device("cpu"))

    def tolist(self):
        return backend.to_device(self.data, Device("cpu")).tolist()

    def __array__(self, dtype=None, copy=None):
        arr = backend.to_device(self.data, Device("cpu"))
        return arr if dtype is None else arr.astype(dtype)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.data.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.data.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __hash__(self):
        return id(self)

    # ---------------------------------------------------------------------------- autograd API
    def requires_grad_(self, requires_grad: bool = True):
        if requires_grad and self.data.dtype.kind not in "fc":
            raise RuntimeError(f"only floating-point tensors can require gradients, this one is {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._make(self.data)

    def detach_(self):
        self._ctx = None
        self.requires_grad = False
        return self

    def retain_grad(self):
        """Keep ``.grad`` of this non-leaf tensor after backward."""
        if self._ctx is None:
            return
        import weakref  # noqa: PLC0415

        if self._ctx.retained is None:
            self._ctx.retained = []
        self._ctx.retained.append((self._out_index, weakref.ref(self)))

    def register_hook(self, hook):
        """``hook(grad) -> Tensor | None`` runs when this tensor's gradient is computed."""
        if not self.requires_grad:
            raise RuntimeError("register_hook on a tensor that does not require grad")
        if self._ctx is None:
            self._hooks = (self._hooks or []) + [hook]
        else:
            hooks = self._ctx.hooks if self._ctx.hooks is not None else {}
            hooks.setdefault(self._out_index, []).append(hook)
            self._ctx.hooks = hooks
        return hook

    def backward(self, gradient=None, retain_graph=None, create_graph=False, inputs=None):
        """Backpropagate from this tensor, adding into ``.grad`` of every leaf that requires grad."""
        from deepwise.autograd import backward  # noqa: PLC0415

        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ------------------------------------------------------------------------ copies and types
    def clone(self):
        return _ops.clone(self)

    def contiguous(self):
        return self

    def to(self, *args, dtype=None, device=None, copy=False):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)`` or ``to(other_tensor)``."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (str, Device)):
                device = a
            else:
                dtype = a
        out = self
        if device is not None and Device(device) != self.device:
            out = _ops.to_device(out, Device(device))
        if dtype is not None and backend.to_dtype(dtype) != out.dtype:
            out = _ops.cast(out, backend.to_dtype(dtype))
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        return self.to("cuda" if device is None else f"cuda:{device}")

    def type(self, dtype=None):
        return str(self.dtype) if dtype is None else self.to(dtype)

    def float(self):
        return self.to(backend.float32)

    def double(self):
        return self.to(backend.float64)

    def half(self):
        return self.to(backend.float16)

    def long(self):
        return self.to(backend.int64)

    def int(self):
        return self.to(backend.int32)

    def bool(self):
        return self.to(backend.bool_)

    # ------------------------------------------------------------------ in-place (no autograd)
    def _check_inplace(self, what):
        if self.requires_grad and engine.is_grad_enabled():
            raise RuntimeError(
                f"{what} on a tensor that requires grad would corrupt the graph; do it under dw.no_grad()"
            )

    def zero_(self):
        self._check_inplace("zero_()")
        self.data[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_()")
        self.data[...] = value
        return self

    def copy_(self, src):
        self._check_inplace("copy_()")
        src = src.data if isinstance(src, Tensor) else src
        xp = get_array_module(self.data)
        self.data[...] = xp.asarray(backend.to_device(src, self.device) if backend.is_array(src) else src)
        return self

    def _inplace(self, name, other):
        self._check_inplace(f"{name}_()")
        other = other.data if isinstance(other, Tensor) else other
        getattr(self.data, f"__i{name}__")(other)
        return self

    def add_(self, other, alpha=1):
        return self._inplace("add", other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        return self._inplace("sub", other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return self._inplace("mul", other)

    def div_(self, other):
        return self._inplace("truediv", other)

    def _augmented(self, op, ufunc, other):
        """``x += y`` and friends: in place on the data when no graph records ``x`` (PyTorch's
        ``w -= lr * w.grad`` under ``no_grad`` keeps ``w`` the same leaf); while ``x`` is recorded,
        ``x`` is rebound to the out-of-place result, so gradients stay right."""
        if self.requires_grad and engine.is_grad_enabled():
            return getattr(_ops, op)(self, other)
        other = other.data if isinstance(other, Tensor) else other
        getattr(get_array_module(self.data), ufunc)(self.data, other, out=self.data, casting="same_kind")
        return self

    def __iadd__(self, other):
        return self._augmented("add", "add", other)

    def __isub__(self, other):
        return self._augmented("sub", "subtract", other)

    def __imul__(self, other):
        return self._augmented("mul", "multiply", other)

    def __itruediv__(self, other):
        return self._augmented("div", "true_divide", other)

    def clamp_(self, min=None, max=None):  # noqa: A002
        self._check_inplace("clamp_()")
        get_array_module(self.data).clip(self.data, min, max, out=self.data)
        return self

    def uniform_(self, a=0.0, b=1.0):
        from deepwise.nn import init  # noqa: PLC0415

        return init.uniform_(self, a, b)

    def normal_(self, mean=0.0, std=1.0):
        from deepwise.nn import init  # noqa: PLC0415

        return init.normal_(self, mean, std)

    def __setitem__(self, index, value):
        self._check_inplace("item assignment")
        if self._ctx is not None:
            raise RuntimeError("item assignment into a tensor produced by an op; clone() it first")
        index = _ops.index.to_index(index)
        self.data[index] = value.data if isinstance(value, Tensor) else value

    # --------------------------------------------------------------------------------- display
    def __repr__(self):
        body = np.array2string(
            backend.to_device(self.data, Device("cpu")), separator=", ", precision=4,
            threshold=200, edgeitems=3, prefix="tensor(",
        )
        extras = []
        if self.dtype not in (backend.float32, backend.int64, backend.bool_):
            extras.append(f"dtype={self.dtype}")
        if self.device.type != "cpu":
            extras.append(f"device='{self.device}'")
        if self._ctx is not None:
            extras.append(f"grad_fn={self._ctx!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # ------------------------------------------------------------------------------- operators
    def __add__(self, other):
        return _ops.add(self, other)

    def __radd__(self, other):
        return _ops.add(other, self)

    def __sub__(self, other):
        return _ops.sub(self, other)

    def __rsub__(self, other):
        return _ops.sub(other, self)

    def __mul__(self, other):
        return _ops.mul(self, other)

    def __rmul__(self, other):
        return _ops.mul(other, self)

    def __truediv__(self, other):
        return _ops.div(self, other)

    def __rtruediv__(self, other):
        return _ops.div(other, self)

    def __pow__(self, other):
        return _ops.pow(self, other)

    def __rpow__(self, other):
        return _ops.pow(other, self)

    def __matmul__(self, other):
        return _ops.matmul(self, other)

    def __rmatmul__(self, other):
        return _ops.matmul(other, self)

    def __neg__(self):
        return _ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return _ops.abs(self)

    def __getitem__(self, index):
        return _ops.getitem(self, index)

    def __eq__(self, other):
        return _ops.eq(self, other)

    def __ne__(self, other):
        return _ops.ne(self, other)

    def __lt__(self, other):
        return _ops.lt(self, other)

    def __le__(self, other):
        return _ops.le(self, other)

    def __gt__(self, other):
        return _ops.gt(self, other)

    def __ge__(self, other):
        return _ops.ge(self, other)

    def __invert__(self):
        return _ops.logical_not(self)

    def __and__(self, other):
        return _ops.logical_and(self, other)

    def __or__(self, other):
        return _ops.logical_or(self, other)

    def __xor__(self, other):
        return _ops.logical_xor(self, other)

    def __floordiv__(self, other):
        return _ops.floor_divide(self, other)

    def __mod__(self, other):
        return _ops.remainder(self, other)


def _bind_methods():
    """Tensor methods that are the op of the same name with the tensor first: x.exp() == ops.exp(x)."""
    names = """
        add sub mul div pow neg matmul maximum minimum clamp clip where eq ne lt le gt ge
        abs exp log log1p sqrt rsqrt sin cos tanh sigmoid square sign floor ceil round isnan isfinite
        relu leaky_relu elu gelu silu softplus softmax log_softmax
        sum mean var std prod max min amax amin logsumexp norm cumsum argmax argmin any all
        reshape view flatten squeeze unsqueeze transpose permute expand expand_as repeat split chunk
        tril triu view_as reshape_as flip
        gather scatter_add masked_fill index_select sort argsort topk
        logical_not logical_and logical_or
    """.split()
    for name in names:
        fn = getattr(_ops, name)

        def method(self, *args, _fn=fn, **kwargs):
            return _fn(self, *args, **kwargs)

        method.__name__ = name
        method.__doc__ = fn.__doc__
        setattr(Tensor, name, method)
    Tensor.swapaxes = Tensor.transpose
    Tensor.divide = Tensor.div
    Tensor.multiply = Tensor.mul
    Tensor.subtract = Tensor.sub


from deepwise import ops as _ops  # noqa: E402  (ops import Tensor; bind after the class exists)

_bind_methods()
