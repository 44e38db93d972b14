"""``Tensor``: an array (``numpy.ndarray`` or ``cupy.ndarray``) plus what autograd needs.

``array`` holds the values (``data`` is a history-free Tensor view of it, as in PyTorch); ``grad``
the accumulated gradient (a Tensor, or None); ``requires_grad`` marks tensors whose gradient we want;
``_ctx`` links a tensor made by an op to the graph node that made it (None for leaves). Every operator
and method below just calls the op function in ``deepwise.ops`` that implements it: the graph is
built there, in ``Function.apply``.

The ops sit above the Tensor (they import it), so this module never imports them: ``ops`` below is
bound by ``deepwise.ops`` itself when it loads (``bind_ops``), before any tensor exists.
"""

from __future__ import annotations

import weakref

import numpy as np

from deepwise import backend, random
from deepwise.autograd import mode
from deepwise.backend import Device, get_array_module

ops = None  # the deepwise.ops package: Tensor methods call its functions (see bind_ops)


def bind_ops(module) -> None:
    """Called once by ``deepwise.ops`` when it loads: the module whose functions the methods call."""
    global ops
    ops = module


def as_array(data, dtype=None, device=None, copy=False):
    """Array-like -> array under deepwise's dtype policy (``backend.default_dtype``) unless a dtype
    is given: float64 and Python floats become float32, Python ints int64, bools stay bool."""
    dtype = backend.to_dtype(dtype)
    if isinstance(data, Tensor):
        data = data.array
    if backend.is_array(data):
        arr = data
        if dtype is None:
            dtype = backend.default_dtype(arr.dtype)
        if arr.dtype != dtype:
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
            dtype = backend.default_dtype(arr.dtype, from_python=not isinstance(data, np.generic))
        if arr.dtype != dtype:
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
        else (backend.to_device(s.array, Device("cpu")) if isinstance(s, Tensor) else s)
        for s in seq
    ]


_new = object.__new__


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


class Tensor:
    """A multi-dimensional array that can record the operations applied to it."""

    __slots__ = ("array", "grad", "requires_grad", "_ctx", "_out_index", "_hooks", "__weakref__")
    __array_priority__ = 1000  # numpy_array + tensor -> Tensor.__radd__

    def __init__(self, data, requires_grad=False, dtype=None, device=None):
        self.array = as_array(data, dtype, device)
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
        t = _new(Tensor)
        if isinstance(data, np.generic):  # numpy reductions return scalars; keep 0-d arrays
            data = np.asarray(data)
        t.array = data
        t.grad = None
        t.requires_grad = requires_grad
        t._ctx = ctx if requires_grad else None
        t._out_index = index
        t._hooks = None
        return t

    # ------------------------------------------------------------------------------ attributes
    @property
    def data(self) -> Tensor:
        """PyTorch's meaning: a Tensor sharing this tensor's array, without history
        (``p.data.add_(...)`` and ``p.data[...] = ...`` change ``p`` in place, unseen by autograd).
        The raw NumPy/CuPy array itself is ``self.array``."""
        return Tensor._make(self.array)

    @data.setter
    def data(self, value) -> None:
        """``p.data = t`` replaces the values (a Tensor or an array) keeping ``p``'s identity."""
        self.array = value.array if isinstance(value, Tensor) else as_array(value)

    @property
    def shape(self):
        return self.array.shape  # a tuple on NumPy and CuPy alike

    @property
    def ndim(self) -> int:
        return self.array.ndim

    @property
    def dtype(self):
        return self.array.dtype

    @property
    def device(self) -> Device:
        return backend.device_of(self.array)

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

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def size(self, dim=None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.array.ndim

    def numel(self) -> int:
        return int(self.array.size)

    def element_size(self) -> int:
        return self.array.itemsize

    def is_floating_point(self) -> bool:
        """True for float16/32/64 and bfloat16, as ``torch.Tensor.is_floating_point``."""
        return backend.is_floating(self.array.dtype)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.array.shape[0]

    def item(self):
        if self.array.size != 1:
            raise ValueError(f"item(): only one-element tensors can be converted, this one has shape {self.shape}")
        return self.array.reshape(()).item()

    def numpy(self) -> np.ndarray:
        if self.requires_grad:
            raise RuntimeError("numpy() of a tensor that requires grad: call tensor.detach().numpy()")
        return backend.to_device(self.array, Device("cpu"))

    def tolist(self):
        return backend.to_device(self.array, Device("cpu")).tolist()

    def __array__(self, dtype=None, copy=None):
        arr = backend.to_device(self.array, Device("cpu"))
        return arr if dtype is None else arr.astype(dtype)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __bool__(self):
        if self.array.size != 1:
            raise RuntimeError(
                f"the truth value of a tensor with {self.array.size} elements is ambiguous; use .any() or .all()"
            )
        return bool(self.item())

    def __index__(self):
        if self.dtype.kind not in "iu" or self.array.size != 1:
            raise TypeError("only integer tensors of one element can be used as an index")
        return int(self.item())

    def __hash__(self):
        return id(self)

    def __format__(self, spec):
        """``f"{loss:.4f}"`` formats a one-element tensor as its number; others take only ``{}``."""
        if self.array.size == 1 and self.ndim == 0:
            return format(self.item(), spec)
        if not spec:
            return repr(self)
        raise TypeError(f"unsupported format string {spec!r} for a Tensor of shape {self.shape}: only "
                        "0-d tensors format as numbers (use t.item() or index one element)")

    # ------------------------------------------------------------------------ new tensors like this
    def _new(self, arr, dtype, device, requires_grad):
        dtype = self.dtype if dtype is None else backend.to_dtype(dtype)
        device = self.device if device is None else Device(device)
        t = Tensor._make(backend.to_device(arr.astype(dtype, copy=False), device))
        return t.requires_grad_(True) if requires_grad else t

    def new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
        """Zeros of ``size`` with this tensor's dtype and device (unless given)."""
        return self._new(np.zeros(_size(size)), dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new(np.ones(_size(size)), dtype, device, requires_grad)

    def new_empty(self, *size, dtype=None, device=None, requires_grad=False):
        return self._new(np.empty(_size(size)), dtype, device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
        return self._new(np.full(_size((size,)), fill_value), dtype, device, requires_grad)

    def new_tensor(self, data, dtype=None, device=None, requires_grad=False):
        """A copy of ``data`` with this tensor's dtype and device (unless given)."""
        if isinstance(data, Tensor):
            data = backend.to_device(data.array, Device("cpu"))
        return self._new(np.array(data), dtype, device, requires_grad)

    # ---------------------------------------------------------------------------- autograd API
    def requires_grad_(self, requires_grad: bool = True):
        if requires_grad and self.array.dtype.kind not in "fc" and not backend.is_floating(self.array.dtype):
            raise RuntimeError(f"only floating-point tensors can require gradients, this one is {self.dtype}")
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """The same data, cut from the graph."""
        return Tensor._make(self.array)

    def detach_(self):
        self._ctx = None
        self.requires_grad = False
        return self

    def retain_grad(self):
        """Keep ``.grad`` of this non-leaf tensor after backward."""
        if self._ctx is None:
            return
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
        engine.backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph, inputs=inputs)

    # ------------------------------------------------------------------------ copies and types
    def clone(self):
        return ops.clone(self)

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
            out = ops.to_device(out, Device(device))
        if dtype is not None and backend.to_dtype(dtype) != out.dtype:
            out = ops.cast(out, backend.to_dtype(dtype))
        if copy and out is self:
            out = self.clone()
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """On CUDA device ``device`` (an index, "cuda:N" or a dw.device; None: the current one)."""
        return self.to(Device("cuda" if device is None else device))

    def type(self, dtype=None):
        return str(self.dtype) if dtype is None else self.to(dtype)

    def float(self):
        return self.to(backend.float32)

    def double(self):
        return self.to(backend.float64)

    def half(self):
        return self.to(backend.float16)

    def bfloat16(self):
        """bfloat16 (ml_dtypes' type: ``pip install "deepwise[bf16]"``), as ``torch.Tensor.bfloat16``."""
        dtype = backend.bfloat16_dtype()
        if dtype is None:
            raise TypeError('bfloat16(): deepwise makes bfloat16 tensors with the ml_dtypes package: '
                            'pip install "deepwise[bf16]"')
        return self.to(dtype)

    def long(self):
        return self.to(backend.int64)

    def int(self):
        return self.to(backend.int32)

    def bool(self):
        return self.to(backend.bool_)

    # ------------------------------------------------------------------ in-place (no autograd)
    def _check_inplace(self, what):
        if self.requires_grad and mode.is_grad_enabled():
            raise RuntimeError(
                f"{what} on a tensor that requires grad would corrupt the graph; do it under dw.no_grad()"
            )

    def zero_(self):
        self._check_inplace("zero_()")
        self.array[...] = 0
        return self

    def fill_(self, value):
        self._check_inplace("fill_()")
        self.array[...] = value
        return self

    def copy_(self, src):
        self._check_inplace("copy_()")
        src = src.array if isinstance(src, Tensor) else src
        xp = get_array_module(self.array)
        self.array[...] = xp.asarray(backend.to_device(src, self.device) if backend.is_array(src) else src)
        return self

    def _inplace(self, name, other):
        self._check_inplace(f"{name}_()")
        other = other.array if isinstance(other, Tensor) else other
        getattr(self.array, f"__i{name}__")(other)
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
        if self.requires_grad and mode.is_grad_enabled():
            return getattr(ops, op)(self, other)
        other = other.array if isinstance(other, Tensor) else other
        getattr(get_array_module(self.array), ufunc)(self.array, other, out=self.array, casting="same_kind")
        return self

    def __iadd__(self, other):
        return self._augmented("add", "add", other)

    def __isub__(self, other):
        return self._augmented("sub", "subtract", other)

    def __imul__(self, other):
        return self._augmented("mul", "multiply", other)

    def __itruediv__(self, other):
        return self._augmented("div", "true_divide", other)

    def clamp_(self, min=None, max=None):
        self._check_inplace("clamp_()")
        get_array_module(self.array).clip(self.array, min, max, out=self.array)
        return self

    def uniform_(self, a=0.0, b=1.0, generator=None):
        """Fill in place with U(a, b), drawn from deepwise's seeded generator (or ``generator``)."""
        if b < a:
            raise ValueError(f"uniform_: lower bound a={a} is above upper bound b={b}")
        dt = random.draw_dtype(self.dtype)
        u = (generator or random.generator()).random(self.shape, dtype=dt)
        return self._fill_drawn(dt.type(a) + dt.type(b - a) * u)

    def normal_(self, mean=0.0, std=1.0, generator=None):
        """Fill in place with N(mean, std^2), drawn from deepwise's seeded generator (or ``generator``)."""
        if std < 0:
            raise ValueError(f"normal_: std must be >= 0, got {std}")
        dt = random.draw_dtype(self.dtype)
        z = (generator or random.generator()).standard_normal(self.shape, dtype=dt)
        return self._fill_drawn(z * dt.type(std) + dt.type(mean))

    def _fill_drawn(self, values):
        """Write host-drawn ``values`` into the data (on its device, in its dtype), outside the graph."""
        self.array[...] = backend.to_device(np.asarray(values), self.device).astype(self.dtype, copy=False)
        return self

    def __setitem__(self, index, value):
        self._check_inplace("item assignment")
        if self._ctx is not None:
            raise RuntimeError("item assignment into a tensor produced by an op; clone() it first")
        index = ops.index.to_index(index)
        self.array[index] = value.array if isinstance(value, Tensor) else value

    # --------------------------------------------------------------------------------- display
    def __repr__(self):
        values = backend.to_device(self.array, Device("cpu"))
        if backend.is_bfloat16(values.dtype):  # printed through float32 (exact), so 1.0 reads "1." as floats do
            values = values.astype(backend.float32)
        body = np.array2string(
            values, separator=", ", precision=4,
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
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __neg__(self):
        return ops.neg(self)

    def __pos__(self):
        return self

    def __abs__(self):
        return ops.abs(self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    def __eq__(self, other):
        return ops.eq(self, other)

    def __ne__(self, other):
        return ops.ne(self, other)

    def __lt__(self, other):
        return ops.lt(self, other)

    def __le__(self, other):
        return ops.le(self, other)

    def __gt__(self, other):
        return ops.gt(self, other)

    def __ge__(self, other):
        return ops.ge(self, other)

    def __invert__(self):
        return ops.logical_not(self)

    def __and__(self, other):
        return ops.logical_and(self, other)

    def __or__(self, other):
        return ops.logical_or(self, other)

    def __xor__(self, other):
        return ops.logical_xor(self, other)

    def __floordiv__(self, other):
        return ops.floor_divide(self, other)

    def __mod__(self, other):
        return ops.remainder(self, other)

    # ---------------------------------------------------------------------------- arithmetic
    def add(self, other, alpha=1):
        """self + alpha * other, broadcasting."""
        return ops.add(self, other, alpha=alpha)

    def sub(self, other, alpha=1):
        """self - alpha * other, broadcasting."""
        return ops.sub(self, other, alpha=alpha)

    def mul(self, other):
        """self * other, elementwise with broadcasting."""
        return ops.mul(self, other)

    def div(self, other, rounding_mode=None):
        """self / other (true division unless ``rounding_mode`` is 'floor' or 'trunc')."""
        return ops.div(self, other, rounding_mode=rounding_mode)

    def pow(self, exponent):
        """self ** exponent, elementwise."""
        return ops.pow(self, exponent)

    def neg(self):
        """-self."""
        return ops.neg(self)

    def mm(self, mat2):
        """Matrix product of two 2-d tensors."""
        return ops.mm(self, mat2)

    def bmm(self, mat2):
        """Batched matrix product of two 3-d tensors."""
        return ops.bmm(self, mat2)

    def matmul(self, other):
        """Matrix product self @ other (batched, NumPy rules)."""
        return ops.matmul(self, other)

    def logaddexp(self, other):
        """log(e ** self + e ** other), without overflow."""
        return ops.logaddexp(self, other)

    def maximum(self, other):
        """Elementwise maximum (ties share the gradient)."""
        return ops.maximum(self, other)

    def minimum(self, other):
        """Elementwise minimum (ties share the gradient)."""
        return ops.minimum(self, other)

    def clamp(self, min=None, max=None):
        """Values limited to [min, max]; gradient flows where they were inside."""
        return ops.clamp(self, min=min, max=max)

    def clip(self, min=None, max=None):
        """Alias of ``clamp``."""
        return ops.clip(self, min=min, max=max)

    def where(self, condition, other):
        """``self`` where ``condition`` holds, else ``other`` (``torch.Tensor.where``)."""
        return ops.where(condition, self, other)

    # ------------------------------------- comparisons and logic (bool results, no gradient)
    def eq(self, other):
        """self == other (bool, no gradient)."""
        return ops.eq(self, other)

    def ne(self, other):
        """self != other (bool, no gradient)."""
        return ops.ne(self, other)

    def lt(self, other):
        """self < other (bool)."""
        return ops.lt(self, other)

    def le(self, other):
        """self <= other (bool)."""
        return ops.le(self, other)

    def gt(self, other):
        """self > other (bool)."""
        return ops.gt(self, other)

    def ge(self, other):
        """self >= other (bool)."""
        return ops.ge(self, other)

    def logical_not(self):
        """Elementwise not (bool)."""
        return ops.logical_not(self)

    def logical_and(self, other):
        """Elementwise and (bool)."""
        return ops.logical_and(self, other)

    def logical_or(self, other):
        """Elementwise or (bool)."""
        return ops.logical_or(self, other)

    def isnan(self):
        """True where NaN."""
        return ops.isnan(self)

    def isfinite(self):
        """True where neither NaN nor infinite."""
        return ops.isfinite(self)

    # ----------------------------------------------------------------- elementwise functions
    def abs(self):
        """|self|."""
        return ops.abs(self)

    def exp(self):
        """e ** self."""
        return ops.exp(self)

    def log(self):
        """Natural logarithm."""
        return ops.log(self)

    def log1p(self):
        """log(1 + self), exact for small values."""
        return ops.log1p(self)

    def sqrt(self):
        """Square root."""
        return ops.sqrt(self)

    def rsqrt(self):
        """1 / sqrt(self)."""
        return ops.rsqrt(self)

    def sin(self):
        """Sine."""
        return ops.sin(self)

    def cos(self):
        """Cosine."""
        return ops.cos(self)

    def tanh(self):
        """Hyperbolic tangent."""
        return ops.tanh(self)

    def sigmoid(self):
        """1 / (1 + e ** -self), without overflow."""
        return ops.sigmoid(self)

    def square(self):
        """self * self."""
        return ops.square(self)

    def sign(self):
        """-1, 0 or 1 (no gradient)."""
        return ops.sign(self)

    def floor(self):
        """Round down (no gradient)."""
        return ops.floor(self)

    def ceil(self):
        """Round up (no gradient)."""
        return ops.ceil(self)

    def round(self):
        """Round half to even (no gradient)."""
        return ops.round(self)

    # --------------------------------------------------------------------------- activations
    def relu(self, inplace=False):
        """max(self, 0)."""
        return ops.relu(self, inplace=inplace)

    def leaky_relu(self, negative_slope=0.01, inplace=False):
        """self where positive, else negative_slope * self."""
        return ops.leaky_relu(self, negative_slope=negative_slope, inplace=inplace)

    def elu(self, alpha=1.0, inplace=False):
        """self where positive, else alpha * (e ** self - 1)."""
        return ops.elu(self, alpha=alpha, inplace=inplace)

    def gelu(self, approximate="none"):
        """self * Phi(self) (``approximate='tanh'``: the tanh form)."""
        return ops.gelu(self, approximate=approximate)

    def silu(self, inplace=False):
        """self * sigmoid(self)."""
        return ops.silu(self, inplace=inplace)

    def softplus(self, beta=1.0, threshold=20.0):
        """log(1 + e ** (beta * self)) / beta, linear above ``threshold``."""
        return ops.softplus(self, beta=beta, threshold=threshold)

    def softmax(self, dim=None, dtype=None):
        """e ** self / sum(e ** self) along ``dim``."""
        return ops.softmax(self, dim=dim, dtype=dtype)

    def log_softmax(self, dim=None, dtype=None):
        """self - logsumexp(self) along ``dim``."""
        return ops.log_softmax(self, dim=dim, dtype=dtype)

    # ---------------------------------------------------------------------------- reductions
    def sum(self, dim=None, keepdim=False, dtype=None):
        """Sum over ``dim`` (all elements by default)."""
        return ops.sum(self, dim=dim, keepdim=keepdim, dtype=dtype)

    def mean(self, dim=None, keepdim=False, dtype=None):
        """Mean over ``dim`` (all elements by default)."""
        return ops.mean(self, dim=dim, keepdim=keepdim, dtype=dtype)

    def var(self, dim=None, unbiased=None, keepdim=False, correction=None):
        """Variance over ``dim`` (``correction=1`` by default)."""
        return ops.var(self, dim=dim, unbiased=unbiased, keepdim=keepdim, correction=correction)

    def std(self, dim=None, unbiased=None, keepdim=False, correction=None):
        """Standard deviation over ``dim``."""
        return ops.std(self, dim=dim, unbiased=unbiased, keepdim=keepdim, correction=correction)

    def prod(self, dim=None, keepdim=False):
        """Product over ``dim``."""
        return ops.prod(self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim=False):
        """Largest value; with ``dim``, (values, indices); with a tensor, elementwise."""
        return ops.max(self, dim=dim, keepdim=keepdim)

    def min(self, dim=None, keepdim=False):
        """Smallest value; with ``dim``, (values, indices); with a tensor, elementwise."""
        return ops.min(self, dim=dim, keepdim=keepdim)

    def amax(self, dim=None, keepdim=False):
        """Largest value over ``dim`` (ties share the gradient)."""
        return ops.amax(self, dim=dim, keepdim=keepdim)

    def amin(self, dim=None, keepdim=False):
        """Smallest value over ``dim`` (ties share the gradient)."""
        return ops.amin(self, dim=dim, keepdim=keepdim)

    def logsumexp(self, dim=None, keepdim=False):
        """log(sum(e ** self)) over ``dim``, without overflow."""
        return ops.logsumexp(self, dim=dim, keepdim=keepdim)

    def norm(self, p="fro", dim=None, keepdim=False):
        """Vector p-norm over ``dim``."""
        return ops.norm(self, p=p, dim=dim, keepdim=keepdim)

    def cumsum(self, dim, dtype=None):
        """Running sum along ``dim``."""
        return ops.cumsum(self, dim, dtype=dtype)

    def argmax(self, dim=None, keepdim=False):
        """Index of the largest value."""
        return ops.argmax(self, dim=dim, keepdim=keepdim)

    def argmin(self, dim=None, keepdim=False):
        """Index of the smallest value."""
        return ops.argmin(self, dim=dim, keepdim=keepdim)

    def any(self, dim=None, keepdim=False):
        """True if any element is (over ``dim``)."""
        return ops.any(self, dim=dim, keepdim=keepdim)

    def all(self, dim=None, keepdim=False):
        """True if every element is (over ``dim``)."""
        return ops.all(self, dim=dim, keepdim=keepdim)

    # -------------------------------------------------------------------------------- shapes
    def reshape(self, *shape):
        """The same elements in ``shape`` (one dim may be -1)."""
        return ops.reshape(self, *shape)

    def view(self, *shape):
        """The same elements in ``shape`` (as ``reshape``)."""
        return ops.view(self, *shape)

    def flatten(self, start_dim=0, end_dim=-1):
        """Dims ``start_dim``..``end_dim`` merged into one."""
        return ops.flatten(self, start_dim=start_dim, end_dim=end_dim)

    def squeeze(self, dim=None):
        """Size-1 dims removed (only ``dim`` if given)."""
        return ops.squeeze(self, dim=dim)

    def unsqueeze(self, dim):
        """A size-1 dim inserted at ``dim``."""
        return ops.unsqueeze(self, dim)

    def transpose(self, dim0, dim1):
        """Dims ``dim0`` and ``dim1`` swapped."""
        return ops.transpose(self, dim0, dim1)

    def permute(self, *dims):
        """Dims reordered as ``dims``."""
        return ops.permute(self, *dims)

    def expand(self, *sizes):
        """Broadcast to ``sizes`` without copying (-1 keeps a dim)."""
        return ops.expand(self, *sizes)

    def expand_as(self, other):
        """Broadcast to ``other``'s shape."""
        return ops.expand_as(self, other)

    def repeat(self, *sizes):
        """Tiled ``sizes[i]`` times along each dim."""
        return ops.repeat(self, *sizes)

    def split(self, split_size_or_sections, dim=0):
        """Pieces of ``split_size_or_sections`` along ``dim``."""
        return ops.split(self, split_size_or_sections, dim=dim)

    def chunk(self, chunks, dim=0):
        """``chunks`` nearly equal pieces along ``dim``."""
        return ops.chunk(self, chunks, dim=dim)

    def tril(self, diagonal=0):
        """Lower triangle (below ``diagonal``) kept, the rest zero."""
        return ops.tril(self, diagonal=diagonal)

    def triu(self, diagonal=0):
        """Upper triangle kept, the rest zero."""
        return ops.triu(self, diagonal=diagonal)

    def view_as(self, other):
        """Reshaped to ``other``'s shape."""
        return ops.view_as(self, other)

    def reshape_as(self, other):
        """Reshaped to ``other``'s shape."""
        return ops.reshape_as(self, other)

    def flip(self, dims):
        """Order reversed along ``dims``."""
        return ops.flip(self, dims)

    def narrow(self, dim, start, length):
        """Elements ``start`` .. ``start + length - 1`` along ``dim`` (a view in PyTorch; here a slice)."""
        d = dim + self.ndim if dim < 0 else dim
        if not 0 <= d < self.ndim:
            raise IndexError(f"narrow(): dim {dim} out of range for a tensor of {self.ndim} dims")
        start = int(start) + (self.shape[d] if int(start) < 0 else 0)
        if start < 0 or length < 0 or start + length > self.shape[d]:
            raise IndexError(f"narrow(): start ({start}) + length ({length}) exceeds dimension size "
                             f"({self.shape[d]}) of dim {dim}")
        return self[(slice(None),) * d + (slice(start, start + int(length)),)]

    def t(self):
        """The transpose of a matrix (0-d and 1-d tensors come back as they are)."""
        if self.ndim > 2:
            raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, got {self.ndim} "
                               f"(shape {self.shape}); use transpose(dim0, dim1) or .mT")
        return self if self.ndim < 2 else self.transpose(0, 1)

    # ------------------------------------------------------------------------------ indexing
    def gather(self, dim, index):
        """Values picked along ``dim`` at ``index``."""
        return ops.gather(self, dim, index)

    def scatter_add(self, dim, index, src):
        """A copy with ``src`` added at ``index`` along ``dim``."""
        return ops.scatter_add(self, dim, index, src)

    def masked_fill(self, mask, value):
        """``value`` where ``mask`` is True."""
        return ops.masked_fill(self, mask, value)

    def index_select(self, dim, index):
        """Slices ``index`` along ``dim``."""
        return ops.index_select(self, dim, index)

    def sort(self, dim=-1, descending=False, stable=False):
        """(values, indices) sorted along ``dim``."""
        return ops.sort(self, dim=dim, descending=descending, stable=stable)

    def argsort(self, dim=-1, descending=False, stable=False):
        """Indices that sort along ``dim``."""
        return ops.argsort(self, dim=dim, descending=descending, stable=stable)

    def topk(self, k, dim=-1, largest=True, sorted=True):
        """(values, indices) of the ``k`` largest (or smallest) along ``dim``."""
        return ops.topk(self, k, dim=dim, largest=largest, sorted=sorted)

    swapaxes = transpose
    nelement = numel
    divide = div
    multiply = mul
    subtract = sub


from deepwise.autograd import engine  # noqa: E402 - the walk imports Tensor, so it is bound after the class
