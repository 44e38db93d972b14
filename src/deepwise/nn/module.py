"""``Module``: the base class of every layer and model.

Assigning a ``Parameter``, a ``Module`` or (through ``register_buffer``) a tensor to a module's
attribute registers it, in order, in ``_parameters``, ``_modules`` or ``_buffers``. Everything else
follows from those three ordered dicts: ``parameters()`` walks them, ``state_dict()`` names their
contents by dotted path (``"0.weight"``, ``"encoder.layers.1.bias"``), ``to()`` converts them, and
``repr()`` prints the tree. ``module(x)`` runs the forward pre-hooks, ``forward`` and the forward hooks.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from deepwise import backend
from deepwise.autograd import no_grad
from deepwise.backend import Device
from deepwise.nn.parameter import Parameter
from deepwise.tensor import Tensor

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_hook_ids = itertools.count()


class RemovableHandle:
    """Returned by ``register_*_hook``; ``handle.remove()`` unregisters the hook (also a context manager)."""

    def __init__(self, hooks: dict, key: int):
        self._hooks = hooks
        self.id = key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


def hanging_indent(text: str, spaces: int) -> str:
    """Indent every line of ``text`` but the first (a child's repr inside its parent's)."""
    first, *rest = text.split("\n")
    pad = " " * spaces
    return "\n".join([first] + [pad + line for line in rest])


def _check_name(module, name, kind):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if not name:
        raise KeyError(f'{kind} name must not be empty')
    if "." in name:
        raise KeyError(f'{kind} name must not contain a dot, got {name!r}')
    if "_parameters" not in module.__dict__:
        raise AttributeError(
            f"cannot register {kind} {name!r} before Module.__init__() call: "
            f"call super().__init__() first in {type(module).__name__}.__init__"
        )


class Module:
    """Base class of layers and models: subclass it, assign layers/parameters in ``__init__``,
    compute in ``forward``."""

    training: bool

    def __init__(self):
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no forward(): define forward(self, ...) in the subclass"
        )

    def __call__(self, *args, **kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    # ---------------------------------------------------------------------------- registration
    def register_parameter(self, name: str, param: Parameter | None) -> None:
        _check_name(self, name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign {type(param).__name__} as parameter {name!r} of {type(self).__name__}: "
                "wrap it in nn.Parameter(...) (or pass None)"
            )
        if param is not None and not param.is_leaf:
            raise ValueError(f"parameter {name!r} must be a leaf tensor; detach() it first")
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """State that is not learned (running means, counters): saved in ``state_dict`` when
        ``persistent``, moved by ``to()``, not returned by ``parameters()``."""
        _check_name(self, name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign {type(tensor).__name__} as buffer {name!r} of {type(self).__name__}: "
                "a Tensor (or None) is required"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        _check_name(self, name, "module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass (adding {name!r})")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute {name!r} already exists in {type(self).__name__}")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        d = self.__dict__
        params, buffers, modules = d.get("_parameters"), d.get("_buffers"), d.get("_modules")
        if isinstance(value, (Parameter, Module)) and params is None:
            raise AttributeError(
                f"cannot assign {type(value).__name__} {name!r} before Module.__init__() call: "
                f"call super().__init__() first in {type(self).__name__}.__init__"
            )
        if isinstance(value, Parameter):
            self._forget(name, keep="_parameters")
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} of {type(self).__name__}: "
                    "a Parameter (or None) is expected"
                    + (f"; wrap the tensor in nn.Parameter(...) or update it in place with "
                       f"`{name}.data[...] = ...`" if isinstance(value, Tensor) else "")
                )
            params[name] = None
        elif isinstance(value, Module):
            self._forget(name, keep="_modules")
            modules[name] = value
        elif modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as child module {name!r} of "
                    f"{type(self).__name__}: a Module (or None) is expected"
                )
            modules[name] = None
        elif buffers is not None and name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign {type(value).__name__} as buffer {name!r} of {type(self).__name__}: "
                    "a Tensor (or None) is expected"
                )
            buffers[name] = value
        else:
            object.__setattr__(self, name, value)

    def _forget(self, name, keep=None):
        """Drop ``name`` from every registry but ``keep`` (so re-assigning a child or a parameter keeps
        its place in the order, as in PyTorch)."""
        self.__dict__.pop(name, None)
        for key in ("_parameters", "_buffers", "_modules"):
            if key != keep:
                self.__dict__[key].pop(name, None)
        self._non_persistent_buffers.discard(name)

    def __getattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            registry = d.get(key)
            if registry is not None and name in registry:
                return registry[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            if name in d.get(key, ()):
                del d[key][name]
                d["_non_persistent_buffers"].discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self._parameters) | set(self._buffers) | set(self._modules))

    # ------------------------------------------------------------------------------- traversal
    # One walk of the tree: ``named_modules`` (pre-order, children in registration order). Parameters,
    # buffers, ``state_dict``, ``load_state_dict`` and ``to()`` all read the modules it yields.
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        """(dotted path, module) for this module and every submodule, parents first; a module reached
        twice appears once unless ``remove_duplicate=False``."""
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, module in self._modules.items():
            if module is None:
                continue
            sub = f"{prefix}.{name}" if prefix else name
            yield from module.named_modules(memo, sub, remove_duplicate)

    def modules(self):
        for _, module in self.named_modules():
            yield module

    def named_children(self):
        seen = set()
        for name, module in self._modules.items():
            if module is not None and id(module) not in seen:
                seen.add(id(module))
                yield name, module

    def children(self):
        for _, module in self.named_children():
            yield module

    def _named_members(self, members, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, tensor) for every ``(name, tensor)`` that ``members(module)`` yields, over
        this module (and its submodules when ``recurse``); a tensor reached twice appears once unless
        ``remove_duplicate=False``."""
        seen = set()
        walk = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [
            (prefix, self)
        ]
        for mod_prefix, module in walk:
            for name, value in members(module):
                if value is None or (remove_duplicate and id(value) in seen):
                    continue
                seen.add(id(value))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), value

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(dotted name, parameter) pairs in registration order; a shared parameter appears once."""
        yield from self._named_members(lambda m: m._parameters.items(), prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        yield from self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target: str) -> Module:
        """``model.get_submodule("encoder.0")``: the module at a dotted path."""
        module = self
        for part in target.split(".") if target else []:
            child = module._modules.get(part)
            if child is None:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking up {target!r})")
            module = child
        return module

    def num_parameters(self, trainable_only: bool = False) -> int:
        """Total number of scalars in the (distinct) parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first) and on this module."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # --------------------------------------------------------------------------- mode and grads
    def train(self, mode: bool = True):
        if not isinstance(mode, bool):
            raise ValueError(f"train(mode): mode must be a bool, got {mode!r}")
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:  # a fresh array: gradient arrays may be shared, never zero them in place
                p.grad = Tensor._make(backend.get_array_module(p.grad.array).zeros_like(p.grad.array))

    # --------------------------------------------------------------------------- device / dtype
    def _convert(self, fn_param, fn_buffer):
        """Replace the arrays of every parameter (and its grad) and buffer, keeping the objects."""
        seen = set()
        for tensors, fn in ((self.parameters(), fn_param), (self.buffers(), fn_buffer)):
            for t in tensors:
                if id(t) in seen:  # a tensor registered both as a parameter and as a buffer
                    continue
                seen.add(id(t))
                t.array = fn(t.array)
                if t.grad is not None:
                    t.grad = Tensor._make(fn(t.grad.array))
        return self

    def to(self, *args, dtype=None, device=None):
        """``to(device)``, ``to(dtype)`` or ``to(device, dtype)``: converts parameters and buffers in
        place (the Parameter objects stay, so an optimizer holding them stays valid). A dtype applies
        to floating-point parameters and buffers only."""
        for a in args:
            if isinstance(a, Tensor):
                dtype, device = a.dtype, a.device
            elif isinstance(a, (str, Device)):
                device = a
            else:
                dtype = a
        dtype = backend.to_dtype(dtype)
        if dtype is not None and not backend.is_floating(dtype):
            raise TypeError(f"Module.to() only accepts floating-point dtypes, got {dtype}")
        device = Device(device) if device is not None else None

        def convert(arr):
            if device is not None:
                arr = backend.to_device(arr, device)
            if dtype is not None and backend.is_floating(arr.dtype) and arr.dtype != dtype:
                arr = arr.astype(dtype)
            return arr

        return self._convert(convert, convert)

    def cpu(self):
        return self.to("cpu")

    def cuda(self, device=None):
        """On CUDA device ``device`` (an index, "cuda:N" or a dw.device; None: the current one)."""
        return self.to(Device("cuda" if device is None else device))

    def float(self):
        return self.to(backend.float32)

    def double(self):
        return self.to(backend.float64)

    def half(self):
        return self.to(backend.float16)

    # ------------------------------------------------------------------------------ state dict
    def _state_members(self):
        """This module's own ``state_dict`` entries: parameters, then persistent buffers."""
        yield from self._parameters.items()
        for name, b in self._buffers.items():
            if name not in self._non_persistent_buffers:
                yield name, b

    def _state_entries(self, prefix=""):
        """(key, tensor) for every entry ``state_dict`` holds, a shared tensor under each of its names
        (as in PyTorch): the ``named_modules`` walk with duplicates kept."""
        for key, tensor in self._named_members(lambda m: m._state_members(), remove_duplicate=False):
            yield prefix + key, tensor

    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False):
        """Ordered ``{dotted name: tensor}`` of parameters and persistent buffers, keyed as in PyTorch.
        The tensors are detached but share memory with the model (copy them to keep a snapshot)."""
        if destination is None:
            destination = OrderedDict()
        for key, tensor in self._state_entries(prefix):
            destination[key] = tensor if keep_vars else tensor.detach()
        return destination

    def load_state_dict(self, state_dict, strict: bool = True):
        """Copy values into the existing parameter and buffer arrays.

        Values may be deepwise tensors, NumPy/CuPy arrays or anything ``numpy.asarray`` accepts
        (a CPU torch tensor, for instance). Every problem is checked before anything is written, and
        reported together: missing keys and unexpected keys (when ``strict``), shape mismatches
        (always). Returns ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected state_dict to be dict-like (name -> "
                            f"tensor, as model.state_dict() or dw.load give it), got {type(state_dict).__name__}")
        entries = list(self._state_entries())
        expected = {key for key, _ in entries}
        missing = [key for key, _ in entries if key not in state_dict]
        unexpected = [key for key in state_dict if key not in expected]
        mismatched, planned = [], []
        for key, target in entries:
            if key not in state_dict:
                continue
            value = state_dict[key]
            if isinstance(value, Tensor):
                arr = value.array
            elif backend.is_array(value):
                arr = value
            else:
                arr = np.asarray(value)
            if tuple(arr.shape) != target.shape:
                mismatched.append(
                    f"size mismatch for {key}: the state_dict has shape {tuple(arr.shape)}, "
                    f"the model's {'parameter' if isinstance(target, Parameter) else 'buffer'} "
                    f"has shape {target.shape}"
                )
                continue
            planned.append((target, arr))
        problems = list(mismatched)
        if strict and unexpected:
            problems.insert(0, "unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected))
        if strict and missing:
            problems.insert(0, "missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing))
        if problems:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__} (nothing was loaded):\n\t"
                + "\n\t".join(problems)
            )
        with no_grad():
            for target, arr in planned:
                arr = backend.to_device(arr, target.device)
                target.array[...] = arr.astype(target.dtype, copy=False)
        return IncompatibleKeys(missing, unexpected)

    # ----------------------------------------------------------------------------------- hooks
    def register_forward_pre_hook(self, hook) -> RemovableHandle:
        """``hook(module, inputs) -> None | new inputs`` runs before ``forward``."""
        key = next(_hook_ids)
        self._forward_pre_hooks[key] = hook
        return RemovableHandle(self._forward_pre_hooks, key)

    def register_forward_hook(self, hook) -> RemovableHandle:
        """``hook(module, inputs, output) -> None | new output`` runs after ``forward``."""
        key = next(_hook_ids)
        self._forward_hooks[key] = hook
        return RemovableHandle(self._forward_hooks, key)

    # --------------------------------------------------------------------------------- display
    def _get_name(self) -> str:
        return type(self).__name__

    def extra_repr(self) -> str:
        """The settings shown inside this module's parentheses in ``repr``."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({name}): " + hanging_indent(repr(m), 2) for name, m in self._modules.items()]
        lines = extra_lines + child_lines
        if not lines:
            return self._get_name() + "()"
        if len(extra_lines) == 1 and not child_lines:
            return f"{self._get_name()}({extra_lines[0]})"
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"


__all__ = ["IncompatibleKeys", "Module", "RemovableHandle", "hanging_indent"]
