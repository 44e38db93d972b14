"""``dw.cuda``: PyTorch's ``torch.cuda`` names over CuPy, working (False, 0, or nothing to do) without it.

    dw.cuda.is_available()        # False without CuPy or a GPU; nothing here raises for that
    dw.cuda.device_count()        # 0 without
    dw.cuda.synchronize()         # wait for the GPU's queued work (benchmarks call it before timing)
    dw.cuda.memory_allocated()    # bytes in use in CuPy's memory pool

Asking for a device that is not there (``set_device``, ``get_device_name``, ``current_device``,
``dw.cuda.device(i)``, the legacy constructors ``dw.cuda.FloatTensor(...)`` and the like) is an
error that says why, as it is in PyTorch.

deepwise draws every random number from its one generator (``dw.manual_seed``), on the CPU, then
moves the draw to the device, so a seed gives the same tensors on every device. ``manual_seed`` and
``manual_seed_all`` therefore seed that generator (and CuPy's own, for user code that draws with it),
and ``get_rng_state`` / ``set_rng_state`` read and restore it.

``dw.cuda.amp`` (``torch.cuda.amp.autocast``, ``GradScaler``) is loaded when first named: it
builds on ``deepwise.amp``, a layer above this one.
"""

from __future__ import annotations

import importlib
import sys
from typing import NamedTuple

from deepwise import autograd, backend, random  # autograd: loaded before creation's tensor (a cycle)
from deepwise.backend import Device
from deepwise.creation import LegacyTensorType, legacy_tensor_types


def _module():
    """The CUDA array module (CuPy, or a test double) when a device can be used, else None."""
    module = backend.cuda_module()
    if module is not None:
        return module
    try:
        return backend.cupy_module()
    except RuntimeError:
        return None


def _require(what):
    module = _module()
    if module is None:
        raise RuntimeError(f"dw.cuda.{what}: no CUDA device is available (this needs CuPy and an NVIDIA GPU: "
                           "`pip install deepwise[cuda]`; dw.cuda.is_available() says whether it is)")
    return module


def _index(device, what):
    """A device spec (None, int, "cuda:1", Device) -> the CUDA device index; None means the current one."""
    if device is None:
        return current_device()
    if isinstance(device, int) and not isinstance(device, bool):
        index = device
    else:
        d = Device(device)
        if d.type != "cuda":
            raise ValueError(f"dw.cuda.{what}: expected a CUDA device, got {str(d)!r}")
        if d.index is None:
            return current_device()
        index = d.index
    count = device_count()
    if not 0 <= index < count:
        raise ValueError(f"dw.cuda.{what}: device index {index} is out of range: {count} CUDA device(s)")
    return index


def is_available() -> bool:
    """True when CuPy imports and sees at least one GPU."""
    return device_count() > 0


def device_count() -> int:
    module = _module()
    if module is None:
        return 0
    try:
        return int(module.cuda.runtime.getDeviceCount())
    except Exception:  # a CUDA driver error means: no usable device
        return 0


def is_initialized() -> bool:
    """True once the CUDA module has been loaded (by a tensor moved to ``"cuda"`` or a call here)."""
    return backend.cuda_module() is not None


def current_device() -> int:
    """The index of the current CUDA device."""
    return int(_require("current_device").cuda.Device().id)


def set_device(device) -> None:
    """Make ``device`` (an index, ``"cuda:N"`` or a ``dw.device``) the current CUDA device."""
    module = _require("set_device")
    module.cuda.Device(_index(device, "set_device")).use()


class _DeviceContext:
    """``with dw.cuda.device(1): ...`` runs the block with CUDA device 1 current."""

    def __init__(self, device):
        self._index = None if device is None else _index(device, "device")
        self._context = None

    def __enter__(self):
        if self._index is not None:
            self._context = _require("device").cuda.Device(self._index)
            self._context.__enter__()
        return self

    def __exit__(self, *exc):
        if self._context is not None:
            self._context.__exit__(*exc)
        return False


device = _DeviceContext  # torch.cuda.device


def get_device_name(device=None) -> str:
    props = _require("get_device_name").cuda.runtime.getDeviceProperties(_index(device, "get_device_name"))
    name = props["name"]
    return name.decode() if isinstance(name, bytes) else str(name)


class DeviceProperties(NamedTuple):
    """What ``get_device_properties`` reports (PyTorch's attribute names)."""

    name: str
    total_memory: int
    major: int
    minor: int
    multi_processor_count: int


def get_device_properties(device=None) -> DeviceProperties:
    props = _require("get_device_properties").cuda.runtime.getDeviceProperties(
        _index(device, "get_device_properties"))
    name = props["name"]
    return DeviceProperties(name.decode() if isinstance(name, bytes) else str(name), int(props["totalGlobalMem"]),
                            int(props["major"]), int(props["minor"]), int(props["multiProcessorCount"]))


def get_device_capability(device=None) -> tuple[int, int]:
    props = _require("get_device_capability").cuda.runtime.getDeviceProperties(
        _index(device, "get_device_capability"))
    return int(props["major"]), int(props["minor"])


def synchronize(device=None) -> None:
    """Wait until every kernel queued on ``device`` (default: the current one) has finished.
    Before CuPy is loaded (no tensor was ever put on "cuda") nothing can be queued, and it returns
    at once without importing CuPy -- cheap enough to call around every timed step."""
    module = backend.cuda_module()
    if module is None:
        return
    module.cuda.Device(_index(device, "synchronize")).synchronize()


def manual_seed(seed: int) -> None:
    """Seed the generator that CUDA tensors' random draws come from (deepwise's one generator; see
    the module docstring), and CuPy's own when it is loaded."""
    random.manual_seed(seed)
    module = backend.cuda_module()
    if module is not None:
        module.random.seed(int(seed))


def manual_seed_all(seed: int) -> None:
    """As ``manual_seed``: every device draws from the same generator."""
    manual_seed(seed)


def seed_all() -> None:
    """A random seed for the generator (as ``torch.cuda.seed_all``)."""
    manual_seed(int(random.generator().integers(0, 2**63 - 1)))


def _pool():
    module = backend.cuda_module()
    return None if module is None else module.get_default_memory_pool()


def memory_allocated(device=None) -> int:
    """Bytes held by live arrays in CuPy's memory pool (0 without CUDA). CuPy keeps one pool per
    device; this reads the current device's."""
    pool = _pool()
    if pool is None:
        return 0
    with _DeviceContext(device):
        return int(pool.used_bytes())


def memory_reserved(device=None) -> int:
    """Bytes CuPy's memory pool holds from the driver, in use or cached (0 without CUDA)."""
    pool = _pool()
    if pool is None:
        return 0
    with _DeviceContext(device):
        return int(pool.total_bytes())


def empty_cache() -> None:
    """Give the memory pool's cached, unused blocks back to the driver (nothing to do without CUDA)."""
    module = backend.cuda_module()
    if module is None:
        return
    module.get_default_memory_pool().free_all_blocks()
    module.get_default_pinned_memory_pool().free_all_blocks()


class CudaTensorType(LegacyTensorType):
    """``torch.cuda.FloatTensor`` and its kin: the legacy constructors of GPU tensors. Without a
    CUDA device, calling one is the TypeError PyTorch raises there; the name itself (for
    ``Tensor = torch.cuda.FloatTensor if cuda else torch.FloatTensor``) is always defined."""

    def __call__(self, *args):
        if not is_available():
            raise TypeError(f"type torch.cuda.{self.__name__} not available: deepwise has no CUDA device here "
                            "(it needs CuPy and an NVIDIA GPU; dw.cuda.is_available() says whether it is; "
                            f"torch.{self.__name__} makes the tensor on the CPU)")
        return super().__call__(*args)


_LEGACY = {name: CudaTensorType(name, kind.dtype, "cuda") for name, kind in legacy_tensor_types().items()}
FloatTensor = _LEGACY["FloatTensor"]
DoubleTensor = _LEGACY["DoubleTensor"]
HalfTensor = _LEGACY["HalfTensor"]
LongTensor = _LEGACY["LongTensor"]
IntTensor = _LEGACY["IntTensor"]
ShortTensor = _LEGACY["ShortTensor"]
CharTensor = _LEGACY["CharTensor"]
ByteTensor = _LEGACY["ByteTensor"]
BoolTensor = _LEGACY["BoolTensor"]


def is_bf16_supported(including_emulation: bool = True) -> bool:
    """True when a GPU is there (CuPy sees one) and ml_dtypes imports: CuPy >= 14 computes with
    ml_dtypes' bfloat16, deepwise's ``dw.bfloat16``. False without a GPU, as in PyTorch."""
    return is_available() and backend.bfloat16_dtype() is not None


def get_rng_state(device="cuda"):
    """The state of the generator CUDA tensors' draws come from (deepwise's one generator)."""
    return random.get_rng_state()


def set_rng_state(new_state, device="cuda") -> None:
    random.set_rng_state(new_state)


def get_rng_state_all() -> list:
    """One state per device; every device draws from the same generator."""
    return [get_rng_state()] * max(1, device_count())


def set_rng_state_all(new_states) -> None:
    states = list(new_states)
    if states:
        set_rng_state(states[0])


def max_memory_allocated(device=None) -> int:
    """The most bytes CuPy's memory pool has held since the last reset (0 without CUDA). The pool
    keeps freed blocks for reuse, so what it holds is the high-water mark of what live arrays used,
    rounded up to its block sizes: an upper bound of PyTorch's peak allocation."""
    return memory_reserved(device)


def max_memory_reserved(device=None) -> int:
    """As ``max_memory_allocated``: the bytes the pool holds (0 without CUDA)."""
    return memory_reserved(device)


def reset_peak_memory_stats(device=None) -> None:
    """Start a new peak: the pool gives its cached blocks back, so it holds only what is in use
    (nothing to do without CUDA)."""
    empty_cache()


reset_max_memory_allocated = reset_peak_memory_stats


def get_arch_list() -> list:
    """The CUDA architectures deepwise was built for: none of its own (CuPy compiles for the GPU it
    finds), so an empty list, as PyTorch answers without CUDA."""
    return []


def __getattr__(name):
    if name == "amp":  # torch.cuda.amp: over deepwise.amp, a layer above; loaded when first named
        return importlib.import_module("deepwise.cuda.amp")
    raise AttributeError(f"module 'deepwise.cuda' has no attribute {name!r}", name=name, obj=sys.modules[__name__])
