"""Ways to make tensors: from data, filled with constants, ranges, and random draws.

Random tensors draw from the one generator that ``dw.manual_seed`` seeds (on the CPU, then moved to
the device), so results are reproducible and identical across devices.
"""

from __future__ import annotations

import numpy as np

from deepwise import backend, random
from deepwise.backend import Device
from deepwise.tensor import Tensor, as_array


def _shape(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        return tuple(int(s) for s in size[0])
    return tuple(int(s) for s in size)


def _finish(arr, dtype, device, requires_grad):
    if device is not None and Device(device).type != "cpu":
        arr = backend.to_device(arr, Device(device))
    t = Tensor._make(arr)
    if requires_grad:
        t.requires_grad_(True)
    return t


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new tensor holding a copy of ``data`` (float64 data becomes float32 unless ``dtype`` says)."""
    arr = as_array(data, dtype, copy=True)
    return _finish(arr, dtype, device, requires_grad)


def as_tensor(data, dtype=None, device=None):
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return _finish(as_array(data, dtype), dtype, device, False)


def from_numpy(array: np.ndarray):
    """Share memory with a NumPy array and keep its dtype (as ``torch.from_numpy``)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    return Tensor._make(array)


def _dtype(dtype, default=backend.DEFAULT_FLOAT):
    return backend.to_dtype(dtype) if dtype is not None else default


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.zeros(_shape(size), _dtype(dtype)), dtype, device, requires_grad)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.ones(_shape(size), _dtype(dtype)), dtype, device, requires_grad)


def empty(*size, dtype=None, device=None, requires_grad=False):
    return _finish(np.empty(_shape(size), _dtype(dtype)), dtype, device, requires_grad)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    if dtype is None:
        dtype = (backend.bool_ if isinstance(fill_value, bool) else backend.int64
                 if isinstance(fill_value, int) else backend.DEFAULT_FLOAT)
    return _finish(np.full(_shape((size,)), fill_value, _dtype(dtype)), dtype, device, requires_grad)


def _like(t, dtype, device):
    return t.shape, (dtype if dtype is not None else t.dtype), (device if device is not None else t.device)


def zeros_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return zeros(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return ones(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def empty_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return empty(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def full_like(input, fill_value, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return full(shape, fill_value, dtype=dtype, device=device, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = backend.int64 if all(isinstance(v, int) for v in (start, end, step)) else backend.DEFAULT_FLOAT
    return _finish(np.arange(start, end, step).astype(_dtype(dtype)), dtype, device, requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    return _finish(np.linspace(start, end, int(steps)).astype(_dtype(dtype)), dtype, device, requires_grad)


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    return _finish(np.eye(n, m, dtype=_dtype(dtype)), dtype, device, requires_grad)


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform on [0, 1)."""
    arr = _gen(generator, "rand").random(_shape(size), dtype=np.float64).astype(_dtype(dtype))
    return _finish(arr, dtype, device, requires_grad)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal."""
    arr = _gen(generator, "randn").standard_normal(_shape(size)).astype(_dtype(dtype))
    return _finish(arr, dtype, device, requires_grad)


def randint(low, high=None, size=None, *, generator=None, dtype=None, device=None, requires_grad=False):
    """Integers uniform on [low, high), as ``torch.randint``: ``randint(low, high, size)`` or the
    one-bound form ``randint(high, size)`` (``low`` = 0), where the second argument is the shape."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high  # randint(high, size)
    elif high is None and size is not None:
        low, high = 0, low  # randint(high, size=size)
    if high is None:
        raise TypeError("randint() needs high and size: randint(high, size) or randint(low, high, size)")
    if size is None:
        raise TypeError("randint() is missing size (a tuple of ints, e.g. (3,))")
    if int(low) >= int(high):
        raise ValueError(f"randint(): low ({low}) must be smaller than high ({high})")
    gen = _gen(generator, "randint")
    arr = gen.integers(int(low), int(high), size=_shape((size,))).astype(_dtype(dtype, backend.int64))
    return _finish(arr, dtype, device, requires_grad)


def _gen(generator, where):
    return random.generator() if generator is None else as_numpy_generator(generator, where)


def as_numpy_generator(generator, where="generator"):
    """The ``numpy.random.Generator`` behind ``generator`` (one itself, or a ``dw.Generator``)."""
    if isinstance(generator, np.random.Generator):
        return generator
    inner = getattr(generator, "numpy_generator", None)  # an object wrapping one
    if isinstance(inner, np.random.Generator):
        return inner
    raise TypeError(f"{where}(): generator must be a numpy.random.Generator, got {type(generator).__name__}")


class Generator:
    """``torch.Generator``: a random-number generator of its own, for ``DataLoader(generator=...)``,
    ``randint``, ``multinomial`` and samplers. ``Generator().manual_seed(0)`` returns itself; the
    NumPy generator behind it is ``numpy_generator``."""

    def __init__(self, device="cpu"):
        self.device = Device(device)
        self._seed = int(np.random.SeedSequence().entropy % 2**63)
        self.numpy_generator = np.random.default_rng(self._seed)

    def manual_seed(self, seed):
        self._seed = int(seed)
        self.numpy_generator = np.random.default_rng(self._seed)
        return self

    def seed(self):
        """Reseed from fresh entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))
        return self._seed

    def initial_seed(self):
        return self._seed

    def get_state(self):
        return self.numpy_generator.bit_generator.state

    def set_state(self, state):
        self.numpy_generator.bit_generator.state = state
        return self


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Category indices drawn from the rows of ``input`` (non-negative weights, 1-D or 2-D), as
    ``torch.multinomial``: ``num_samples`` per row, int64, without replacement by default (each
    category at most once per row, in the order drawn)."""
    if not isinstance(input, Tensor):
        raise TypeError(f"multinomial(): input must be a Tensor, got {type(input).__name__}")
    if input.ndim not in (1, 2):
        raise RuntimeError(f"multinomial(): prob_dist must be 1 or 2 dim, got shape {input.shape}")
    if not backend.is_floating(input.dtype):
        raise RuntimeError(f"multinomial(): expected a floating point input, got {input.dtype}")
    num_samples = int(num_samples)
    if num_samples <= 0:
        raise RuntimeError(f"multinomial(): cannot sample {num_samples} <= 0 samples")
    w = np.asarray(backend.to_device(input.array, Device("cpu")), dtype=np.float64)
    rows = w.reshape(1, -1) if w.ndim == 1 else w
    n = rows.shape[1]
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise RuntimeError("multinomial(): probability tensor contains either inf, nan or element < 0")
    total = rows.sum(axis=1)
    if (total <= 0).any():
        raise RuntimeError("multinomial(): invalid multinomial distribution (sum of probabilities <= 0)")
    if not replacement and num_samples > n:
        raise RuntimeError(f"multinomial(): cannot sample n_sample > prob_dist.size(-1) samples without "
                           f"replacement (num_samples={num_samples}, categories={n})")
    gen = _gen(generator, "multinomial")
    r = rows.shape[0]
    if replacement:  # inverse CDF: every row's CDF shifted by its row number, one search for all
        cdf = np.cumsum(rows / total[:, None], axis=1)
        cdf[:, -1] = 1.0
        cdf += np.arange(r)[:, None]
        u = gen.random((r, num_samples)) + np.arange(r)[:, None]
        out = np.searchsorted(cdf.ravel(), u.ravel(), side="right").reshape(r, num_samples)
        out -= np.arange(r)[:, None] * n
        np.minimum(out, n - 1, out=out)
    else:  # sequential draws without replacement = the smallest exponential race times E / w
        with np.errstate(divide="ignore"):
            keys = gen.standard_exponential((r, n)) / rows
        if num_samples > (rows > 0).sum(axis=1).min():
            raise RuntimeError("multinomial(): invalid multinomial distribution (with replacement=False, "
                               "not enough non-negative category to sample)")
        out = np.argsort(keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    if w.ndim == 1:
        out = out[0]
    return _finish(out, None, input.device, False)


class UnsupportedDtype:
    """A dtype name PyTorch programs mention that deepwise cannot hold here (bfloat16 without
    ml_dtypes): naming it works (``dtype = dw.bfloat16 if ... else dw.float32``), making a tensor of
    it raises a TypeError that says so."""

    def __init__(self, name, advice):
        self.name = name
        self.advice = advice

    @property
    def dtype(self):  # what numpy.dtype(obj) asks for; the error reaches the user
        raise TypeError(repr(self))

    @property
    def is_floating_point(self):
        return True

    def __repr__(self):
        return f"{self.name} (deepwise cannot make {self.name} tensors: {self.advice})"


_NO_BFLOAT16 = UnsupportedDtype("bfloat16", 'its arrays come from the ml_dtypes package: pip install '
                                            '"deepwise[bf16]"; or use float32, or float16 for half precision')


def bfloat16_dtype():
    """``dw.bfloat16``: ml_dtypes' bfloat16 (imported on first use), or, when ml_dtypes is not
    installed, a name whose tensors raise a TypeError saying how to get it."""
    dtype = backend.bfloat16_dtype()
    return _NO_BFLOAT16 if dtype is None else dtype


def __getattr__(name):  # creation.bfloat16: looked up when asked for (importing ml_dtypes costs ~0.5 s)
    if name == "bfloat16":
        return bfloat16_dtype()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def randperm(n, *, generator=None, dtype=None, device=None, requires_grad=False):
    arr = _gen(generator, "randperm").permutation(int(n)).astype(_dtype(dtype, backend.int64))
    return _finish(arr, dtype, device, requires_grad)


def rand_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return rand(shape, dtype=dtype, device=device, requires_grad=requires_grad)


def randn_like(input, dtype=None, device=None, requires_grad=False):
    shape, dtype, device = _like(input, dtype, device)
    return randn(shape, dtype=dtype, device=device, requires_grad=requires_grad)


class LegacyTensorType:
    """PyTorch's old typed constructors (``torch.FloatTensor``, ``torch.LongTensor``, ...), still in
    many programs: ``FloatTensor(2, 3)`` is an uninitialised (2, 3) float32 tensor, ``LongTensor([1, 2])``
    an int64 copy of the data, and ``t.type(torch.FloatTensor)`` a cast (the object carries its
    ``dtype``). ``torch.cuda.FloatTensor`` makes the same tensors on the GPU."""

    def __init__(self, name, dtype, device="cpu"):
        self.__name__ = name
        self.dtype = backend.to_dtype(dtype)
        self.device = device

    def __call__(self, *args):
        if len(args) == 1 and not isinstance(args[0], (int, np.integer)) and not isinstance(args[0], tuple):
            return tensor(args[0], dtype=self.dtype, device=self.device)
        return empty(*args, dtype=self.dtype, device=self.device)

    def __repr__(self):
        prefix = "torch.cuda." if self.device != "cpu" else "torch."
        return f"<class '{prefix}{self.__name__}'>"


def legacy_tensor_types(device="cpu") -> dict:
    """``{"FloatTensor": ..., "LongTensor": ..., ...}`` making tensors on ``device``."""
    kinds = {"FloatTensor": backend.float32, "DoubleTensor": backend.float64, "HalfTensor": backend.float16,
             "LongTensor": backend.int64, "IntTensor": backend.int32, "ShortTensor": backend.int16,
             "CharTensor": backend.int8, "ByteTensor": backend.uint8, "BoolTensor": backend.bool_}
    return {name: LegacyTensorType(name, dtype, device) for name, dtype in kinds.items()}


_LEGACY = legacy_tensor_types()
FloatTensor = _LEGACY["FloatTensor"]
DoubleTensor = _LEGACY["DoubleTensor"]
HalfTensor = _LEGACY["HalfTensor"]
LongTensor = _LEGACY["LongTensor"]
IntTensor = _LEGACY["IntTensor"]
ShortTensor = _LEGACY["ShortTensor"]
CharTensor = _LEGACY["CharTensor"]
ByteTensor = _LEGACY["ByteTensor"]
BoolTensor = _LEGACY["BoolTensor"]

